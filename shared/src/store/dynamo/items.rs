//! Items of each record type: keys plus the record's fields as native attributes.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;

use super::codec::{count_of, decimal_of, from_item, get_s, n, s, time_of, to_item, Item};
use super::layout;
use crate::domain::{
    Alert, BudgetHold, Invoice, ProviderId, Reservation, ReservationStatus, TenantId, UsageEvent,
    UserId,
};
use crate::store::{StoreError, StoreResult};
use crate::usage::Tally;

/// How long raw events are kept (the `ttl` attribute): 400 days after recording.
pub const EVENT_RETENTION_DAYS: i64 = 400;
/// How long a closed reservation's tombstone answers `AlreadyClosed`: 7 days after it expires.
pub const TOMBSTONE_RETENTION_DAYS: i64 = 7;

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

/// The raw event item. `metadata` is kept as JSON text (arbitrary client JSON may hold
/// numbers DynamoDB cannot store exactly). An unpriced event (`cost_usd` NULL) is in the
/// `outbox` index, partition `UNPRICED`, until it is priced.
pub fn event_item(e: &UsageEvent) -> StoreResult<Item> {
    let mut item = to_item(e)?;
    if let Some(meta) = &e.metadata {
        item.insert("metadata".into(), s(meta.to_string()));
    }
    item.insert(
        layout::PK.into(),
        s(layout::event_pk(&e.tenant, &e.event_id)),
    );
    item.insert(layout::SK.into(), s(layout::EVENT_SK));
    // In the user's index too, so that export and erasure find the user's events.
    item.insert(
        layout::USER_PK.into(),
        s(layout::user_pk(&e.tenant, e.user.as_str())),
    );
    item.insert(
        layout::USER_SK.into(),
        s(format!(
            "EVENT#{}#{}",
            layout::sortable(e.timestamp),
            e.event_id
        )),
    );
    if e.cost_usd.is_none() {
        item.insert(layout::OUTBOX_PK.into(), s(layout::UNPRICED_PARTITION));
        item.insert(
            layout::OUTBOX_SK.into(),
            s(outbox_sk(e.recorded_at, &e.tenant, e.event_id.as_str())),
        );
    }
    let expires = e.recorded_at + Duration::days(EVENT_RETENTION_DAYS);
    item.insert(layout::TTL.into(), n(expires.timestamp()));
    Ok(item)
}

pub fn event_of(item: &Item) -> StoreResult<UsageEvent> {
    let mut item = item.clone();
    if let Some(AttributeValue::S(text)) = item.get("metadata") {
        let v: serde_json::Value = serde_json::from_str(text).map_err(corrupt)?;
        item.insert("metadata".into(), super::codec::json_to_av(&v));
    }
    from_item(&item)
}

/// An instant as an exact epoch-seconds number (compact, and exact to the nanosecond).
fn epoch(t: DateTime<Utc>) -> AttributeValue {
    AttributeValue::N(layout::period_id(t))
}

fn epoch_of(av: &AttributeValue, what: &str) -> StoreResult<DateTime<Utc>> {
    let text = av
        .as_n()
        .map_err(|_| corrupt(format!("{what} is not a number")))?;
    layout::parse_period_id(text).ok_or_else(|| corrupt(format!("{what} `{text}`")))
}

/// The map attribute (`r|<uuid>`, see [`layout::reservation_attr`]) of an open
/// reservation on the user state item, with one-letter keys: `p` provider, `s` period
/// start, `c` calls, `t` tokens, `$` cost, `at` created, `ex` expires (instants as epoch
/// seconds).
pub fn reservation_map(r: &Reservation) -> AttributeValue {
    let mut m = HashMap::from([
        ("p".to_owned(), s(r.provider.as_str())),
        ("s".to_owned(), epoch(r.period_start)),
        ("c".to_owned(), n(r.held.calls)),
        ("t".to_owned(), n(r.held.tokens)),
        ("$".to_owned(), n(r.held.cost_usd)),
        ("at".to_owned(), epoch(r.created_at)),
        ("ex".to_owned(), epoch(r.expires_at)),
    ]);
    if !r.budget_holds.is_empty() {
        m.insert("b".to_owned(), budget_holds_list(&r.budget_holds));
    }
    AttributeValue::M(m)
}

/// A reservation's budget holds as a list of maps: `k` the counter key, `e` the window's
/// end (epoch seconds), `c`, `t`, `$` what is held.
fn budget_holds_list(holds: &[BudgetHold]) -> AttributeValue {
    AttributeValue::L(
        holds
            .iter()
            .map(|h| {
                AttributeValue::M(HashMap::from([
                    ("k".to_owned(), s(h.counter.as_str())),
                    ("e".to_owned(), epoch(h.window_end)),
                    ("c".to_owned(), n(h.held.calls)),
                    ("t".to_owned(), n(h.held.tokens)),
                    ("$".to_owned(), n(h.held.cost_usd)),
                ]))
            })
            .collect(),
    )
}

fn budget_holds_of(id: &str, av: Option<&AttributeValue>) -> StoreResult<Vec<BudgetHold>> {
    let Some(av) = av else {
        return Ok(Vec::new());
    };
    let list = av
        .as_l()
        .map_err(|_| corrupt(format!("reservation {id}: budget holds are not a list")))?;
    list.iter()
        .map(|h| {
            let m = h
                .as_m()
                .map_err(|_| corrupt(format!("reservation {id}: a budget hold is not a map")))?;
            let num = |k: &str| m.get(k).map_or(Ok(Decimal::ZERO), decimal_of);
            Ok(BudgetHold {
                counter: get_s(m, "k")
                    .ok_or_else(|| corrupt(format!("reservation {id}: budget hold lacks k")))?
                    .to_owned(),
                window_end: epoch_of(
                    m.get("e")
                        .ok_or_else(|| corrupt(format!("reservation {id}: budget hold lacks e")))?,
                    "e",
                )?,
                held: Tally {
                    calls: count_of(num("c")?, "calls")?,
                    tokens: count_of(num("t")?, "tokens")?,
                    cost_usd: num("$")?,
                },
            })
        })
        .collect()
}

/// The open reservation `id` of (tenant, user) from its map attribute, in this layout or
/// the previous one (`provider`, `period`, `calls`, `tokens`, `cost`, `created_at`,
/// `expires_at`, instants as text).
pub fn reservation_of_map(
    tenant: &TenantId,
    user: &UserId,
    id: &str,
    av: &AttributeValue,
) -> StoreResult<Reservation> {
    let m = av
        .as_m()
        .map_err(|_| corrupt(format!("reservation {id} is not a map")))?;
    let text = |k: &str| get_s(m, k).ok_or_else(|| corrupt(format!("reservation {id} lacks {k}")));
    let num = |k: &str| m.get(k).map_or(Ok(Decimal::ZERO), decimal_of);
    let at = |k: &str| {
        m.get(k)
            .ok_or_else(|| corrupt(format!("reservation {id} lacks {k}")))
            .and_then(|v| epoch_of(v, k))
    };
    let compact = m.contains_key("p");
    let (provider, period_start, created_at, expires_at, held) = if compact {
        (
            text("p")?,
            at("s")?,
            at("at")?,
            at("ex")?,
            (num("c")?, num("t")?, num("$")?),
        )
    } else {
        (
            text("provider")?,
            time_of(text("period")?)?,
            time_of(text("created_at")?)?,
            time_of(text("expires_at")?)?,
            (num("calls")?, num("tokens")?, num("cost")?),
        )
    };
    Ok(Reservation {
        id: id.to_owned(),
        tenant: tenant.clone(),
        user: user.clone(),
        provider: ProviderId::parse(provider).map_err(corrupt)?,
        period_start,
        held: Tally {
            calls: count_of(held.0, "calls")?,
            tokens: count_of(held.1, "tokens")?,
            cost_usd: held.2,
        },
        status: ReservationStatus::Held,
        created_at,
        expires_at,
        budget_holds: budget_holds_of(id, m.get("b"))?,
    })
}

/// Every open reservation stored on a state item, with its attribute name.
pub fn inline_reservations(item: &Item) -> StoreResult<Vec<(String, Reservation)>> {
    let Some((tenant, user)) = get_s(item, layout::PK).and_then(layout::parse_user_pk) else {
        return Err(corrupt("state item without a user key"));
    };
    item.iter()
        .filter(|(k, _)| k.starts_with(layout::RESERVATION_PREFIX))
        .map(|(k, v)| {
            let id = layout::reservation_id_of(k, &user)
                .ok_or_else(|| corrupt(format!("reservation attribute `{k}`")))?;
            Ok((k.clone(), reservation_of_map(&tenant, &user, &id, v)?))
        })
        .collect()
}

/// Every open reservation stored on a state item.
pub fn open_reservations(item: &Item) -> StoreResult<Vec<Reservation>> {
    Ok(inline_reservations(item)?
        .into_iter()
        .map(|(_, r)| r)
        .collect())
}

/// The item of an open reservation that did not fit on the state item (more than
/// [`layout::MAX_INLINE_RESERVATIONS`] open): at its tombstone's key, status `held`, in the
/// `holds` index so that expiry finds it; no `ttl` (its tombstone gets one).
pub fn spilled_item(r: &Reservation) -> StoreResult<Item> {
    let mut item = to_item(r)?;
    let pk = layout::user_pk(&r.tenant, r.user.as_str());
    item.insert(layout::PK.into(), s(pk.clone()));
    item.insert(layout::SK.into(), s(layout::tombstone_sk(&r.id)));
    item.insert(layout::HOLDS_PK.into(), s(layout::holds_shard(&pk)));
    item.insert(layout::HOLDS_SK.into(), s(pk));
    Ok(item)
}

/// The tombstone item of a closed reservation (kept until its `ttl`).
pub fn tombstone_item(r: &Reservation, status: ReservationStatus) -> StoreResult<Item> {
    let mut closed = r.clone();
    closed.status = status;
    let mut item = to_item(&closed)?;
    item.insert(
        layout::PK.into(),
        s(layout::user_pk(&r.tenant, r.user.as_str())),
    );
    item.insert(layout::SK.into(), s(layout::tombstone_sk(&r.id)));
    let expires = r.expires_at + Duration::days(TOMBSTONE_RETENTION_DAYS);
    item.insert(layout::TTL.into(), n(expires.timestamp()));
    Ok(item)
}

pub fn alert_item(a: &Alert) -> StoreResult<Item> {
    let mut item = to_item(a)?;
    item.insert(layout::PK.into(), s(layout::alert_pk(&a.tenant, &a.id)));
    item.insert(layout::SK.into(), s(layout::ALERT_SK));
    item.insert(
        layout::USER_PK.into(),
        s(layout::user_pk(&a.tenant, &a.owner_key())),
    );
    item.insert(
        layout::USER_SK.into(),
        s(format!("ALERT#{}#{}", layout::sortable(a.created_at), a.id)),
    );
    item.extend(super::directory::alert_feed_keys(a));
    // A budget alert of a short window is listed, by the end of its retention, in the
    // `holds` index's `ALERTS_RETAIN` partition (`BudgetAlertStore::expired_alerts`).
    if let Some(until) = crate::alerts::retain_until(a) {
        item.insert(layout::HOLDS_PK.into(), s(layout::ALERTS_RETAIN_PARTITION));
        item.insert(
            layout::HOLDS_SK.into(),
            s(format!("{}#{}#{}", layout::sortable(until), a.tenant, a.id)),
        );
    }
    if !a.published {
        item.insert(layout::OUTBOX_PK.into(), s(layout::OUTBOX_PARTITION));
        item.insert(
            layout::OUTBOX_SK.into(),
            s(outbox_sk(a.created_at, &a.tenant, &a.id)),
        );
    }
    Ok(item)
}

/// The invoice item (under the user's partition); an unpublished one is in the `outbox`
/// index, partition `INVOICES`.
pub fn invoice_item(inv: &Invoice) -> StoreResult<Item> {
    let mut item = to_item(inv)?;
    item.insert(
        layout::PK.into(),
        s(layout::user_pk(&inv.tenant, &inv.user)),
    );
    item.insert(layout::SK.into(), s(layout::invoice_sk(inv.period.start)));
    if !inv.published {
        item.insert(layout::OUTBOX_PK.into(), s(layout::INVOICES_PARTITION));
        item.insert(
            layout::OUTBOX_SK.into(),
            s(format!(
                "{}#{}#{}#{}",
                layout::sortable(inv.created_at),
                inv.tenant,
                inv.user,
                layout::sortable(inv.period.start)
            )),
        );
    }
    Ok(item)
}

pub fn outbox_sk(created_at: DateTime<Utc>, tenant: &TenantId, id: &str) -> String {
    format!("{}#{tenant}#{id}", layout::sortable(created_at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{EventId, ModelId, Severity};
    use crate::usage::UsageCounts;
    use chrono::TimeZone;
    use rust_decimal_macros::dec;

    fn at(d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 3, d, h, 0, 0).unwrap()
    }

    fn event() -> UsageEvent {
        UsageEvent {
            tenant: TenantId::parse("acme").unwrap(),
            user: UserId::parse("alice@example.com").unwrap(),
            event_id: EventId::parse("ev-1").unwrap(),
            fingerprint: "fp".into(),
            provider: ProviderId::parse("gemini").unwrap(),
            model: Some(ModelId::parse("gemini/gemini-2.5-pro").unwrap()),
            timestamp: at(10, 12),
            period_start: at(1, 0),
            counts: UsageCounts {
                input_tokens: 12,
                output_tokens: 3,
                ..UsageCounts::default()
            },
            cost_usd: Some(dec!(0.0008125)),
            price_version: Some("v1".into()),
            estimated: true,
            endpoint: None,
            status_code: Some(503),
            latency_ms: Some(120),
            reservation_id: None,
            metadata: Some(serde_json::json!({"huge": 1e300, "nested": {"a": [1, 2]}})),
            recorded_at: at(10, 12),
            org_id: None,
            team_id: None,
            payer: None,
        }
    }

    #[test]
    fn event_items_round_trip_with_keys_ttl_and_text_metadata() {
        let e = event();
        let item = event_item(&e).unwrap();
        assert_eq!(get_s(&item, layout::PK), Some("T#acme#E#ev-1"));
        assert!(matches!(item.get("metadata"), Some(AttributeValue::S(_))));
        assert_eq!(item.get("cost_usd"), Some(&s("0.0008125")));
        let ttl: i64 = item[layout::TTL].as_n().unwrap().parse().unwrap();
        assert_eq!(ttl, (e.recorded_at + Duration::days(400)).timestamp());
        assert_eq!(event_of(&item).unwrap(), e);
        assert!(!item.contains_key(layout::OUTBOX_PK));
        let mut unpriced = e.clone();
        unpriced.cost_usd = None;
        unpriced.metadata = None;
        let item = event_item(&unpriced).unwrap();
        assert_eq!(item.get("cost_usd"), Some(&AttributeValue::Null(true)));
        assert_eq!(get_s(&item, layout::OUTBOX_PK), Some("UNPRICED"));
        assert_eq!(
            get_s(&item, layout::OUTBOX_SK),
            Some("2025-03-10T12:00:00.000000000Z#acme#ev-1")
        );
        assert_eq!(event_of(&item).unwrap(), unpriced);
    }

    #[test]
    fn reservations_round_trip_through_their_map_and_tombstone() {
        let user = UserId::parse("alice").unwrap();
        let r = Reservation {
            id: Reservation::new_id(&user),
            tenant: TenantId::parse("acme").unwrap(),
            user: user.clone(),
            provider: ProviderId::parse("openai").unwrap(),
            period_start: at(1, 0),
            held: Tally {
                calls: 1,
                tokens: 500,
                cost_usd: dec!(0.0125),
            },
            status: ReservationStatus::Held,
            created_at: at(10, 12),
            expires_at: at(10, 13),
            budget_holds: Vec::new(),
        };
        let back = reservation_of_map(&r.tenant, &user, &r.id, &reservation_map(&r)).unwrap();
        assert_eq!(back, r);
        // The previous layout's map reads back the same.
        let legacy = AttributeValue::M(HashMap::from([
            ("provider".to_owned(), s("openai")),
            ("period".to_owned(), s("2025-03-01T00:00:00Z")),
            ("calls".to_owned(), n(1)),
            ("tokens".to_owned(), n(500)),
            ("cost".to_owned(), n("0.0125")),
            ("created_at".to_owned(), s(layout::sortable(r.created_at))),
            ("expires_at".to_owned(), s(layout::sortable(r.expires_at))),
        ]));
        assert_eq!(
            reservation_of_map(&r.tenant, &user, &r.id, &legacy).unwrap(),
            r
        );
        let spilled: Reservation = from_item(&spilled_item(&r).unwrap()).unwrap();
        assert_eq!(spilled, r);
        let mut state = Item::new();
        state.insert(layout::PK.into(), s(layout::user_pk(&r.tenant, "alice")));
        state.insert(layout::reservation_attr(&r.id), reservation_map(&r));
        assert_eq!(open_reservations(&state).unwrap(), vec![r.clone()]);
        state.remove(&layout::reservation_attr(&r.id));
        state.insert(format!("r|{}", r.id), reservation_map(&r));
        assert_eq!(open_reservations(&state).unwrap(), vec![r.clone()]);
        let tomb = tombstone_item(&r, ReservationStatus::Settled).unwrap();
        let closed: Reservation = from_item(&tomb).unwrap();
        assert_eq!(closed.status, ReservationStatus::Settled);
        assert_eq!(closed.held, r.held);
    }

    #[test]
    fn unpublished_alerts_carry_outbox_keys_and_published_ones_do_not() {
        let mut a = Alert {
            id: "a1".into(),
            tenant: TenantId::parse("acme").unwrap(),
            user: UserId::parse("alice").unwrap(),
            period_start: at(1, 0),
            key: "calls:gemini@80".into(),
            metric: Some("calls:gemini".into()),
            threshold: Some(80),
            severity: Severity::Info,
            title: "t".into(),
            message: "m".into(),
            created_at: at(10, 12),
            read: false,
            published: false,
            org: None,
            budget: None,
        };
        let item = alert_item(&a).unwrap();
        assert_eq!(get_s(&item, layout::OUTBOX_PK), Some("OUTBOX"));
        assert_eq!(
            get_s(&item, layout::USER_SK),
            Some("ALERT#2025-03-10T12:00:00.000000000Z#a1")
        );
        assert_eq!(from_item::<Alert>(&item).unwrap(), a);
        a.published = true;
        assert!(!alert_item(&a).unwrap().contains_key(layout::OUTBOX_PK));
    }
}
