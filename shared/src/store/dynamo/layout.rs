//! Key and attribute names of the single-table design (see docs/dynamodb.md).
//!
//! Ids never contain `#` (see `domain::ids`), so `#`-joined keys are unambiguous.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;

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

/// The id of a period inside attribute names: its start as epoch seconds in decimal,
/// with the fraction only when there is one (`1740787200`, `1740787200.5`). Exact both ways.
pub fn period_id(start: DateTime<Utc>) -> String {
    let secs = Decimal::from(start.timestamp());
    let frac = Decimal::new(i64::from(start.timestamp_subsec_nanos()), 9);
    (secs + frac).normalize().to_string()
}

/// The start a [`period_id`] names.
pub fn parse_period_id(id: &str) -> Option<DateTime<Utc>> {
    if id.is_empty()
        || !id
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        return None;
    }
    let d: Decimal = id.parse().ok()?;
    let secs = d.floor();
    let nanos = ((d - secs) * Decimal::from(1_000_000_000)).trunc();
    let secs = i64::try_from(secs).ok()?;
    let nanos = u32::try_from(nanos).ok()?;
    DateTime::from_timestamp(secs, nanos)
}

/// The `billed_to` value of a period end. [`sortable`]: conditions compare it with period
/// starts as strings (`billed_to <= :start` says the period starting then is still open).
pub fn billed_to(end: DateTime<Utc>) -> String {
    sortable(end)
}

/// The write counter of a period: bumped by every write that changes one of the period's
/// attributes on the state item (so that a close that moves them conditions on it).
pub fn writes(period: DateTime<Utc>) -> String {
    format!("{WRITES_PREFIX}{}", period_id(period))
}
pub const WRITES_PREFIX: &str = "w|";

/// What a pending adjustment of a period sums.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
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

/// `adj|<period id>|events` or `adj|<period id>|cost`: a pending adjustment of a period.
pub fn adjustment(period: DateTime<Utc>, part: AdjustmentPart) -> String {
    format!("{ADJ_PREFIX}{}|{}", period_id(period), part.as_str())
}

/// `(period start, part)` of an adjustment attribute name.
pub fn parse_adjustment(name: &str) -> Option<(DateTime<Utc>, AdjustmentPart)> {
    let (period, part) = name.strip_prefix(ADJ_PREFIX)?.rsplit_once('|')?;
    let part = match part {
        "events" => AdjustmentPart::Events,
        "cost" => AdjustmentPart::Cost,
        _ => return None,
    };
    Some((parse_period_id(period)?, part))
}

/// The item of a named job position (its `cursor` attribute).
pub fn job_pk(job: &str) -> String {
    format!("JOB#{job}")
}
pub const JOB_SK: &str = "JOB";
pub const JOB_CURSOR: &str = "cursor";

/// The `holds` index partition listing budget alerts of short windows by the end of their
/// retention (`alerts::retain_until`), sort key `<end, sortable>#<tenant>#<alert id>`.
pub const ALERTS_RETAIN_PARTITION: &str = "ALERTS_RETAIN";

pub fn holds_shard(pk: &str) -> String {
    // FNV-1a: stable across processes and versions (unlike std's hasher).
    let mut h: u32 = 0x811c_9dc5;
    for b in pk.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("HOLDS#{}", h % HOLDS_SHARDS)
}

/// Counter fields kept per (period, provider): the limit counters of an open period on the
/// state item, the display-only counts and a closed period's limit counters on the period
/// item. Each has a two-character code in attribute names (docs/dynamodb.md, "Names").
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
    /// Display only (error rate, latency, estimated calls): always on the period item.
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

    /// The code of the field in attribute names.
    pub fn code(self) -> &'static str {
        match self {
            Field::CallsUsed => "cu",
            Field::TokensUsed => "tu",
            Field::CostUsed => "$u",
            Field::CallsHeld => "ch",
            Field::TokensHeld => "th",
            Field::CostHeld => "$h",
            Field::Unpriced => "np",
            Field::Estimated => "es",
            Field::Errors => "er",
            Field::LatencySum => "ls",
            Field::LatencyCount => "ln",
        }
    }

    pub fn parse(code: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.code() == code)
    }

    /// A counter that limits or billing read (kept on the state item while the period is
    /// open); the others are display-only counts, kept on the period item.
    pub fn is_limit(self) -> bool {
        !matches!(
            self,
            Field::Estimated | Field::Errors | Field::LatencySum | Field::LatencyCount
        )
    }
}

/// `c|<period id>|<field code>|<provider or *>`: a limit counter of an open period on the
/// state item.
pub fn counter(period: DateTime<Utc>, field: Field, provider: Option<&ProviderId>) -> String {
    let p = provider.map_or(ALL_PROVIDERS, |p| p.as_str());
    format!("{COUNTER_PREFIX}{}|{}|{p}", period_id(period), field.code())
}
pub const COUNTER_PREFIX: &str = "c|";

/// `(period start, field, provider)` of a state counter name (`None` for the `*` provider).
pub fn parse_counter(name: &str) -> Option<(DateTime<Utc>, Field, Option<&str>)> {
    let rest = name.strip_prefix(COUNTER_PREFIX)?;
    let mut parts = rest.split('|');
    let period = parse_period_id(parts.next()?)?;
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

/// String set of the once-only alert keys fired in an open period (state item).
pub fn fired(period: DateTime<Utc>) -> String {
    format!("{FIRED_PREFIX}{}", period_id(period))
}
pub const FIRED_PREFIX: &str = "a|";

/// The period a state attribute belongs to (a counter, fired keys or a write counter;
/// adjustments belong to the state, not the period): what `close_period` moves.
pub fn period_of_attr(name: &str) -> Option<DateTime<Utc>> {
    if let Some((p, _, _)) = parse_counter(name) {
        return Some(p);
    }
    let id = name
        .strip_prefix(FIRED_PREFIX)
        .or_else(|| name.strip_prefix(WRITES_PREFIX))?;
    parse_period_id(id)
}

// The period item: one per (user, period) in the user's partition.

/// The sort key of a period item. `SP#` sorts between the reservation items (`RSV#…`) and
/// `STATE`, so one descending `Query` from `STATE` reads the state item and then the
/// latest period items.
pub fn period_sk(start: DateTime<Utc>) -> String {
    format!("{PERIOD_PREFIX}{}", sortable(start))
}
pub const PERIOD_PREFIX: &str = "SP#";

/// The start of the period whose item has sort key `sk`.
pub fn parse_period_sk(sk: &str) -> Option<DateTime<Utc>> {
    let text = sk.strip_prefix(PERIOD_PREFIX)?;
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// `<field code>|<provider or *>`: a counter on a period item.
pub fn period_counter(field: Field, provider: Option<&ProviderId>) -> String {
    let p = provider.map_or(ALL_PROVIDERS, |p| p.as_str());
    format!("{}|{p}", field.code())
}

/// `(field, provider)` of a period item's counter name.
pub fn parse_period_counter(name: &str) -> Option<(Field, Option<&str>)> {
    let (code, provider) = name.split_once('|')?;
    let field = Field::parse(code)?;
    if provider.contains('|') {
        return None;
    }
    Some((field, (provider != ALL_PROVIDERS).then_some(provider)))
}

/// The fired alert keys of a closed period (string set on its period item).
pub const PERIOD_FIRED: &str = "a";
/// Set on a period item once the period is closed: its limit counters and fired keys are
/// on this item from then on (moved by `close_period`, or written there by a late write).
pub const PERIOD_CLOSED: &str = "closed";

// Reservations.

/// Most open reservations kept on the state item; more are items of their own.
pub const MAX_INLINE_RESERVATIONS: u32 = 8;
/// The number of open reservations on the state item (`open_holds` counts every open one).
pub const INLINE_HOLDS: &str = "inline_holds";

/// The uuid of a reservation id of the form [`crate::domain::Reservation::new_id`] writes,
/// if `id` is exactly that form for its user.
fn canonical_uuid(id: &str) -> Option<&str> {
    let user = crate::domain::Reservation::user_of_id(id)?;
    let uuid = id.strip_prefix("rsv_")?.split_once('_')?.0;
    (crate::domain::Reservation::id_for(uuid, &user) == id).then_some(uuid)
}

/// Map attribute of one open reservation on the state item: `r|<uuid>` for ids of our
/// own form (the user is the item's), else `r|<id>`.
pub fn reservation_attr(id: &str) -> String {
    format!("{RESERVATION_PREFIX}{}", canonical_uuid(id).unwrap_or(id))
}
pub const RESERVATION_PREFIX: &str = "r|";

/// The reservation id of an `r|…` attribute of `user`'s state item.
pub fn reservation_id_of(name: &str, user: &UserId) -> Option<String> {
    let rest = name.strip_prefix(RESERVATION_PREFIX)?;
    if rest.len() == 32 && rest.bytes().all(|b| b.is_ascii_hexdigit()) {
        Some(crate::domain::Reservation::id_for(rest, user))
    } else {
        Some(rest.to_owned())
    }
}

/// Daily rollup attribute: `calls|<provider>`, `tokens|<provider>`, `cost|<provider>`.
pub fn day_attr(kind: &str, provider: &ProviderId) -> String {
    format!("{kind}|{provider}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn billed_to_text_sorts_as_time() {
        let whole = Utc.with_ymd_and_hms(2025, 3, 1, 0, 0, 0).unwrap();
        let later = whole + chrono::Duration::milliseconds(500);
        assert!(billed_to(whole) < billed_to(later));
        assert!(billed_to(later) < billed_to(Utc.with_ymd_and_hms(2025, 4, 1, 0, 0, 0).unwrap()));
    }

    #[test]
    fn period_ids_are_epoch_seconds_and_round_trip_exactly() {
        let march = Utc.with_ymd_and_hms(2025, 3, 1, 0, 0, 0).unwrap();
        assert_eq!(period_id(march), "1740787200");
        let odd = march + chrono::Duration::nanoseconds(500_000_001);
        assert_eq!(period_id(odd), "1740787200.500000001");
        let before = Utc.with_ymd_and_hms(1969, 12, 31, 23, 59, 59).unwrap()
            + chrono::Duration::milliseconds(250);
        assert_eq!(period_id(before), "-0.75");
        for t in [march, odd, before, DateTime::<Utc>::UNIX_EPOCH] {
            assert_eq!(parse_period_id(&period_id(t)), Some(t), "{t}");
        }
        for bad in ["", "x", "1e9", "17407872OO", "--1"] {
            assert_eq!(parse_period_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn counter_names_are_compact_and_round_trip() {
        let p = Utc.with_ymd_and_hms(2025, 3, 1, 0, 0, 0).unwrap();
        let gemini = ProviderId::parse("gemini").unwrap();
        assert_eq!(
            counter(p, Field::CallsUsed, Some(&gemini)),
            "c|1740787200|cu|gemini"
        );
        assert_eq!(counter(p, Field::CostUsed, None), "c|1740787200|$u|*");
        assert_eq!(
            parse_counter("c|1740787200|$h|gemini"),
            Some((p, Field::CostHeld, Some("gemini")))
        );
        assert_eq!(parse_counter("c|1740787200|calls_used|gemini"), None);
        assert_eq!(parse_counter("c|2025-03-01T00:00:00Z|cu|gemini"), None);
        assert_eq!(period_counter(Field::Errors, Some(&gemini)), "er|gemini");
        assert_eq!(
            parse_period_counter("ln|gemini"),
            Some((Field::LatencyCount, Some("gemini")))
        );
        assert_eq!(parse_period_counter("closed"), None);
        for name in [
            fired(p),
            writes(p),
            counter(p, Field::Unpriced, Some(&gemini)),
        ] {
            assert_eq!(period_of_attr(&name), Some(p), "{name}");
        }
        assert_eq!(period_of_attr(&adjustment(p, AdjustmentPart::Cost)), None);
        assert_eq!(period_of_attr("alerts_unread"), None);
    }

    #[test]
    fn period_items_sort_between_reservations_and_the_state_item() {
        let p = Utc.with_ymd_and_hms(2025, 3, 1, 0, 0, 0).unwrap();
        let sk = period_sk(p);
        assert_eq!(sk, "SP#2025-03-01T00:00:00.000000000Z");
        assert_eq!(parse_period_sk(&sk), Some(p));
        assert!(tombstone_sk("rsv_ffff") < sk);
        assert!(sk.as_str() < STATE_SK);
        assert!(period_sk(p + chrono::Duration::days(31)).as_str() < STATE_SK);
        assert!(invoice_sk(p) < sk && day_sk(p.date_naive()) < sk);
    }

    #[test]
    fn reservation_attributes_keep_the_uuid_of_our_ids_only() {
        let u = UserId::parse("alice@example.com").unwrap();
        let id = crate::domain::Reservation::new_id(&u);
        let name = reservation_attr(&id);
        assert_eq!(name.len(), 2 + 32);
        assert_eq!(reservation_id_of(&name, &u), Some(id.clone()));
        // Not our form (or another user's encoding): kept whole.
        assert_eq!(reservation_attr("legacy-1"), "r|legacy-1");
        assert_eq!(
            reservation_id_of("r|legacy-1", &u),
            Some("legacy-1".to_owned())
        );
        let padded = format!("{id}=");
        assert_eq!(reservation_attr(&padded), format!("r|{padded}"));
    }

    #[test]
    fn adjustment_names_round_trip_and_others_are_not_adjustments() {
        let p = Utc.with_ymd_and_hms(2025, 3, 1, 0, 0, 0).unwrap();
        let name = adjustment(p, AdjustmentPart::Cost);
        assert_eq!(name, "adj|1740787200|cost");
        assert_eq!(parse_adjustment(&name), Some((p, AdjustmentPart::Cost)));
        assert_eq!(
            parse_adjustment(&adjustment(p, AdjustmentPart::Events)),
            Some((p, AdjustmentPart::Events))
        );
        assert_eq!(parse_adjustment("adjv"), None);
        assert_eq!(parse_adjustment("adj|1740787200|calls"), None);
        assert_eq!(writes(p), "w|1740787200");
    }
}
