//! Unpriced events draw once re-priced (issue 19), one story through the router and the
//! aggregation, run on SQLite (`tests/api`) and on DynamoDB (`tests/emulator`): events a
//! prepaid user recorded while no price was in force draw nothing; once the operator adds
//! the price, racing aggregation passes price them and draw their cost from the user's
//! wallet once (a postpaid user's are priced as before), the crossing raises its alarm
//! once, a replay changes nothing, and the period's invoice credits what they drew.

use std::sync::{Arc, Mutex};

use meter_core::alerts::{AlertPublisher, OutboxMessage, PublishError};
use meter_core::domain::UserId;
use meter_core::service::aggregate::AggregateReport;
use meter_core::store::Store;
use meter_core::testing::{at, TestClock};
use rust_decimal::Decimal;
use serde_json::{json, Value};

use crate::TestApp;

const P: &str = "/api/subscription";

#[derive(Default)]
struct Recorder(Mutex<Vec<OutboxMessage>>);

#[async_trait::async_trait]
impl AlertPublisher for Recorder {
    async fn publish(&self, m: &OutboxMessage) -> Result<(), PublishError> {
        self.0.lock().unwrap().push(m.clone());
        Ok(())
    }
}

impl Recorder {
    fn alarms(&self, user: &str) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m.attributes.get("user_id").map(String::as_str) == Some(user))
            .map(|m| m.attributes["type"].clone())
            .filter(|t| t.starts_with("wallet."))
            .collect()
    }
}

fn event(id: &str, user: &str, day: u32) -> Value {
    json!({"event_id": id, "user_id": user, "provider": "openai", "model": "gpt-9-preview",
           "timestamp": format!("2025-03-{day:02}T10:00:00Z"),
           "input_tokens": 1000, "output_tokens": 200})
}

async fn balance(app: &TestApp, user: &str) -> String {
    let w = app.get(&format!("{P}/wallet/user/{user}")).await;
    w.assert_ok("wallet");
    w.body["data"]["balance_usd"].as_str().unwrap().to_owned()
}

async fn pass(app: &TestApp, at: chrono::DateTime<chrono::Utc>) -> AggregateReport {
    app.aggregate_at(at).await
}

/// The story, on `store` (`None`: a fresh SQLite store).
pub async fn unpriced_prepaid_events_draw_once_repriced(store: Option<Arc<dyn Store>>) {
    let clock = TestClock::new(at(2025, 3, 1, 0));
    let publisher = Arc::new(Recorder::default());
    let mut setup = TestApp::setup().clock(&clock).publisher(publisher.clone());
    if let Some(store) = store {
        setup = setup.store(store);
    }
    let app = Arc::new(setup.spawn().await);
    let plan = json!({"tier": "custom", "monthly_price_usd": "0", "yearly_price_usd": "0",
                      "limits": {"calls:gemini": 1000}, "payment": "prepaid"});
    app.put(&format!("{P}/plans/payg"), plan)
        .await
        .assert_ok("plan");
    app.put(
        &format!("{P}/user/fay/subscription"),
        json!({"plan": "payg"}),
    )
    .await
    .assert_ok("subscribe");
    app.put(
        &format!("{P}/wallet/user/fay/settings"),
        json!({"low_balance_usd": "9.995"}),
    )
    .await
    .assert_ok("level");
    app.put(
        &format!("{P}/wallet/user/fay/grants/topup"),
        json!({"amount_usd": "10", "kind": "purchase"}),
    )
    .await
    .assert_ok("grant");

    // Recorded while gpt-9-preview has no price: fay's (prepaid) and gil's (Free plan,
    // postpaid) events are unpriced and draw nothing.
    clock.set(at(2025, 3, 5, 0));
    let events =
        json!({"events": [event("u1", "fay", 3), event("u2", "fay", 4), event("g1", "gil", 4)]});
    let r = app.usage(events.clone()).await;
    r.assert_ok("ingest");
    assert_eq!(r.body["data"]["events"][0]["priced"], false, "{}", r.body);
    assert_eq!(balance(&app, "fay").await, "10");

    // The operator adds the price (in force since February); two passes race.
    let version = json!({
        "id": "openai/gpt-9-preview@2025-02-01T00:00:00Z", "provider": "openai",
        "model": "gpt-9-preview", "effective_from": "2025-02-01T00:00:00Z",
        "prices": {"input_token": "0.000002", "output_token": "0.00001"}, "source": "test"
    });
    app.store
        .put_price_version(None, "openai/gpt-9-preview@2025-02-01T00:00:00Z", &version)
        .await
        .unwrap();
    app.meter.forget_catalog(None);
    clock.set(at(2025, 3, 6, 0));
    let (a, b) = tokio::join!(pass(&app, at(2025, 3, 6, 0)), pass(&app, at(2025, 3, 6, 0)));
    assert_eq!(a.repriced_events + b.repriced_events, 3, "{a:?} {b:?}");

    // Each of fay's events costs 1000 × 0.000002 + 200 × 0.00001 = $0.004, drawn once.
    assert_eq!(balance(&app, "fay").await, "9.992");
    let fay = UserId::parse("fay").unwrap();
    let draws = app
        .store
        .event_draws(&app.tenant, &fay, None)
        .await
        .unwrap();
    assert_eq!(draws.len(), 2, "{draws:?}");
    assert!(draws
        .iter()
        .all(|d| d.cost_usd == Decimal::new(4, 3) && d.draws.total_usd().unwrap() == d.cost_usd));
    let gil = UserId::parse("gil").unwrap();
    assert!(app
        .store
        .event_draws(&app.tenant, &gil, None)
        .await
        .unwrap()
        .is_empty());
    // $9.992 < $9.995: the crossing the pricing made raises its alarm, once.
    assert_eq!(publisher.alarms("fay"), ["wallet.low_balance"]);

    // Another pass and a replay of the delivery change nothing.
    assert_eq!(pass(&app, at(2025, 3, 6, 1)).await.repriced_events, 0);
    let r = app.usage(events).await;
    r.assert_ok("replay");
    assert_eq!(r.body["data"]["recorded"], 0, "{}", r.body);
    assert_eq!(balance(&app, "fay").await, "9.992");
    assert_eq!(publisher.alarms("fay"), ["wallet.low_balance"]);

    // March's invoice credits what the re-priced events drew.
    clock.set(at(2025, 4, 1, 1));
    pass(&app, at(2025, 4, 1, 1)).await;
    let invoices = app.store.list_invoices(&app.tenant, &fay).await.unwrap();
    assert_eq!(invoices.len(), 1, "{invoices:?}");
    let credits = invoices[0]
        .line_items
        .iter()
        .find(|l| l.kind == "credits_applied")
        .unwrap_or_else(|| panic!("{:?}", invoices[0]));
    assert_eq!(credits.amount_usd, Decimal::new(-8, 3));
    assert_eq!(invoices[0].total_usd, Decimal::ZERO);
}
