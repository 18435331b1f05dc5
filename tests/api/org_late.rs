//! Issue 18: an event naming an org that arrives after the org's period was invoiced is
//! billed once, as an adjustment on the org's next invoice (as a user's late event is),
//! through the router and the aggregation on SQLite. The store's promise under racing
//! closes is in tests/conformance/org_late.rs (both stores).

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::{json, Value};

use meter_core::testing::TestClock;
use meter_tests::TestApp;

const P: &str = "/api/subscription";

fn event(id: &str, user: &str, at: &str) -> Value {
    json!({"event_id": id, "user_id": user, "org_id": "acme", "provider": "gemini",
           "model": "gemini-2.5-flash", "input_tokens": 1000, "timestamp": at})
}

async fn pass(app: &TestApp, clock: &TestClock, at: &str) {
    let at: DateTime<Utc> = at.parse().unwrap();
    clock.set(at);
    app.aggregate_at(at).await;
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
async fn a_late_org_event_is_an_adjustment_on_the_orgs_next_invoice_once() {
    let clock = TestClock::at("2026-03-10T12:00:00Z");
    let app = TestApp::spawn_at(&clock).await;
    app.put(
        &format!("{P}/org/acme/subscription"),
        json!({"plan": "pro"}),
    )
    .await
    .assert_ok("org subscription");
    app.usage(json!({"events": [
        event("m1", "ann", "2026-03-10T12:00:00Z"),
        event("m2", "bob", "2026-03-10T12:00:00Z"),
    ]}))
    .await
    .assert_ok("march");

    pass(&app, &clock, "2026-04-01T00:20:00Z").await;
    let invoices = org_invoices(&app).await;
    assert_eq!(invoices.len(), 1, "{invoices:?}");
    let march = invoices[0].clone();
    assert_eq!(amount(&march["adjustments_usd"]), Decimal::ZERO);

    // Reported after March was invoiced, for a call made on its last evening.
    let late = json!({"events": [event("m3", "cat", "2026-03-31T23:00:00Z")]});
    let r = app.usage(late.clone()).await;
    r.assert_ok("late");
    assert_eq!(
        r.body["data"]["events"][0]["status"], "recorded",
        "{}",
        r.body
    );
    let late_cost = amount(&r.body["data"]["events"][0]["cost_usd"]);
    assert!(late_cost > Decimal::ZERO);
    // A redelivery is a duplicate: it adds nothing.
    let r = app.usage(late).await;
    assert_eq!(
        r.body["data"]["events"][0]["status"], "duplicate",
        "{}",
        r.body
    );
    // The invoice of March is never rewritten.
    assert_eq!(org_invoices(&app).await, vec![march.clone()]);

    // April's invoice carries the late event as March's adjustment, once.
    pass(&app, &clock, "2026-05-01T00:20:00Z").await;
    pass(&app, &clock, "2026-05-01T00:30:00Z").await;
    let invoices = org_invoices(&app).await;
    assert_eq!(invoices.len(), 2, "{invoices:?}");
    assert_eq!(invoices[0], march);
    let april = &invoices[1];
    assert_eq!(april["period"]["start"], "2026-04-01T00:00:00Z");
    assert_eq!(amount(&april["usage_usd"]), Decimal::ZERO, "{april}");
    assert_eq!(amount(&april["adjustments_usd"]), late_cost, "{april}");
    let lines: Vec<&Value> = april["line_items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["kind"] == "adjustment")
        .collect();
    assert_eq!(lines.len(), 1, "{april}");
    assert_eq!(amount(&lines[0]["amount_usd"]), late_cost, "{april}");
    assert_eq!(
        amount(&april["total_usd"]),
        (amount(&april["base_usd"]) + late_cost).round_dp(2),
        "{april}"
    );

    // Nothing is pending any more: May's invoice has no adjustment.
    pass(&app, &clock, "2026-06-01T00:20:00Z").await;
    let invoices = org_invoices(&app).await;
    assert_eq!(invoices.len(), 3);
    assert_eq!(amount(&invoices[2]["adjustments_usd"]), Decimal::ZERO);
}
