//! Issue 18: a cancelled org's pending adjustments are billed, once (docs/billing.md, "Org
//! invoices and late events"): with no later period of a subscription to close, the last
//! ended period carries them, as for a user without a subscription. Through the router
//! and the aggregation on SQLite; the DynamoDB run is tests/emulator/org_cancelled.rs.

use rust_decimal::Decimal;
use serde_json::{json, Value};

use meter_core::testing::TestClock;
use meter_tests::TestApp;

const P: &str = "/api/subscription";

fn event(id: &str, user: &str, at: &str) -> Value {
    json!({"events": [{"event_id": id, "user_id": user, "org_id": "acme", "provider": "gemini",
           "model": "gemini-2.5-flash", "input_tokens": 1000, "timestamp": at}]})
}

async fn pass(app: &TestApp, clock: &TestClock, at: &str) {
    clock.set(at.parse().unwrap());
    app.aggregate_at(at.parse().unwrap()).await;
}

fn amount(v: &Value) -> Decimal {
    v.as_str()
        .unwrap_or_else(|| panic!("not a decimal string: {v}"))
        .parse()
        .unwrap()
}

async fn org_invoices(app: &TestApp) -> Vec<Value> {
    let r = app.get(&format!("{P}/org/acme/billing")).await;
    r.assert_ok("org billing");
    let mut invoices = r.body["data"]["invoices"].as_array().unwrap().clone();
    invoices.sort_by_key(|i| i["period"]["start"].as_str().unwrap().to_owned());
    invoices
}

#[tokio::test]
async fn a_cancelled_orgs_pending_adjustments_are_billed_once() {
    let clock = TestClock::at("2026-03-10T12:00:00Z");
    let app = TestApp::spawn_at(&clock).await;
    app.put(
        &format!("{P}/org/acme/subscription"),
        json!({"plan": "pro"}),
    )
    .await
    .assert_ok("org subscription");
    app.usage(event("c1", "ann", "2026-03-10T12:00:00Z"))
        .await
        .assert_ok("march");
    pass(&app, &clock, "2026-04-01T00:20:00Z").await;
    assert_eq!(org_invoices(&app).await.len(), 1);

    // A late March call, then the org cancels at once.
    let r = app.usage(event("c2", "bob", "2026-03-31T23:00:00Z")).await;
    r.assert_ok("late");
    let late_cost = amount(&r.body["data"]["events"][0]["cost_usd"]);
    assert!(late_cost > Decimal::ZERO);
    clock.set("2026-04-05T09:00:00Z".parse().unwrap());
    app.put(
        &format!("{P}/org/acme/subscription"),
        json!({"plan": "pro", "status": "cancelled"}),
    )
    .await
    .assert_ok("cancel");

    // Nothing before April ended; then April carries the adjustment, without a base.
    pass(&app, &clock, "2026-04-20T00:00:00Z").await;
    assert_eq!(org_invoices(&app).await.len(), 1);
    pass(&app, &clock, "2026-05-01T00:20:00Z").await;
    pass(&app, &clock, "2026-05-01T00:30:00Z").await;
    let invoices = org_invoices(&app).await;
    assert_eq!(invoices.len(), 2, "{invoices:?}");
    let april = &invoices[1];
    assert_eq!(april["period"]["start"], "2026-04-01T00:00:00Z");
    assert_eq!(amount(&april["base_usd"]), Decimal::ZERO, "{april}");
    assert_eq!(amount(&april["adjustments_usd"]), late_cost, "{april}");
    assert_eq!(
        amount(&april["total_usd"]),
        late_cost.round_dp(2),
        "{april}"
    );

    // Once: later passes bill nothing more.
    pass(&app, &clock, "2026-06-01T00:20:00Z").await;
    pass(&app, &clock, "2026-07-01T00:20:00Z").await;
    assert_eq!(org_invoices(&app).await.len(), 2);
}

/// An org cancelled at once: the calls of the period it was cancelled in (counted on its
/// pooled counter before the cancellation) are invoiced once after that period, without
/// a base, with no adjustment pending.
#[tokio::test]
async fn a_cancelled_orgs_last_period_usage_is_billed_once() {
    let clock = TestClock::at("2026-03-10T12:00:00Z");
    let app = TestApp::spawn_at(&clock).await;
    app.put(
        &format!("{P}/org/acme/subscription"),
        json!({"plan": "pro"}),
    )
    .await
    .assert_ok("org subscription");
    pass(&app, &clock, "2026-04-01T00:20:00Z").await;
    assert_eq!(org_invoices(&app).await.len(), 1, "March");

    clock.set("2026-04-02T09:00:00Z".parse().unwrap());
    let r = app.usage(event("c3", "ann", "2026-04-02T09:00:00Z")).await;
    r.assert_ok("april call");
    let cost = amount(&r.body["data"]["events"][0]["cost_usd"]);
    assert!(cost > Decimal::ZERO);
    clock.set("2026-04-05T09:00:00Z".parse().unwrap());
    app.put(
        &format!("{P}/org/acme/subscription"),
        json!({"plan": "pro", "status": "cancelled"}),
    )
    .await
    .assert_ok("cancel");

    pass(&app, &clock, "2026-04-20T00:00:00Z").await;
    assert_eq!(org_invoices(&app).await.len(), 1, "April has not ended");
    // Two racing passes: one invoice.
    tokio::join!(
        pass(&app, &clock, "2026-05-01T00:20:00Z"),
        pass(&app, &clock, "2026-05-01T00:20:00Z")
    );
    let invoices = org_invoices(&app).await;
    assert_eq!(invoices.len(), 2, "{invoices:?}");
    let april = &invoices[1];
    assert_eq!(april["period"]["start"], "2026-04-01T00:00:00Z");
    assert_eq!(amount(&april["base_usd"]), Decimal::ZERO, "{april}");
    assert_eq!(amount(&april["usage_usd"]), cost, "{april}");
    assert_eq!(amount(&april["adjustments_usd"]), Decimal::ZERO, "{april}");

    pass(&app, &clock, "2026-06-01T00:20:00Z").await;
    assert_eq!(org_invoices(&app).await.len(), 2, "once");
}
