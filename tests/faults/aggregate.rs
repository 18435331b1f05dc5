//! The n-th store call of an aggregation pass fails (before or after the store did the
//! work): the pass logs it and goes on with its next step, the store stays consistent, and the next pass finishes the work exactly once: one invoice per user and
//! period equal to the exact sum of its events, expired holds released, the outbox
//! delivered (again only when the fault lost the mark of a delivery: at-least-once).

use std::collections::BTreeMap;

use meter_core::domain::UserId;
use meter_core::testing::instant;
use rust_decimal::Decimal;
use serde_json::json;

use crate::faulty::{Fault, Injected, Timing};
use crate::helpers::{event, spawn_app, App};

const MARCH: &str = "2025-03-20T12:00:00Z";
const APRIL: &str = "2025-04-01T00:05:00Z";

/// Ann crosses 80 % of her gemini calls in March, and the alert's publish fails (it waits
/// in the outbox); Bob has a few events and a hold that expires before April.
async fn arrange() -> App {
    let app = spawn_app(MARCH).await;
    let ann: Vec<_> = (0..80)
        .map(|i| {
            event(
                &format!("ann-{i}"),
                "ann",
                1 + i * 13,
                "2025-03-20T10:00:00Z",
            )
        })
        .collect();
    app.publisher
        .faults
        .inject(Fault::nth(1, Timing::Before).on(&["publish"]));
    app.ingest(&ann).await.assert_ok("ann");
    app.publisher.faults.heal();
    let bob: Vec<_> = (0..3)
        .map(|i| event(&format!("bob-{i}"), "bob", 500 + i, "2025-03-19T10:00:00Z"))
        .collect();
    app.ingest(&bob).await.assert_ok("bob");
    app.check(json!({"user_id": "bob", "provider": "gemini", "estimated_input_tokens": 50, "reserve": true, "reservation_ttl_seconds": 60}))
        .await
        .assert_ok("hold");
    assert_eq!(app.store.unpublished_alerts(10).await.unwrap().len(), 1);
    app.set_now(instant(APRIL));
    app.faulty.faults.take_calls();
    app
}

fn count(ids: Vec<String>) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for id in ids {
        *out.entry(id).or_default() += 1;
    }
    out
}

/// After the faulty pass and a clean one: everything done, once.
async fn verify(app: &App, injected: Option<Injected>) {
    let context = format!("{injected:?}");
    for user in ["ann", "bob"] {
        app.assert_consistent(user, &context).await;
        let u = UserId::parse(user).unwrap();
        let invoices = app.store.list_invoices(&app.tenant, &u).await.unwrap();
        assert_eq!(invoices.len(), 1, "{context}: one invoice for {user}");
        let events = app
            .store
            .user_records(&app.tenant, &u)
            .await
            .unwrap()
            .events;
        let cost: Decimal = events.iter().filter_map(|e| e.cost_usd).sum();
        assert_eq!(invoices[0].usage_usd, cost, "{context}: {user}'s usage");
        assert_eq!(invoices[0].period.start, instant("2025-03-01T00:00:00Z"));
        assert_eq!(app.audit(user).await.held, Default::default(), "{context}");
    }
    assert!(
        app.store.unpublished_alerts(10).await.unwrap().is_empty(),
        "{context}"
    );
    assert!(
        app.store.unpublished_invoices(10).await.unwrap().is_empty(),
        "{context}"
    );

    // Delivered at least once; twice only when the fault lost the mark of a delivery.
    let redelivered = |kind: &str| match injected {
        Some(Injected {
            op,
            timing: Timing::Before,
        }) => op == format!("mark_{kind}_published"),
        _ => false,
    };
    let alerts = count(app.publisher.accepted("alert"));
    assert_eq!(alerts.len(), 1, "{context}: {alerts:?}");
    assert!(
        alerts
            .values()
            .all(|&n| n == 1 + usize::from(redelivered("alert"))),
        "{context}: {alerts:?}"
    );
    let invoices = count(app.publisher.accepted("invoice.created"));
    assert_eq!(invoices.len(), 2, "{context}: {invoices:?}");
    let twice = invoices.values().filter(|&&n| n == 2).count();
    assert!(
        invoices.values().all(|&n| n <= 2),
        "{context}: {invoices:?}"
    );
    if !redelivered("invoice") {
        assert_eq!(twice, 0, "{context}: {invoices:?}");
    }

    // A further pass finds nothing to do.
    let again = app.aggregate().await.unwrap();
    assert_eq!(
        (
            again.expired_reservations,
            again.invoices_created,
            again.alerts_delivered,
            again.invoices_delivered,
        ),
        (0, 0, 0, 0),
        "{context}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_failing_call_of_an_aggregation_pass_is_made_good_by_the_next_pass_once() {
    let dry = arrange().await;
    let report = dry.aggregate().await.unwrap();
    assert_eq!(
        (
            report.expired_reservations,
            report.invoices_created,
            report.alerts_delivered
        ),
        (1, 2, 1)
    );
    let calls = dry.faulty.faults.take_calls();
    verify(&dry, None).await;
    for op in [
        "expire_reservations",
        "unpriced_events",
        "list_users",
        "billing_state",
        "close_period",
        "mark_invoice_published",
        "unpublished_alerts",
        "mark_alert_published",
        "unpublished_invoices",
        "put_job_cursor",
    ] {
        assert!(calls.contains(&op), "{op} not in the pass: {calls:?}");
    }

    // Each step on its own app, concurrently (they share nothing).
    let mut steps = tokio::task::JoinSet::new();
    for (i, op) in calls.into_iter().enumerate() {
        for timing in [Timing::Before, Timing::After] {
            steps.spawn(fail_one_call_of_a_pass(i + 1, op, timing));
        }
    }
    let mut incomplete = 0;
    while let Some(step) = steps.join_next().await {
        incomplete += usize::from(step.unwrap());
    }
    assert!(incomplete > 0, "no failure left a pass incomplete");
}

/// Fails the `n`-th call (`op`) of a pass; `true` if the pass reported itself incomplete.
/// A failing step never stops the pass: it is logged and the next step runs.
async fn fail_one_call_of_a_pass(n: usize, op: &'static str, timing: Timing) -> bool {
    let app = arrange().await;
    app.faulty.faults.inject(Fault::nth(n, timing));
    let faulty = app.aggregate().await;
    app.faulty.faults.heal();
    let injected = app.faulty.faults.injected();
    assert_eq!(injected, vec![Injected { op, timing }]);
    let incomplete = match faulty {
        Ok(report) => !report.complete,
        Err(e) => panic!("{op} {timing:?}: the pass stopped: {e:?}"),
    };
    for user in ["ann", "bob"] {
        app.assert_consistent(user, &format!("{op} {timing:?}, failed pass"))
            .await;
    }
    app.aggregate().await.unwrap();
    verify(&app, Some(injected[0])).await;
    incomplete
}

/// Re-pricing a backlog (thousands of events, each a store write) must not take a pass's
/// whole budget: billing has its own share, so invoices, renewals and holds still move.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_repricing_backlog_does_not_starve_billing() {
    let app = spawn_app(MARCH).await;
    // 600 events of a model without a price, then its price: 600 events to re-price.
    for batch in 0..6 {
        let events: Vec<_> = (0..100)
            .map(|i| {
                json!({"event_id": format!("np-{batch}-{i}"), "user_id": "newco-user",
                       "provider": "newco", "model": "m1", "timestamp": "2025-03-20T10:00:00Z",
                       "input_tokens": 10})
            })
            .collect();
        app.ingest(&events).await.assert_ok("unpriced backlog");
    }
    app.ingest(&[event("inv-1", "payer", 1000, "2025-03-19T10:00:00Z")])
        .await
        .assert_ok("a user to invoice");
    let price = json!({"id": "newco/m1@2025-01-01", "provider": "newco", "model": "m1",
        "effective_from": "2025-01-01T00:00:00Z", "prices": {"input_token": "0.000001"},
        "source": "test"});
    app.store
        .put_price_version(None, "newco/m1@2025-01-01", &price)
        .await
        .unwrap();
    app.meter.forget_catalog(None);
    // Each re-pricing write takes 20 ms: the backlog needs 12 s, the pass has 2 s.
    app.faulty
        .faults
        .slow("price_event", std::time::Duration::from_millis(20));
    app.set_now(instant(APRIL));
    let report = app
        .meter
        .aggregate(&meter_core::service::aggregate::AggregateOptions {
            grace: chrono::Duration::zero(),
            budget: Some(std::time::Duration::from_secs(2)),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(!report.complete);
    assert!(
        report.repriced_events > 0 && report.repriced_events < 600,
        "{report:?}"
    );
    assert!(
        report.invoices_created >= 1,
        "billing ran within the pass: {report:?}"
    );
    let payer = UserId::parse("payer").unwrap();
    assert_eq!(
        app.store
            .list_invoices(&app.tenant, &payer)
            .await
            .unwrap()
            .len(),
        1
    );
}
