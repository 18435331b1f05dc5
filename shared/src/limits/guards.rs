//! Reservation guards: the limit conditions a reservation's write must pass atomically in
//! the store, one per limited metric that applies to the call, mirroring [`decide`]'s
//! rules so that a check and its reservation agree.
//!
//! [`decide`]: super::decide

use rust_decimal::Decimal;

use super::{CallEstimate, Limits, Metric};

/// A limit condition checked atomically with a reservation: the reservation succeeds only
/// if `used + increment <= limit` (`< limit` when `strict`) for the guarded metric, where
/// `used` includes every open hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guard {
    pub metric: Metric,
    pub increment: Decimal,
    pub limit: Decimal,
    pub strict: bool,
}

/// The guards a reservation of `call` must pass under `limits`.
pub fn guards_for(limits: &Limits, call: &CallEstimate) -> Vec<Guard> {
    let tokens = Decimal::from(call.estimated_tokens);
    limits
        .0
        .iter()
        .filter_map(|(metric, limit)| {
            let (increment, strict) = match metric {
                Metric::Calls(Some(p)) | Metric::Tokens(Some(p)) if p != &call.provider => {
                    return None
                }
                Metric::Calls(_) => (Decimal::ONE, false),
                Metric::Tokens(_) => (tokens, false),
                Metric::CostUsd => match call.estimated_cost {
                    Some(c) if c > Decimal::ZERO => (c, false),
                    _ => (Decimal::ZERO, true),
                },
            };
            Some(Guard {
                metric: metric.clone(),
                increment,
                limit: *limit,
                strict,
            })
        })
        .collect()
}
