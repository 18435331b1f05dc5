//! `escrow-sim`: does budget escrow over N shard items lift the per-partition write ceiling
//! of one hot scope without ever admitting more than the limit? A discrete-event
//! simulation against a model of DynamoDB's per-partition rate limits, conditional writes
//! and transactions (docs/dynamodb.md, "Hot scopes and the per-partition ceiling").
//!
//! - [`dynamo`]: the model of the table (token buckets per partition, atomic conditional
//!   writes, transactions that hold their items, the invariant checker);
//! - [`escrow`]: the design, as the requests a client sends;
//! - [`sim`]: clients, the drainer and the event loop; [`sim::run`] gives a [`sim::Report`].

pub mod dynamo;
pub mod escrow;
pub mod sim;

use rust_decimal::{Decimal, RoundingStrategy};
use sim::Report;

/// The reports as a Markdown table.
pub fn table(reports: &[Report]) -> String {
    let mut out = String::from(
        "| shards | admitted ops/s | throttled | conflicts | requests/op | WCU/op | admitted of L | ≤ L | spend at 1st denial | left then | final spend | left at end | unavailable | drains |\n\
         | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for r in reports {
        // Fractions are rounded down to 6 places; as a percentage, 4 places.
        let pct = |f: Option<Decimal>| match f {
            Some(f) => format!(
                "{} %",
                (f * Decimal::ONE_HUNDRED).round_dp_with_strategy(4, RoundingStrategy::ToZero)
            ),
            None => "–".into(),
        };
        let opt = |d: Option<Decimal>| d.map_or("–".into(), |d| d.to_string());
        out.push_str(&format!(
            "| {} | {} | {} | {} | {:.2} | {:.2} | {} of {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.shards,
            thousands(r.ops_per_s.round() as u64),
            thousands(r.throttled),
            thousands(r.conflicts),
            r.requests_per_op,
            r.wcu_per_op,
            r.admitted_amount,
            r.limit,
            if r.within_limit && r.invariant_violations == 0 {
                "yes"
            } else {
                "**NO**"
            },
            pct(r.first_denial_fraction),
            opt(r.left_at_first_denial),
            pct(Some(r.final_fraction)),
            r.final_left,
            thousands(r.unavailable_ops),
            r.drains,
        ));
    }
    out
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn thousands_are_separated() {
        assert_eq!(super::thousands(0), "0");
        assert_eq!(super::thousands(999), "999");
        assert_eq!(super::thousands(1000), "1,000");
        assert_eq!(super::thousands(12345678), "12,345,678");
    }
}
