//! Issue 18: budget alerts through the router on SQLite — once per (budget, window,
//! metric, threshold) however many concurrent ingests cross it, for soft and hard
//! budgets, on the user's own scope and for each member of an org; published once with
//! the `budget_id` attribute; a new window alerts again.

use std::sync::{Arc, Mutex};

use meter_core::alerts::{AlertPublisher, OutboxMessage, PublishError};
use meter_core::testing::TestClock;
use meter_tests::TestApp;
use serde_json::{json, Value};

const P: &str = "/api/subscription";

#[derive(Default)]
struct Capture(Mutex<Vec<OutboxMessage>>);

#[async_trait::async_trait]
impl AlertPublisher for Capture {
    async fn publish(&self, m: &OutboxMessage) -> Result<(), PublishError> {
        self.0.lock().unwrap().push(m.clone());
        Ok(())
    }
}

fn event(id: &str, user: &str, org: Option<&str>) -> Value {
    let mut e = json!({"event_id": id, "user_id": user, "provider": "gemini",
           "model": "gemini-2.5-flash", "input_tokens": 100});
    if let Some(o) = org {
        e["org_id"] = json!(o);
    }
    e
}

async fn alert_keys(app: &TestApp, user: &str) -> Vec<String> {
    let r = app.get(&format!("{P}/alerts/{user}?limit=100")).await;
    r.assert_ok("alerts");
    let mut keys: Vec<String> = r.body["data"]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["key"].as_str().unwrap().to_owned())
        .filter(|k| k.starts_with("budget/"))
        .collect();
    keys.sort();
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn budget_alerts_fire_once_per_window_metric_and_threshold_under_concurrent_ingest() {
    let clock = TestClock::at("2026-03-10T12:00:00Z");
    let capture = Arc::new(Capture::default());
    let app = Arc::new(
        TestApp::setup()
            .clock(&clock)
            .publisher(capture.clone())
            .spawn()
            .await,
    );
    // A soft daily budget on eve's own scope, and a hard monthly per-member cap of acme.
    app.put(
        &format!("{P}/budgets/eve-daily"),
        json!({"scope": {"kind": "user", "user_id": "eve"}, "limits": {"calls:*": 10},
               "window": "day", "mode": "soft", "alert_thresholds": [50, 100]}),
    )
    .await
    .assert_ok("soft");
    app.put(
        &format!("{P}/budgets/acme-members"),
        json!({"scope": {"kind": "org", "org_id": "acme"}, "applies_to": "each_member",
               "limits": {"calls:gemini": 4}, "window": "month", "mode": "hard",
               "alert_thresholds": [75, 100]}),
    )
    .await
    .assert_ok("hard");

    // 20 concurrent single-event ingests by eve (soft: never denies), 8 by fay in acme.
    let mut tasks = Vec::new();
    for i in 0..20 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            app.usage(event(&format!("e{i}"), "eve", None))
                .await
                .assert_ok("eve");
        }));
    }
    for i in 0..8 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            app.usage(event(&format!("f{i}"), "fay", Some("acme")))
                .await
                .assert_ok("fay");
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        alert_keys(&app, "eve").await,
        [
            "budget/eve-daily/2026-03-10T00:00:00Z/calls:*@100",
            "budget/eve-daily/2026-03-10T00:00:00Z/calls:*@50",
        ]
    );
    assert_eq!(
        alert_keys(&app, "fay").await,
        [
            "budget/acme-members/2026-03-01T00:00:00Z/calls:gemini@100",
            "budget/acme-members/2026-03-01T00:00:00Z/calls:gemini@75",
        ]
    );
    // Published once each, with the budget's id.
    let budget_messages: Vec<OutboxMessage> = capture
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|m| m.attributes.contains_key("budget_id"))
        .cloned()
        .collect();
    assert_eq!(budget_messages.len(), 4, "{budget_messages:?}");
    let mut ids: Vec<&str> = budget_messages.iter().map(|m| m.id.as_str()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 4);
    let hard = budget_messages
        .iter()
        .find(|m| m.attributes["alert_key"].ends_with("calls:gemini@100"))
        .unwrap();
    assert_eq!(hard.attributes["budget_id"], "acme-members");
    assert_eq!(hard.attributes["user_id"], "fay");
    assert_eq!(hard.attributes["severity"], "error");
    // The budget's scope (SPEC §10): acme's, applied to each member; the member owns it.
    assert_eq!(hard.attributes["scope"], "org");
    assert_eq!(hard.attributes["org_id"], "acme");
    assert_eq!(hard.attributes["window"], "month");
    assert_eq!(hard.body["scope"], json!({"kind": "org", "org_id": "acme"}));
    // The hard budget denies fay's next call; the soft one never denies eve.
    let r = app
        .check(json!({"user_id": "fay", "provider": "gemini", "org_id": "acme"}))
        .await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(r.body["error"]["details"]["budget_id"], "acme-members");
    app.check(json!({"user_id": "eve", "provider": "gemini"}))
        .await
        .assert_ok("soft never denies");

    // The next day is a new window: eve's thresholds alert again, once.
    clock.set("2026-03-11T09:00:00Z".parse().unwrap());
    for i in 0..6 {
        app.usage(event(&format!("n{i}"), "eve", None))
            .await
            .assert_ok("next day");
    }
    let keys = alert_keys(&app, "eve").await;
    assert_eq!(keys.len(), 3, "{keys:?}");
    assert!(keys.contains(&"budget/eve-daily/2026-03-11T00:00:00Z/calls:*@50".to_owned()));
}
