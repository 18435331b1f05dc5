//! Billing versions; the request budget of the billing methods and late events racing
//! closes, against the emulator.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

use crate::domain::{
    EventId, Invoice, InvoiceStatus, ModelId, PlanName, ProviderId, TenantId, UsageEvent, UserId,
};
use crate::periods::Period;
use crate::store::dynamo::billing::BillingVersion;
use crate::store::dynamo::expressions::Expr;
use crate::store::dynamo::layout;
use crate::store::dynamo::{create_table, DynamoStore, RequestCounter};
use crate::store::{
    BillingState, CloseOutcome, InvoiceStore, RecordOutcome, SubscriptionStore, UsageStore,
};
use crate::usage::UsageCounts;

#[test]
fn billing_versions_round_trip_and_foreign_text_is_rejected() {
    let v = BillingVersion {
        billed_to: Some(layout::billed_to(
            chrono::TimeZone::with_ymd_and_hms(&Utc, 2025, 4, 1, 0, 0, 0).unwrap(),
        )),
        writes: dec!(7),
        adjv: dec!(2),
    };
    assert_eq!(v.text(), "2025-04-01T00:00:00.000000000Z|7|2");
    assert_eq!(BillingVersion::parse(&v.text()), Some(v));
    let none = BillingVersion {
        billed_to: None,
        writes: Decimal::ZERO,
        adjv: Decimal::ZERO,
    };
    assert_eq!(none.text(), "-|0|0");
    assert_eq!(BillingVersion::parse("-|0|0"), Some(none));
    for bad in ["", "-|0", "-|0|0|0", "-|x|0", "v3"] {
        assert_eq!(BillingVersion::parse(bad), None, "{bad}");
    }
}

#[test]
fn billing_version_condition_requires_each_part_unchanged() {
    let p = chrono::TimeZone::with_ymd_and_hms(&Utc, 2025, 3, 1, 0, 0, 0).unwrap();
    let v = BillingVersion {
        billed_to: None,
        writes: dec!(3),
        adjv: Decimal::ZERO,
    };
    let mut x = Expr::default();
    assert_eq!(
        v.condition(&mut x, p),
        "attribute_not_exists(#n0) AND #n1 = :v0 AND (attribute_not_exists(#n2) OR #n2 = :v1)"
    );
    let names = x.names().unwrap();
    assert_eq!(names["#n0"], "billed_to");
    assert_eq!(names["#n1"], "w|1740787200");
    assert_eq!(names["#n2"], "adjv");
}

// The request budget of the billing methods, and races, against the emulator.

fn at(m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, m, d, 0, 0, 0).unwrap()
}

fn event(t: &TenantId, u: &UserId, id: &str, cost: Option<Decimal>) -> UsageEvent {
    UsageEvent {
        tenant: t.clone(),
        user: u.clone(),
        event_id: EventId::parse(id).unwrap(),
        fingerprint: format!("fp-{id}"),
        provider: ProviderId::parse("gemini").unwrap(),
        model: Some(ModelId::parse("gemini-2.5-flash").unwrap()),
        timestamp: at(3, 10),
        period_start: at(3, 1),
        counts: UsageCounts {
            input_tokens: 10,
            ..UsageCounts::default()
        },
        cost_usd: cost,
        price_version: None,
        estimated: false,
        endpoint: None,
        status_code: Some(200),
        latency_ms: None,
        reservation_id: None,
        metadata: None,
        recorded_at: at(3, 10),
        org_id: None,
        team_id: None,
        payer: None,
    }
}

fn invoice(s: &BillingState) -> Invoice {
    let month = chrono::Datelike::month(&s.period_start);
    let adjustments: Decimal = s.adjustments.values().map(|a| a.cost_usd).sum();
    Invoice {
        id: uuid::Uuid::new_v4().to_string(),
        tenant: s.tenant.clone(),
        user: s.user.to_string(),
        period: Period {
            start: s.period_start,
            end: at(month + 1, 1),
        },
        plan: PlanName::free(),
        base_usd: Decimal::ZERO,
        usage_usd: Decimal::ZERO,
        overage_usd: Decimal::ZERO,
        proration_usd: Decimal::ZERO,
        adjustments_usd: adjustments,
        total_usd: adjustments,
        line_items: Vec::new(),
        status: InvoiceStatus::Pending,
        created_at: at(month + 1, 1),
        published: false,
        extra: Default::default(),
    }
}

fn took(counter: &RequestCounter, want: &[(&str, u64)]) {
    let want: BTreeMap<String, u64> = want.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect();
    assert_eq!(counter.take(), want);
}

#[tokio::test]
#[ignore = "needs the emulator: run through scripts/with-moto with --ignored"]
async fn billing_methods_stay_within_their_request_budget() {
    let config = crate::config::load_aws().await;
    let table = format!("meter-budget-{}", uuid::Uuid::new_v4().simple());
    let (store, counter) = DynamoStore::with_request_counter(&config, table.clone());
    create_table(store.client(), &table).await.unwrap();
    let (t, u) = (
        TenantId::parse("acme").unwrap(),
        UserId::parse("alice").unwrap(),
    );
    store
        .record_events(&[
            event(&t, &u, "priced", Some(dec!(1))),
            event(&t, &u, "unpriced", None),
        ])
        .await
        .unwrap();
    counter.take();

    let users = store.list_users(None, 10).await.unwrap();
    assert_eq!(users.items.len(), 1);
    took(&counter, &[("Query", 1)]);
    let unpriced = store.unpriced_events(None, 10).await.unwrap();
    assert_eq!(unpriced.items.len(), 1);
    took(&counter, &[("Query", 1)]);

    // The state item and the period's item in one read.
    let state = store.billing_state(&t, &u, at(3, 1)).await.unwrap();
    took(&counter, &[("BatchGetItem", 1)]);
    let inv = invoice(&state);
    assert_eq!(
        store
            .close_period(&inv, &state, inv.period.end)
            .await
            .unwrap(),
        CloseOutcome::Closed
    );
    // The state item again (the attributes the close moves), then one transaction.
    took(&counter, &[("GetItem", 1), ("TransactWriteItems", 1)]);

    // A late event: the common-path transaction fails, one read, one retry.
    store
        .record_events(&[event(&t, &u, "late", Some(dec!(0.5)))])
        .await
        .unwrap();
    took(&counter, &[("GetItem", 1), ("TransactWriteItems", 2)]);

    let id = EventId::parse("unpriced").unwrap();
    assert!(store.price_event(&t, &id, dec!(2), "v1").await.unwrap());
    took(&counter, &[("GetItem", 2), ("TransactWriteItems", 1)]);
    let april = store.billing_state(&t, &u, at(4, 1)).await.unwrap();
    assert_eq!(
        april.adjustments[&at(3, 1)],
        crate::store::Adjustment {
            events: 2,
            cost_usd: dec!(2.5)
        }
    );
    assert_eq!(april.billed_to, Some(at(4, 1)));
    counter.take();

    assert_eq!(
        store.unpublished_invoices(10).await.unwrap(),
        vec![inv.clone()]
    );
    took(&counter, &[("Query", 1)]);
    store.mark_invoice_published(&inv).await.unwrap();
    took(&counter, &[("UpdateItem", 1)]);
    assert!(store.unpublished_invoices(10).await.unwrap().is_empty());
    counter.take();

    store.put_job_cursor("aggregate", Some("c1")).await.unwrap();
    took(&counter, &[("PutItem", 1)]);
    assert_eq!(
        store.get_job_cursor("aggregate").await.unwrap().as_deref(),
        Some("c1")
    );
    took(&counter, &[("GetItem", 1)]);
    store.put_job_cursor("aggregate", None).await.unwrap();
    took(&counter, &[("DeleteItem", 1)]);
}

/// Closes the period starting in `month`, reading the state again while it changes.
async fn close(store: &DynamoStore, t: &TenantId, u: &UserId, month: u32) -> Invoice {
    loop {
        let s = store.billing_state(t, u, at(month, 1)).await.unwrap();
        let inv = invoice(&s);
        match store.close_period(&inv, &s, inv.period.end).await.unwrap() {
            CloseOutcome::Closed => return inv,
            CloseOutcome::Changed => continue,
            CloseOutcome::AlreadyInvoiced => panic!("month {month} closed twice"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs the emulator: run through scripts/with-moto with --ignored"]
async fn late_events_racing_closes_are_billed_exactly_once() {
    let config = crate::config::load_aws().await;
    let table = format!("meter-races-{}", uuid::Uuid::new_v4().simple());
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&config), table.clone());
    create_table(store.client(), &table).await.unwrap();
    let (t, u) = (
        TenantId::parse("acme").unwrap(),
        UserId::parse("alice").unwrap(),
    );
    store
        .record_events(&[event(&t, &u, "on-time", Some(dec!(1)))])
        .await
        .unwrap();
    let march = close(&store, &t, &u, 3).await;
    assert_eq!(march.adjustments_usd, Decimal::ZERO);

    // 3 writers × 10 late March events of 0.5 each, while April … August close.
    let mut writers = Vec::new();
    for w in 0..3 {
        let (store, t, u) = (store.clone(), t.clone(), u.clone());
        writers.push(tokio::spawn(async move {
            for i in 0..10 {
                let e = event(&t, &u, &format!("late-{w}-{i}"), Some(dec!(0.5)));
                let out = store.record_events(&[e]).await.unwrap();
                assert_eq!(out, vec![RecordOutcome::Recorded]);
            }
        }));
    }
    let mut billed = Decimal::ZERO;
    for month in 4..=8 {
        billed += close(&store, &t, &u, month).await.adjustments_usd;
    }
    for w in writers {
        w.await.unwrap();
    }
    billed += close(&store, &t, &u, 9).await.adjustments_usd;

    assert_eq!(billed, dec!(15));
    let usage = store
        .get_period_usage(&t, &u, &[at(3, 1)])
        .await
        .unwrap()
        .remove(0);
    let gemini = &usage.by_provider[&ProviderId::parse("gemini").unwrap()];
    assert_eq!(
        (gemini.recorded.calls, gemini.recorded.cost_usd),
        (31, dec!(16))
    );
    let after = store.billing_state(&t, &u, at(10, 1)).await.unwrap();
    assert!(after.adjustments.is_empty(), "{:?}", after.adjustments);
    assert_eq!(store.list_invoices(&t, &u).await.unwrap().len(), 7);
}
