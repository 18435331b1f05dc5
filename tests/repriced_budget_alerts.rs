//! Issue 18: a budget threshold crossed by a re-priced cost is alerted. Events recorded
//! while no price was in force count $0 on their cost budgets; when the aggregation
//! prices them, the cost that takes a budget over one of its `alert_thresholds` raises
//! that budget's alert once (racing passes, later passes), to its owner (the org for a
//! pooled org budget, the user for their own), through the outbox. So does a threshold
//! of the user's plan that the cost crosses (`cost_usd` of Free). One story through the
//! router and the aggregation, run on SQLite (`tests/api`) and on DynamoDB
//! (`tests/emulator`).

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use meter_core::alerts::{AlertPublisher, OutboxMessage, PublishError};
use meter_core::service::aggregate::AggregateOptions;
use meter_core::store::Store;
use meter_core::testing::TestClock;

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
    /// The budget alerts published, as `budget_id@threshold owner`, sorted.
    fn budget_alerts(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .0
            .lock()
            .unwrap()
            .iter()
            .filter_map(|m| {
                let a = &m.attributes;
                let budget = a.get("budget_id")?;
                let owner = match a.get("user_id") {
                    Some(u) => format!("user {u}"),
                    None => format!("org {}", a.get("org_id")?),
                };
                Some(format!("{budget}@{} {owner}", a.get("threshold")?))
            })
            .collect();
        out.sort();
        out
    }

    /// The plan alerts of `user` on `cost_usd` published, as their keys' ends, sorted.
    fn plan_cost_alerts(&self, user: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|m| &m.attributes)
            .filter(|a| a.get("budget_id").is_none())
            .filter(|a| a.get("user_id").map(String::as_str) == Some(user))
            .filter_map(|a| {
                let key = a.get("alert_key")?;
                Some(key[key.find("cost_usd@")?..].to_owned())
            })
            .collect();
        out.sort();
        out
    }
}

/// An event on a model without a price yet ($0.004 once priced).
fn event(id: &str, user: &str, org: Option<&str>) -> Value {
    let mut e = json!({"event_id": id, "user_id": user, "provider": "openai",
                       "model": "gpt-9-preview", "timestamp": "2026-03-10T12:00:00Z",
                       "input_tokens": 1000, "output_tokens": 200});
    if let Some(org) = org {
        e["org_id"] = json!(org);
        e["team_id"] = json!("red");
    }
    e
}

/// The keys of the alerts listed at `path` that start with `prefix`, sorted.
async fn keys_from(app: &TestApp, path: &str, prefix: &str) -> Vec<String> {
    let r = app.get(&format!("{P}{path}")).await;
    r.assert_ok("alerts");
    let mut keys: Vec<String> = r.body["data"]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["key"].as_str().unwrap().to_owned())
        .filter(|k| k.starts_with(prefix))
        .collect();
    keys.sort();
    keys
}

async fn keys(app: &TestApp, path: &str) -> Vec<String> {
    keys_from(app, path, "budget/").await
}

/// The story, on `store` (`None`: a fresh SQLite store).
pub async fn a_budget_threshold_crossed_by_a_repriced_cost_is_alerted_once(
    store: Option<Arc<dyn Store>>,
) {
    let clock = TestClock::at("2026-03-10T12:00:00Z");
    let publisher = Arc::new(Recorder::default());
    let mut setup = TestApp::setup().clock(&clock).publisher(publisher.clone());
    if let Some(store) = store {
        setup = setup.store(store);
    }
    let app = setup.spawn().await;
    // acme's pooled daily cost budget: $0.006 (alerts at 50 %); cid's own monthly cost
    // budget: $0.004 (alerts at 50 and 100 %), and a calls budget the pricing does not
    // move (2 calls, alert at 100 %: reached at ingest).
    for (id, body) in [
        (
            "acme-day",
            json!({"scope": {"kind": "org", "org_id": "acme"}, "limits": {"cost_usd": "0.006"},
                   "window": "day", "mode": "soft", "alert_thresholds": [50, 90]}),
        ),
        (
            "cid-month",
            json!({"scope": {"kind": "user", "user_id": "cid"}, "limits": {"cost_usd": "0.004"},
                   "window": "month", "mode": "soft", "alert_thresholds": [50, 100]}),
        ),
    ] {
        app.put(&format!("{P}/budgets/{id}"), body)
            .await
            .assert_ok("budget");
    }
    // dee, on Free ($2 a period, alerts at 80, 90 and 100 %): $2 once priced.
    let mut dee = event("d1", "dee", None);
    dee["input_tokens"] = json!(1_000_000);
    dee["output_tokens"] = json!(0);
    let r = app
        .usage(json!({"events": [event("a1", "ann", Some("acme")), event("c1", "cid", None), dee]}))
        .await;
    r.assert_ok("ingest");
    assert!(
        keys_from(&app, "/alerts/dee", "cost_usd@").await.is_empty(),
        "$0 so far"
    );
    assert_eq!(r.body["data"]["events"][0]["priced"], false, "{}", r.body);
    assert!(keys(&app, "/org/acme/alerts").await.is_empty(), "$0 so far");
    assert!(keys(&app, "/alerts/cid").await.is_empty(), "$0 so far");

    // The price is added; two passes race: each event is priced once, each crossing
    // alerted once (acme at $0.004 of $0.006: 50 % not 90 %; cid at $0.004 of $0.004:
    // 50 and 100 %).
    let id = "openai/gpt-9-preview@2026-02-01T00:00:00Z";
    let version = json!({
        "id": id, "provider": "openai", "model": "gpt-9-preview",
        "effective_from": "2026-02-01T00:00:00Z",
        "prices": {"input_token": "0.000002", "output_token": "0.00001"}, "source": "test"
    });
    app.store
        .put_price_version(None, id, &version)
        .await
        .unwrap();
    app.meter.forget_catalog(None);
    let at: DateTime<Utc> = "2026-03-10T13:00:00Z".parse().unwrap();
    clock.set(at);
    let opts = AggregateOptions {
        at: Some(at),
        ..AggregateOptions::default()
    };
    let (a, b) = tokio::join!(app.meter.aggregate(&opts), app.meter.aggregate(&opts));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.repriced_events + b.repriced_events, 3, "{a:?} {b:?}");
    app.meter.aggregate(&opts).await.unwrap();

    assert_eq!(
        keys(&app, "/org/acme/alerts").await,
        ["budget/acme-day/2026-03-10T00:00:00Z/cost_usd@50"]
    );
    assert_eq!(
        keys(&app, "/alerts/cid").await,
        [
            "budget/cid-month/2026-03-01T00:00:00Z/cost_usd@100",
            "budget/cid-month/2026-03-01T00:00:00Z/cost_usd@50",
        ]
    );
    assert!(
        keys(&app, "/alerts/ann").await.is_empty(),
        "the org's, not ann's"
    );
    assert_eq!(
        publisher.budget_alerts(),
        [
            "acme-day@50 org acme",
            "cid-month@100 user cid",
            "cid-month@50 user cid",
        ],
        "each published once"
    );
    // The plan's thresholds dee's priced cost crossed: raised by the passes, once each.
    let crossed = ["cost_usd@100", "cost_usd@80", "cost_usd@90"];
    assert_eq!(keys_from(&app, "/alerts/dee", "cost_usd@").await, crossed);
    assert_eq!(
        publisher.plan_cost_alerts("dee"),
        crossed,
        "each published once"
    );
    assert!(publisher.plan_cost_alerts("cid").is_empty(), "$0.004 of $2");
}
