//! `meter migrate` on DynamoDB (issue 17): a user written in the PREVIOUS layout (every
//! period's counters, fired keys and write counters on the state item under RFC 3339
//! names with long field names, every open reservation inline with long map keys — the
//! names of `store::dynamo::legacy`, written with raw SDK calls) reads, once migrated, as
//! the same history did in this layout; a run resumed from a job cursor starts after it;
//! a second run does nothing more; the state item holds open periods only, at most 8
//! reservations, and stays under 4 KB.

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};
use meter_core::domain::{Reservation, Role, TenantId, UserId};
use meter_core::service::aggregate::AggregateOptions;
use meter_core::service::{Caller, Meter};
use meter_core::store::dynamo::{layout, legacy, migrate, DynamoStore};
use meter_core::store::{RecordOutcome, ReserveOutcome, Store};
use meter_core::testing::{at, event, reservation, user, TestClock};
use rust_decimal::Decimal;

type Item = HashMap<String, AttributeValue>;

/// The first day of the `i`-th month from April 2023 (`23` is March 2025, `24` April).
fn month(i: u32) -> DateTime<Utc> {
    let m = 3 + i;
    at(2023 + (m / 12) as i32, m % 12 + 1, 1, 0)
}

fn num(v: &AttributeValue) -> Decimal {
    v.as_n().unwrap().parse().unwrap()
}

/// Adds `v` to `name` of `item` (numbers summed, string sets joined).
fn add(item: &mut Item, name: String, v: &AttributeValue) {
    let merged = match (item.get(&name), v) {
        (None, v) => v.clone(),
        (Some(AttributeValue::N(_)), AttributeValue::N(_)) => {
            AttributeValue::N((num(&item[&name]) + num(v)).to_string())
        }
        (Some(AttributeValue::Ss(a)), AttributeValue::Ss(b)) => {
            let mut all: Vec<String> = a.iter().chain(b).cloned().collect();
            all.sort();
            all.dedup();
            AttributeValue::Ss(all)
        }
        (old, new) => panic!("cannot add {new:?} to {old:?}"),
    };
    item.insert(name, merged);
}

/// The map of an open reservation in the previous layout.
fn legacy_map(r: &Reservation) -> AttributeValue {
    let s = |v: String| AttributeValue::S(v);
    let n = |v: String| AttributeValue::N(v);
    AttributeValue::M(HashMap::from([
        ("provider".to_owned(), s(r.provider.to_string())),
        ("period".to_owned(), s(legacy::period_key(r.period_start))),
        ("calls".to_owned(), n(r.held.calls.to_string())),
        ("tokens".to_owned(), n(r.held.tokens.to_string())),
        ("cost".to_owned(), n(r.held.cost_usd.to_string())),
        ("created_at".to_owned(), s(layout::sortable(r.created_at))),
        ("expires_at".to_owned(), s(layout::sortable(r.expires_at))),
    ]))
}

async fn partition(client: &Client, table: &str, pk: &str) -> Vec<Item> {
    client
        .query()
        .table_name(table)
        .key_condition_expression("PK = :pk")
        .expression_attribute_values(":pk", AttributeValue::S(pk.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default()
}

/// Rewrites the user's items as the previous layout stored them: one state item with
/// every period's attributes and every open reservation; no period or spilled items.
async fn to_previous_layout(
    store: &Arc<dyn Store>,
    client: &Client,
    table: &str,
    t: &TenantId,
    u: &UserId,
) {
    let pk = layout::user_pk(t, u.as_str());
    let items = partition(client, table, &pk).await;
    let mut state = Item::new();
    let reservation = |id: String| {
        let store = store.clone();
        let t = t.clone();
        async move { store.get_reservation(&t, &id).await.unwrap().unwrap() }
    };
    for item in &items {
        let sk = item[layout::SK].as_s().unwrap();
        if sk == layout::STATE_SK {
            for (name, v) in item {
                if let Some((p, field, provider)) = layout::parse_counter(name) {
                    add(&mut state, legacy::counter(p, field, provider), v);
                } else if let Some(id) = name.strip_prefix(layout::FIRED_PREFIX) {
                    let p = layout::parse_period_id(id).unwrap();
                    add(&mut state, legacy::fired(p), v);
                } else if let Some(id) = name.strip_prefix(layout::WRITES_PREFIX) {
                    let p = layout::parse_period_id(id).unwrap();
                    add(&mut state, legacy::writes(p), v);
                } else if let Some((p, part)) = layout::parse_adjustment(name) {
                    add(&mut state, legacy::adjustment(p, part), v);
                } else if name.starts_with(layout::RESERVATION_PREFIX) {
                    let id = layout::reservation_id_of(name, u).unwrap();
                    let r = reservation(id.clone()).await;
                    state.insert(format!("r|{id}"), legacy_map(&r));
                } else if name != layout::INLINE_HOLDS {
                    state.insert(name.clone(), v.clone());
                }
            }
        } else if let Some(start) = layout::parse_period_sk(sk) {
            for (name, v) in item {
                if let Some((field, provider)) = layout::parse_period_counter(name) {
                    add(&mut state, legacy::counter(start, field, provider), v);
                } else if name == layout::PERIOD_FIRED {
                    add(&mut state, legacy::fired(start), v);
                }
            }
        } else if let Some(id) = sk.strip_prefix("RSV#") {
            if item
                .get("status")
                .and_then(|s| s.as_s().ok())
                .map(String::as_str)
                == Some("held")
            {
                let r = reservation(id.to_owned()).await;
                state.insert(format!("r|{id}"), legacy_map(&r));
            } else {
                continue;
            }
        } else {
            continue;
        }
        if sk != layout::STATE_SK {
            client
                .delete_item()
                .table_name(table)
                .key(layout::PK, AttributeValue::S(pk.clone()))
                .key(layout::SK, AttributeValue::S(sk.clone()))
                .send()
                .await
                .unwrap();
        }
    }
    client
        .put_item()
        .table_name(table)
        .set_item(Some(state))
        .send()
        .await
        .unwrap();
}

fn size(item: &Item) -> usize {
    fn value(v: &AttributeValue) -> usize {
        match v {
            AttributeValue::S(s) | AttributeValue::N(s) => s.len(),
            AttributeValue::Ss(ss) => ss.iter().map(String::len).sum(),
            AttributeValue::M(m) => {
                3 + m.iter().map(|(k, v)| k.len() + 1 + value(v)).sum::<usize>()
            }
            _ => 1,
        }
    }
    item.iter().map(|(k, v)| k.len() + value(v)).sum()
}

/// Everything the user's history reads as.
#[derive(Debug, PartialEq)]
struct Reads {
    usage: String,
    periods: String,
    billing: String,
    records: String,
    invoices: String,
    reservations: Vec<Reservation>,
    views: Vec<serde_json::Value>,
}

async fn reads(
    store: &Arc<dyn Store>,
    meter: &Meter,
    t: &TenantId,
    u: &UserId,
    ids: &[String],
) -> Reads {
    let starts: Vec<_> = (0..=24).map(month).collect();
    let usage = store.get_user_usage(t, u, &|_| month(24)).await.unwrap();
    let periods = store.get_period_usage(t, u, &starts).await.unwrap();
    let b = store.billing_state(t, u, month(24)).await.unwrap();
    let mut records = store.user_records(t, u).await.unwrap();
    records.reservations.sort_by(|a, b| a.id.cmp(&b.id));
    let mut reservations = Vec::new();
    for id in ids {
        reservations.push(store.get_reservation(t, id).await.unwrap().unwrap());
    }
    let caller = Caller {
        tenant: t.clone(),
        role: Role::Admin,
        key_id: "key_0000000000000000".into(),
    };
    let views = vec![
        serde_json::to_value(meter.usage_report(&caller, u, None).await.unwrap()).unwrap(),
        serde_json::to_value(meter.trends(&caller, u, 24).await.unwrap()).unwrap(),
        serde_json::to_value(meter.dashboard(&caller, u).await.unwrap()).unwrap(),
    ];
    Reads {
        usage: format!("{usage:?}"),
        periods: format!("{periods:?}"),
        billing: format!(
            "{:?} {:?} {:?} {:?}",
            b.usage, b.adjustments, b.pending_periods, b.billed_to
        ),
        records: format!("{records:?}"),
        invoices: format!("{:?}", store.list_invoices(t, u).await.unwrap()),
        reservations,
        views,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_previous_layout_user_migrates_to_the_same_reads_and_a_second_run_does_nothing() {
    assert!(
        std::env::var("AWS_ENDPOINT_URL").is_ok(),
        "run through scripts/with-moto (see README)"
    );
    let client = meter_core::config::dynamo_client().await;
    let table = format!("meter-mig-{}", uuid::Uuid::new_v4().simple());
    meter_core::store::dynamo::create_table(&client, &table)
        .await
        .unwrap();
    let dynamo = DynamoStore::new(client.clone(), table.clone());
    let store: Arc<dyn Store> = Arc::new(dynamo.clone());
    let t = TenantId::parse("mig").unwrap();
    let u = user("veteran");
    meter_core::service::bootstrap::bootstrap(store.as_ref(), &t, None, month(0))
        .await
        .unwrap();
    let clock = TestClock::new(month(0));
    let meter = Meter::with_clock(
        store.clone(),
        Arc::new(meter_core::alerts::LogPublisher),
        clock.clock(),
    );

    // Arrange: 24 months on 3 providers, each closed by the aggregation at its end; the
    // current month's usage, an unpriced event, alerts fired in a closed and the current
    // month, a late event (a pending adjustment) and 12 open reservations.
    for i in 0..=24 {
        let mut events = Vec::new();
        for (k, p) in ["gemini", "openai", "anthropic"].iter().enumerate() {
            for j in 0..2u32 {
                let mut e = event(
                    &t,
                    &u,
                    &format!("v-{i}-{k}-{j}"),
                    100 + u64::from(j),
                    &format!("0.0{}{}", i + 1, k + 1),
                );
                e.provider = meter_core::testing::provider(p);
                e.timestamp = month(i) + chrono::Duration::hours(3 + i64::from(j));
                e.recorded_at = e.timestamp;
                e.period_start = month(i);
                e.latency_ms = Some(200 + u64::from(j));
                e.status_code = Some(if j == 1 { 429 } else { 200 });
                events.push(e);
            }
        }
        if i == 24 {
            let mut e = events[0].clone();
            e.event_id = meter_core::domain::EventId::parse("v-unpriced").unwrap();
            e.fingerprint = "fp-unpriced".into();
            e.cost_usd = None;
            e.price_version = None;
            events.push(e);
        }
        let out = store.record_events(&events).await.unwrap();
        assert!(out.iter().all(|o| *o == RecordOutcome::Recorded));
        if i < 24 {
            clock.set(month(i + 1) + chrono::Duration::hours(1));
            let report = meter
                .aggregate(&AggregateOptions {
                    at: Some(month(i + 1) + chrono::Duration::hours(1)),
                    ..AggregateOptions::default()
                })
                .await
                .unwrap();
            assert!(
                serde_json::to_value(&report).unwrap()["invoices_created"].as_u64() >= Some(1),
                "month {i}"
            );
        }
    }
    clock.set(month(24) + chrono::Duration::days(9));
    let mut closed_alert = meter_core::testing::alert(&t, &u, "calls:gemini:80", 0);
    closed_alert.period_start = month(23);
    let mut open_alert = meter_core::testing::alert(&t, &u, "calls:gemini:50", 1);
    open_alert.period_start = month(24);
    for a in [&closed_alert, &open_alert] {
        assert!(store.create_alert_once(a).await.unwrap());
    }
    let mut late = event(&t, &u, "v-late", 7, "0.125");
    late.period_start = month(20);
    late.timestamp = month(20) + chrono::Duration::days(3);
    assert_eq!(
        store.record_events(&[late]).await.unwrap(),
        vec![RecordOutcome::Recorded]
    );
    let mut ids = Vec::new();
    for i in 0..12 {
        let mut r = reservation(
            &t,
            &u,
            10 + i,
            "0.001",
            month(24) + chrono::Duration::days(20),
        );
        r.period_start = month(24);
        r.created_at = month(24) + chrono::Duration::days(9);
        assert_eq!(
            store.reserve(&r, &[]).await.unwrap(),
            ReserveOutcome::Reserved
        );
        ids.push(r.id);
    }
    let expected = reads(&store, &meter, &t, &u, &ids).await;
    assert!(
        expected.billing.contains("cost_usd: 0.125"),
        "{}",
        expected.billing
    );

    // The previous layout, as that version wrote it.
    to_previous_layout(&store, &client, &table, &t, &u).await;
    let pk = layout::user_pk(&t, u.as_str());
    let before = partition(&client, &table, &pk).await;
    let legacy_state = before
        .iter()
        .find(|i| i[layout::SK].as_s().unwrap() == layout::STATE_SK)
        .unwrap();
    assert!(legacy_state
        .keys()
        .any(|k| k.starts_with("c|2023-04-01T00:00:00Z|calls_used|")));
    assert!(!before.iter().any(|i| i[layout::SK]
        .as_s()
        .unwrap()
        .starts_with(layout::PERIOD_PREFIX)));
    assert_eq!(
        legacy_state
            .keys()
            .filter(|k| k.starts_with("r|rsv_"))
            .count(),
        12
    );
    // This build does not read the previous names: the check and usage reads refuse the
    // user (503) instead of reading zeros, until the migration has rewritten it.
    for refused in [
        store.get_user_limits(&t, &u, &|_| month(24)).await,
        store.get_user_usage(&t, &u, &|_| month(24)).await,
    ] {
        assert!(
            matches!(refused, Err(meter_core::store::StoreError::Unavailable(ref m)) if m.contains("meter migrate")),
            "{refused:?}"
        );
    }

    // A second user in the previous layout, listed before the first (`aaa` < `veteran`),
    // with no reservation (so only the `subs` index lists it).
    let early = user("aaa-early");
    let mut e = event(&t, &early, "early-1", 10, "0.5");
    e.period_start = month(24);
    e.timestamp = month(24) + chrono::Duration::days(2);
    store.record_events(&[e]).await.unwrap();
    let early_usage = store
        .get_user_usage(&t, &early, &|_| month(24))
        .await
        .unwrap();
    to_previous_layout(&store, &client, &table, &t, &early).await;
    let early_pk = layout::user_pk(&t, early.as_str());
    let legacy_names = |items: &[Item]| {
        items
            .iter()
            .flat_map(|i| i.keys())
            .filter(|k| legacy::parse(k).is_some())
            .count()
    };

    // Act: a run resumed after `aaa-early` (as if an earlier run stopped there), then again.
    store
        .put_job_cursor(migrate::JOB, Some(&format!("subs|{early_pk}")))
        .await
        .unwrap();
    let first = dynamo.migrate().await.unwrap();
    assert_eq!(
        (first.users_visited >= 1, first.users_changed),
        (true, 1),
        "{first:?}"
    );
    assert!(
        first.steps > 1,
        "a 24-month item takes several bounded steps: {first:?}"
    );
    assert_eq!(first.reservations_spilled, 4);
    assert!(
        legacy_names(&partition(&client, &table, &early_pk).await) > 0,
        "the resumed run starts after the cursor"
    );
    let second = dynamo.migrate().await.unwrap();
    assert!(second.already_done, "{second:?}");
    // From the start again: only the user the resumed run skipped changes.
    store.put_job_cursor(migrate::JOB, None).await.unwrap();
    let again = dynamo.migrate().await.unwrap();
    assert_eq!((again.users_changed, again.steps), (1, 1), "{again:?}");
    assert_eq!(
        legacy_names(&partition(&client, &table, &early_pk).await),
        0
    );
    assert_eq!(
        store
            .get_user_usage(&t, &early, &|_| month(24))
            .await
            .unwrap(),
        early_usage
    );
    // And once more: nothing left to do.
    store.put_job_cursor(migrate::JOB, None).await.unwrap();
    let third = dynamo.migrate().await.unwrap();
    assert_eq!((third.users_changed, third.steps), (0, 0), "{third:?}");

    // Assert: the same reads; the state item holds open periods only and is small.
    assert_eq!(reads(&store, &meter, &t, &u, &ids).await, expected);
    let after = partition(&client, &table, &pk).await;
    let state = after
        .iter()
        .find(|i| i[layout::SK].as_s().unwrap() == layout::STATE_SK)
        .unwrap();
    let billed_to = month(24);
    for name in state.keys() {
        assert!(
            legacy::parse(name).is_none(),
            "{name} left in the previous layout"
        );
        if let Some(p) = layout::period_of_attr(name) {
            assert!(p >= billed_to, "{name}: a closed period on the state item");
        }
    }
    assert_eq!(
        state
            .keys()
            .filter(|k| k.starts_with(layout::RESERVATION_PREFIX))
            .count(),
        8
    );
    assert_eq!(num(&state[layout::INLINE_HOLDS]), Decimal::from(8));
    assert_eq!(num(&state[layout::OPEN_HOLDS]), Decimal::from(12));
    assert!(size(state) <= 4096, "state item {} bytes", size(state));
    assert!(
        size(legacy_state) > 3 * size(state),
        "{} vs {}",
        size(legacy_state),
        size(state)
    );
    let period_items = after
        .iter()
        .filter(|i| {
            i[layout::SK]
                .as_s()
                .unwrap()
                .starts_with(layout::PERIOD_PREFIX)
        })
        .count();
    assert_eq!(period_items, 25);

    // The migrated user keeps working: a reservation (spills: 8 inline), a release of a
    // spilled one, a close of the current month.
    let mut r = reservation(&t, &u, 5, "0.001", month(24) + chrono::Duration::days(20));
    r.period_start = month(24);
    assert_eq!(
        store.reserve(&r, &[]).await.unwrap(),
        ReserveOutcome::Reserved
    );
    for id in ids.iter().chain([&r.id]) {
        assert_eq!(
            store.release_reservation(&t, id).await.unwrap(),
            meter_core::store::ReleaseOutcome::Released
        );
    }
    let g = &store
        .get_user_usage(&t, &u, &|_| month(24))
        .await
        .unwrap()
        .usage
        .by_provider[&meter_core::testing::provider("gemini")];
    assert_eq!(g.held, meter_core::usage::Tally::default());
    let report = meter
        .aggregate(&AggregateOptions {
            at: Some(month(25) + chrono::Duration::hours(1)),
            ..AggregateOptions::default()
        })
        .await
        .unwrap();
    assert_eq!(
        serde_json::to_value(&report).unwrap()["invoices_created"],
        2,
        "the current month of both migrated users"
    );
    assert_eq!(store.list_invoices(&t, &u).await.unwrap().len(), 25);
}
