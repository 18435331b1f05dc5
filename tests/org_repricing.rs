//! Issue 18: an event naming an org that was recorded while no price was in force is
//! billed to the org once the aggregation prices it: the org's usage, its members' and
//! teams' figures and its invoice show the cost; priced after the org's period was
//! invoiced, the cost is one adjustment line on the org's next invoice. One story through
//! the router and the aggregation, run on SQLite (`tests/api`) and on DynamoDB
//! (`tests/emulator`); the store's promise under racing passes is in
//! tests/conformance/org_repricing.rs.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::{json, Value};

use meter_core::service::aggregate::{AggregateOptions, AggregateReport};
use meter_core::store::Store;
use meter_core::testing::TestClock;

use crate::TestApp;

const P: &str = "/api/subscription";

fn event(id: &str, user: &str, model: &str, at: &str) -> Value {
    json!({"event_id": id, "user_id": user, "org_id": "acme", "team_id": "red",
           "provider": "openai", "model": model, "timestamp": at,
           "input_tokens": 1000, "output_tokens": 200})
}

async fn pass(app: &TestApp, clock: &TestClock, at: &str) -> AggregateReport {
    let at: DateTime<Utc> = at.parse().unwrap();
    clock.set(at);
    app.aggregate_at(at).await
}

/// Prices `model` from February on ($0.004 an event above).
pub async fn add_price(app: &TestApp, model: &str) {
    let id = format!("openai/{model}@2026-02-01T00:00:00Z");
    let version = json!({
        "id": id, "provider": "openai", "model": model,
        "effective_from": "2026-02-01T00:00:00Z",
        "prices": {"input_token": "0.000002", "output_token": "0.00001"}, "source": "test"
    });
    app.store
        .put_price_version(None, &id, &version)
        .await
        .unwrap();
    app.meter.forget_catalog(None);
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

async fn org_cost(app: &TestApp) -> Decimal {
    let r = app.get(&format!("{P}/org/acme/usage")).await;
    r.assert_ok("org usage");
    amount(&r.body["data"]["total_cost"])
}

/// The story, on `store` (`None`: a fresh SQLite store).
pub async fn a_repriced_org_event_is_billed_to_the_org_once(store: Option<Arc<dyn Store>>) {
    let clock = TestClock::at("2026-03-10T12:00:00Z");
    let mut setup = TestApp::setup().clock(&clock);
    if let Some(store) = store {
        setup = setup.store(store);
    }
    let app = setup.spawn().await;
    app.put(
        &format!("{P}/org/acme/subscription"),
        json!({"plan": "pro"}),
    )
    .await
    .assert_ok("org subscription");

    // cid (no org, on Pro) has a monthly cost budget of his own: $0.003.
    app.put(
        &format!("{P}/user/cid/subscription"),
        json!({"plan": "pro"}),
    )
    .await
    .assert_ok("cid's subscription");
    app.put(
        &format!("{P}/budgets/cid-month"),
        json!({"scope": {"kind": "user", "user_id": "cid"}, "limits": {"cost_usd": "0.003"},
               "window": "month", "mode": "hard"}),
    )
    .await
    .assert_ok("cid's budget");
    let mut own = event("c1", "cid", "gpt-9-preview", "2026-03-10T12:00:00Z");
    own.as_object_mut().unwrap().remove("org_id");
    own.as_object_mut().unwrap().remove("team_id");
    app.usage(json!({"events": [own]}))
        .await
        .assert_ok("cid's event");
    let cid_check = json!({"user_id": "cid", "provider": "openai"});
    app.check(cid_check.clone())
        .await
        .assert_ok("cid's budget counted $0");

    // Recorded while gpt-9-preview has no price: the org counts the call at $0.
    let r = app
        .usage(json!({"events": [event("p1", "ann", "gpt-9-preview", "2026-03-10T12:00:00Z")]}))
        .await;
    r.assert_ok("ingest");
    assert_eq!(r.body["data"]["events"][0]["priced"], false, "{}", r.body);
    assert_eq!(org_cost(&app).await, Decimal::ZERO);

    // The price is added; two passes race: one prices the event.
    add_price(&app, "gpt-9-preview").await;
    clock.set("2026-03-11T00:00:00Z".parse().unwrap());
    let at = "2026-03-11T00:00:00Z".parse().unwrap();
    let opts = AggregateOptions {
        at: Some(at),
        ..AggregateOptions::default()
    };
    let (a, b) = tokio::join!(app.meter.aggregate(&opts), app.meter.aggregate(&opts));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.repriced_events + b.repriced_events, 2, "{a:?} {b:?}");
    // cid's own budget counts his event's cost: $0.004 > $0.003.
    let denied = app.check(cid_check).await;
    assert_eq!(denied.status, 429, "{}", denied.body);
    assert_eq!(
        denied.body["error"]["details"]["budget_id"], "cid-month",
        "{}",
        denied.body
    );
    let cost = Decimal::new(4, 3);
    assert_eq!(org_cost(&app).await, cost, "the org's usage shows the cost");
    let r = app.get(&format!("{P}/org/acme/members")).await;
    r.assert_ok("members");
    let m = &r.body["data"];
    assert_eq!(amount(&m["users"][0]["cost_usd"]), cost, "{m}");
    assert_eq!(amount(&m["teams"][0]["cost_usd"]), cost, "{m}");

    // Another event of March on a model still without a price.
    let r = app
        .usage(json!({"events": [event("p2", "bob", "gpt-9-mini", "2026-03-10T18:00:00Z")]}))
        .await;
    r.assert_ok("ingest 2");
    assert_eq!(r.body["data"]["events"][0]["priced"], false, "{}", r.body);

    // March's invoice bills the re-priced event (p2 still at $0).
    pass(&app, &clock, "2026-04-01T00:20:00Z").await;
    let invoices = org_invoices(&app).await;
    assert_eq!(invoices.len(), 1, "{invoices:?}");
    let march = invoices[0].clone();
    assert_eq!(amount(&march["usage_usd"]), cost, "{march}");

    // p2 is priced after March was invoiced: one adjustment line on April's invoice.
    add_price(&app, "gpt-9-mini").await;
    let r = pass(&app, &clock, "2026-04-02T00:00:00Z").await;
    assert_eq!(r.repriced_events, 1, "{r:?}");
    assert_eq!(
        pass(&app, &clock, "2026-04-02T00:10:00Z")
            .await
            .repriced_events,
        0
    );
    assert_eq!(
        org_invoices(&app).await,
        vec![march.clone()],
        "never rewritten"
    );
    pass(&app, &clock, "2026-05-01T00:20:00Z").await;
    let invoices = org_invoices(&app).await;
    assert_eq!(invoices.len(), 2, "{invoices:?}");
    let april = &invoices[1];
    assert_eq!(amount(&april["usage_usd"]), Decimal::ZERO, "{april}");
    assert_eq!(amount(&april["adjustments_usd"]), cost, "{april}");
    let lines: Vec<&Value> = april["line_items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["kind"] == "adjustment")
        .collect();
    assert_eq!(lines.len(), 1, "{april}");
    assert_eq!(amount(&lines[0]["amount_usd"]), cost, "{april}");

    // Nothing is pending any more.
    pass(&app, &clock, "2026-06-01T00:20:00Z").await;
    let invoices = org_invoices(&app).await;
    assert_eq!(invoices.len(), 3);
    assert_eq!(amount(&invoices[2]["adjustments_usd"]), Decimal::ZERO);
}
