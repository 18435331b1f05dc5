//! Key and attribute names of the single-table design (see docs/dynamodb.md).
//!
//! Ids never contain `#` (see `domain::ids`), so `#`-joined keys are unambiguous.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};

use crate::domain::{EventId, ProviderId, TenantId, UserId};

pub const PK: &str = "PK";
pub const SK: &str = "SK";
/// The TTL attribute (epoch seconds) of raw events and reservation tombstones.
pub const TTL: &str = "ttl";

pub const STATE_SK: &str = "STATE";

/// Sparse GSI `holds` (KEYS_ONLY): user state items with open reservations.
pub const HOLDS_INDEX: &str = "holds";
pub const HOLDS_PK: &str = "HOLDS_PK";
pub const HOLDS_SK: &str = "HOLDS_SK";
/// Number of `HOLDS#<n>` partitions the holds index is spread over.
pub const HOLDS_SHARDS: u32 = 4;

/// GSI `by_user` (ALL): a user's alerts, newest first.
pub const USER_INDEX: &str = "by_user";
pub const USER_PK: &str = "USER_PK";
pub const USER_SK: &str = "USER_SK";

/// Sparse GSI `outbox` (ALL), oldest first in each partition: unpublished alerts
/// (`OUTBOX`), unpublished invoices (`INVOICES`) and unpriced events (`UNPRICED`).
pub const OUTBOX_INDEX: &str = "outbox";
pub const OUTBOX_PK: &str = "OUTBOX_PK";
pub const OUTBOX_SK: &str = "OUTBOX_SK";
pub const OUTBOX_PARTITION: &str = "OUTBOX";
pub const INVOICES_PARTITION: &str = "INVOICES";
pub const UNPRICED_PARTITION: &str = "UNPRICED";

/// Sparse GSI `subs` (INCLUDE `sub`): every user with a subscription or recorded usage
/// (their state items), for the aggregation pass.
pub const SUBS_INDEX: &str = "subs";
pub const SUBS_PK: &str = "SUBS_PK";
pub const SUBS_SK: &str = "SUBS_SK";
pub const SUBS_PARTITION: &str = "SUBS";

/// Attributes of the user state item.
pub const SUB: &str = "sub";
pub const SUB_VERSION: &str = "sub_version";
pub const OPEN_HOLDS: &str = "open_holds";
pub const ALERTS_UNREAD: &str = "alerts_unread";
/// The end of the last invoiced period, as [`sortable`] text (see [`billed_to`]).
pub const BILLED_TO: &str = "billed_to";
/// Bumped by every change of the pending adjustments (`adj|…` attributes).
pub const ADJ_VERSION: &str = "adjv";
pub const ADJ_PREFIX: &str = "adj|";

/// The end of an alert's or invoice's publishing claim, as [`sortable`] text.
pub const CLAIMED_UNTIL: &str = "claimed_until";

/// Every attribute that is part of the table's keys or bookkeeping, never of a record.
pub const BOOKKEEPING: [&str; 12] = [
    PK,
    SK,
    TTL,
    HOLDS_PK,
    HOLDS_SK,
    USER_PK,
    USER_SK,
    OUTBOX_PK,
    OUTBOX_SK,
    SUBS_PK,
    SUBS_SK,
    CLAIMED_UNTIL,
];

/// The provider slot of all-provider totals in counter names.
pub const ALL_PROVIDERS: &str = "*";

pub fn user_pk(tenant: &TenantId, user: &str) -> String {
    format!("T#{tenant}#U#{user}")
}

/// `(tenant, user)` of a user partition key.
pub fn parse_user_pk(pk: &str) -> Option<(TenantId, UserId)> {
    let rest = pk.strip_prefix("T#")?;
    let (tenant, user) = rest.split_once("#U#")?;
    Some((TenantId::parse(tenant).ok()?, UserId::parse(user).ok()?))
}

pub fn tenant_pk(tenant: &TenantId) -> String {
    format!("T#{tenant}")
}

pub fn event_pk(tenant: &TenantId, event_id: &EventId) -> String {
    format!("T#{tenant}#E#{event_id}")
}
pub const EVENT_SK: &str = "EVENT";

pub fn alert_pk(tenant: &TenantId, alert_id: &str) -> String {
    format!("T#{tenant}#ALERT#{alert_id}")
}
pub const ALERT_SK: &str = "ALERT";

pub const TENANT_SK: &str = "TENANT";

pub fn api_key_pk(hash: &str) -> String {
    format!("KEY#{hash}")
}
pub const API_KEY_SK: &str = "KEY";
/// A key's listing item in its tenant's partition (`T#<tenant>`), by key id.
pub fn api_key_listing_sk(id: &str) -> String {
    format!("{API_KEY_LISTING_PREFIX}{id}")
}
pub const API_KEY_LISTING_PREFIX: &str = "KEY#";

pub fn plan_sk(name: &str) -> String {
    format!("PLAN#{name}")
}
pub const PLAN_PREFIX: &str = "PLAN#";

pub fn prices_pk(scope: Option<&TenantId>) -> String {
    match scope {
        Some(t) => format!("PRICES#{t}"),
        None => "PRICES#*".to_owned(),
    }
}

pub fn invoice_sk(period_start: DateTime<Utc>) -> String {
    format!("INV#{}", sortable(period_start))
}

/// The sort key of an erased user's invoice under its pseudonym: by period and id, since
/// a user erased twice may leave two invoices of one period.
pub fn pseudonymised_invoice_sk(period_start: DateTime<Utc>, id: &str) -> String {
    format!("{}#{id}", invoice_sk(period_start))
}
pub const INVOICE_PREFIX: &str = "INV#";

pub fn day_sk(day: NaiveDate) -> String {
    format!("D#{}", day.format("%Y-%m-%d"))
}

pub fn tombstone_sk(reservation_id: &str) -> String {
    format!("RSV#{reservation_id}")
}

/// A timestamp that sorts lexicographically in time order (always nine fraction digits).
pub fn sortable(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.9fZ").to_string()
}

/// The name of a period inside counter names: RFC 3339, fractions only when present.
pub fn period_key(start: DateTime<Utc>) -> String {
    start.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// The `billed_to` value of a period end. [`sortable`], not [`period_key`]: conditions
/// compare it with period starts as strings, and `period_key` text does not sort as time
/// (`…00:00:00.500Z` < `…00:00:00Z`, since `.` < `Z`).
pub fn billed_to(end: DateTime<Utc>) -> String {
    sortable(end)
}

/// The write counter of a period: bumped by every write that changes its recorded usage.
pub fn writes(period: DateTime<Utc>) -> String {
    format!("w|{}", period_key(period))
}

/// What a pending adjustment of a period sums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdjustmentPart {
    Events,
    Cost,
}

impl AdjustmentPart {
    fn as_str(self) -> &'static str {
        match self {
            AdjustmentPart::Events => "events",
            AdjustmentPart::Cost => "cost",
        }
    }
}

/// `adj|<period>|events` or `adj|<period>|cost`: a pending adjustment of a period.
pub fn adjustment(period: DateTime<Utc>, part: AdjustmentPart) -> String {
    format!("{ADJ_PREFIX}{}|{}", period_key(period), part.as_str())
}

/// `(period key, part)` of an adjustment attribute name.
pub fn parse_adjustment(name: &str) -> Option<(&str, AdjustmentPart)> {
    let (period, part) = name.strip_prefix(ADJ_PREFIX)?.rsplit_once('|')?;
    let part = match part {
        "events" => AdjustmentPart::Events,
        "cost" => AdjustmentPart::Cost,
        _ => return None,
    };
    Some((period, part))
}

/// The item of a named job position (its `cursor` attribute).
pub fn job_pk(job: &str) -> String {
    format!("JOB#{job}")
}
pub const JOB_SK: &str = "JOB";
pub const JOB_CURSOR: &str = "cursor";

pub fn holds_shard(pk: &str) -> String {
    // FNV-1a: stable across processes and versions (unlike std's hasher).
    let mut h: u32 = 0x811c_9dc5;
    for b in pk.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("HOLDS#{}", h % HOLDS_SHARDS)
}

/// Counter fields kept per (period, provider) on the user state item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    /// Recorded + held: what limits compare against.
    CallsUsed,
    TokensUsed,
    CostUsed,
    /// Held by open reservations.
    CallsHeld,
    TokensHeld,
    CostHeld,
    Unpriced,
    Estimated,
    Errors,
    LatencySum,
    LatencyCount,
}

impl Field {
    pub const ALL: [Field; 11] = [
        Field::CallsUsed,
        Field::TokensUsed,
        Field::CostUsed,
        Field::CallsHeld,
        Field::TokensHeld,
        Field::CostHeld,
        Field::Unpriced,
        Field::Estimated,
        Field::Errors,
        Field::LatencySum,
        Field::LatencyCount,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Field::CallsUsed => "calls_used",
            Field::TokensUsed => "tokens_used",
            Field::CostUsed => "cost_used",
            Field::CallsHeld => "calls_held",
            Field::TokensHeld => "tokens_held",
            Field::CostHeld => "cost_held",
            Field::Unpriced => "unpriced",
            Field::Estimated => "estimated",
            Field::Errors => "errors",
            Field::LatencySum => "latency_sum",
            Field::LatencyCount => "latency_n",
        }
    }

    pub fn parse(s: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.as_str() == s)
    }
}

/// `c|<period>|<field>|<provider or *>`.
pub fn counter(period: DateTime<Utc>, field: Field, provider: Option<&ProviderId>) -> String {
    let p = provider.map_or(ALL_PROVIDERS, |p| p.as_str());
    format!("c|{}|{}|{p}", period_key(period), field.as_str())
}

/// `(period key, field, provider)` of a counter name (`None` for the `*` provider).
pub fn parse_counter(name: &str) -> Option<(&str, Field, Option<&str>)> {
    let rest = name.strip_prefix("c|")?;
    let mut parts = rest.split('|');
    let period = parts.next()?;
    let field = Field::parse(parts.next()?)?;
    let provider = parts.next()?;
    if parts.next().is_some() {
        return None;
    }
    Some((
        period,
        field,
        (provider != ALL_PROVIDERS).then_some(provider),
    ))
}

/// String set of the once-only alert keys fired in a period.
pub fn fired(period: DateTime<Utc>) -> String {
    format!("a|{}", period_key(period))
}

/// Map attribute of one open reservation.
pub fn reservation_attr(id: &str) -> String {
    format!("r|{id}")
}
pub const RESERVATION_PREFIX: &str = "r|";

/// Daily rollup attribute: `calls|<provider>`, `tokens|<provider>`, `cost|<provider>`.
pub fn day_attr(kind: &str, provider: &ProviderId) -> String {
    format!("{kind}|{provider}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn billed_to_text_sorts_as_time_and_period_keys_do_not() {
        let whole = Utc.with_ymd_and_hms(2025, 3, 1, 0, 0, 0).unwrap();
        let later = whole + chrono::Duration::milliseconds(500);
        assert!(billed_to(whole) < billed_to(later));
        assert!(billed_to(later) < billed_to(Utc.with_ymd_and_hms(2025, 4, 1, 0, 0, 0).unwrap()));
        // Why billed_to is not a period key: the fraction sorts before the `Z`.
        assert!(period_key(later) < period_key(whole));
    }

    #[test]
    fn adjustment_names_round_trip_and_others_are_not_adjustments() {
        let p = Utc.with_ymd_and_hms(2025, 3, 1, 0, 0, 0).unwrap();
        let name = adjustment(p, AdjustmentPart::Cost);
        assert_eq!(name, "adj|2025-03-01T00:00:00Z|cost");
        assert_eq!(
            parse_adjustment(&name),
            Some(("2025-03-01T00:00:00Z", AdjustmentPart::Cost))
        );
        assert_eq!(
            parse_adjustment(&adjustment(p, AdjustmentPart::Events)),
            Some(("2025-03-01T00:00:00Z", AdjustmentPart::Events))
        );
        assert_eq!(parse_adjustment("adjv"), None);
        assert_eq!(parse_adjustment("adj|2025-03-01T00:00:00Z|calls"), None);
        assert_eq!(writes(p), "w|2025-03-01T00:00:00Z");
    }
}
