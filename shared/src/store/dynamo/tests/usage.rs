//! Guards and daily rollups; the request budget of checks, reservations and events.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

use crate::domain::{
    EventId, ModelId, ProviderId, Reservation, ReservationStatus, TenantId, UsageEvent, UserId,
};
use crate::limits::Metric;
use crate::store::dynamo::codec::n;
use crate::store::dynamo::requests::key;
use crate::store::dynamo::reservations::{guard_attr, guard_bound, guard_holds};
use crate::store::dynamo::usage::day_of;
use crate::store::dynamo::{create_table, DynamoStore, RequestCounter};
use crate::store::{Guard, RecordOutcome, ReserveOutcome, UsageStore};
use crate::usage::{Tally, UsageCounts};

fn guard(limit: Decimal, increment: Decimal, strict: bool) -> Guard {
    Guard {
        metric: Metric::CostUsd,
        increment,
        limit,
        strict,
    }
}

#[test]
fn guard_bounds_are_limit_minus_increment_or_fail_without_a_write() {
    // (limit, increment, strict) -> bound
    let table = [
        (dec!(60), dec!(1), false, Some(dec!(59))),
        (dec!(1), dec!(1), false, Some(dec!(0))),
        (dec!(0), dec!(1), false, None),
        (dec!(0), dec!(0), false, Some(dec!(0))),
        (dec!(0.35), dec!(0), true, Some(dec!(0.35))),
        (dec!(0), dec!(0), true, None),
        (dec!(0.40), dec!(0.40), true, None),
    ];
    for (limit, inc, strict, want) in table {
        assert_eq!(
            guard_bound(&guard(limit, inc, strict)),
            want,
            "{limit} {inc} {strict}"
        );
    }
}

#[test]
fn guard_holds_matches_the_stored_condition() {
    assert!(guard_holds(&guard(dec!(60), dec!(1), false), dec!(59)));
    assert!(!guard_holds(&guard(dec!(60), dec!(1), false), dec!(60)));
    assert!(!guard_holds(&guard(dec!(0.35), dec!(0), true), dec!(0.35)));
    assert!(guard_holds(&guard(dec!(0.35), dec!(0), true), dec!(0.34)));
}

#[test]
fn guards_compare_the_provider_or_total_used_counter() {
    let p = chrono::TimeZone::with_ymd_and_hms(&Utc, 2025, 3, 1, 0, 0, 0).unwrap();
    let gemini = ProviderId::parse("gemini").unwrap();
    assert_eq!(
        guard_attr(p, &Metric::Calls(Some(gemini.clone())), false),
        "c|1740787200|cu|gemini"
    );
    assert_eq!(
        guard_attr(p, &Metric::Tokens(None), false),
        "c|1740787200|tu|*"
    );
    assert_eq!(guard_attr(p, &Metric::CostUsd, false), "c|1740787200|$u|*");
    // A closed period's counters are on its period item.
    assert_eq!(
        guard_attr(p, &Metric::Calls(Some(gemini)), true),
        "cu|gemini"
    );
}

#[test]
fn daily_rollup_items_read_back_per_provider() {
    let mut item = key("T#a#U#b", "D#2025-03-05");
    item.insert("calls|openai".into(), n(2));
    item.insert("tokens|openai".into(), n(70));
    item.insert("cost|openai".into(), n("0.25"));
    let d = day_of(&item).unwrap();
    assert_eq!(d.day, NaiveDate::from_ymd_opt(2025, 3, 5).unwrap());
    let t = &d.by_provider[&ProviderId::parse("openai").unwrap()];
    assert_eq!(
        *t,
        Tally {
            calls: 2,
            tokens: 70,
            cost_usd: dec!(0.25)
        }
    );
}

// The request budget, against the emulator.

fn at(d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, d, h, 0, 0).unwrap()
}

fn event(t: &TenantId, u: &UserId, id: &str) -> UsageEvent {
    UsageEvent {
        tenant: t.clone(),
        user: u.clone(),
        event_id: EventId::parse(id).unwrap(),
        fingerprint: format!("fp-{id}"),
        provider: ProviderId::parse("gemini").unwrap(),
        model: Some(ModelId::parse("gemini-2.5-flash").unwrap()),
        timestamp: at(10, 12),
        period_start: at(1, 0),
        counts: UsageCounts {
            input_tokens: 10,
            ..UsageCounts::default()
        },
        cost_usd: Some(dec!(0.0000001)),
        price_version: None,
        estimated: false,
        endpoint: None,
        status_code: Some(200),
        latency_ms: None,
        reservation_id: None,
        metadata: None,
        recorded_at: at(10, 12),
        org_id: None,
        team_id: None,
        payer: None,
    }
}

fn only(counter: &RequestCounter, op: &str) {
    let taken: Vec<_> = counter.take().into_iter().collect();
    assert_eq!(taken, vec![(op.to_owned(), 1)]);
}

#[tokio::test]
#[ignore = "needs the emulator: run through scripts/with-moto with --ignored"]
async fn check_reads_one_item_reserve_is_one_update_and_events_one_transaction() {
    let config = crate::config::load_aws().await;
    let table = format!("meter-budget-{}", uuid::Uuid::new_v4().simple());
    let (store, counter) = DynamoStore::with_request_counter(&config, table.clone());
    create_table(store.client(), &table).await.unwrap();
    let (t, u) = (
        TenantId::parse("acme").unwrap(),
        UserId::parse("alice").unwrap(),
    );
    counter.take();

    store.get_user_limits(&t, &u, &|_| at(1, 0)).await.unwrap();
    only(&counter, "GetItem");
    // The usage view also reads the period's counts: the state item and the newest
    // period item in one query.
    store.get_user_usage(&t, &u, &|_| at(1, 0)).await.unwrap();
    only(&counter, "Query");

    let r = Reservation {
        id: Reservation::new_id(&u),
        tenant: t.clone(),
        user: u.clone(),
        provider: ProviderId::parse("gemini").unwrap(),
        period_start: at(1, 0),
        held: Tally {
            calls: 1,
            tokens: 10,
            cost_usd: dec!(0.01),
        },
        status: ReservationStatus::Held,
        created_at: at(10, 12),
        expires_at: at(10, 13),
        budget_holds: Vec::new(),
    };
    let guard = Guard {
        metric: Metric::Calls(None),
        increment: Decimal::ONE,
        limit: dec!(5),
        strict: false,
    };
    assert_eq!(
        store.reserve(&r, &[guard]).await.unwrap(),
        ReserveOutcome::Reserved
    );
    only(&counter, "UpdateItem");

    let out = store.record_events(&[event(&t, &u, "one")]).await.unwrap();
    assert_eq!(out, vec![RecordOutcome::Recorded]);
    only(&counter, "TransactWriteItems");

    let batch: Vec<_> = (0..40).map(|i| event(&t, &u, &format!("b-{i}"))).collect();
    let out = store.record_events(&batch).await.unwrap();
    assert!(out.iter().all(|o| *o == RecordOutcome::Recorded));
    only(&counter, "TransactWriteItems");

    let usage = store
        .get_user_usage(&t, &u, &|_| at(1, 0))
        .await
        .unwrap()
        .usage;
    let gemini = &usage.by_provider[&ProviderId::parse("gemini").unwrap()];
    assert_eq!(
        gemini.recorded,
        Tally {
            calls: 41,
            tokens: 410,
            cost_usd: dec!(0.0000041)
        }
    );
    assert_eq!(gemini.held, r.held);
}
