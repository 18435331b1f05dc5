//! Issue 18: alerts of budgets on the pooled usage of an org or of one of its teams —
//! owned by the org (no user owns that usage), once per (budget, window, metric,
//! threshold) however many concurrent ingests by however many members cross it, listed by
//! `GET /org/{org_id}/alerts` (never in a member's list), published once with `org_id` and
//! `budget_id` attributes and no `user_id`, marked read by id.

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

fn event(id: &str, user: &str, team: Option<&str>) -> Value {
    let mut e = json!({"event_id": id, "user_id": user, "org_id": "acme",
        "provider": "gemini", "model": "gemini-2.5-flash", "input_tokens": 100});
    if let Some(t) = team {
        e["team_id"] = json!(t);
    }
    e
}

fn keys(list: &Value) -> Vec<String> {
    let mut k: Vec<String> = list["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["key"].as_str().unwrap().to_owned())
        .collect();
    k.sort();
    k
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pooled_org_and_team_budgets_alert_the_org_once() {
    let clock = TestClock::at("2026-03-10T12:00:00Z");
    let capture = Arc::new(Capture::default());
    let app = Arc::new(
        TestApp::setup()
            .clock(&clock)
            .publisher(capture.clone())
            .spawn()
            .await,
    );
    // A soft daily budget on acme's pooled calls, a hard monthly one on team red's.
    app.put(
        &format!("{P}/budgets/acme-day"),
        json!({"scope": {"kind": "org", "org_id": "acme"}, "limits": {"calls:*": 10},
               "window": "day", "mode": "soft", "alert_thresholds": [50, 100]}),
    )
    .await
    .assert_ok("org");
    app.put(
        &format!("{P}/budgets/red-month"),
        json!({"scope": {"kind": "team", "org_id": "acme", "team_id": "red"},
               "limits": {"calls:gemini": 4}, "window": "month", "mode": "hard",
               "alert_thresholds": [75, 100]}),
    )
    .await
    .assert_ok("team");

    // 16 concurrent single-event ingests by 8 members, 4 of them (one each) in team red.
    let mut tasks = Vec::new();
    for i in 0..16 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let team = (i < 4).then_some("red");
            app.usage(event(&format!("e{i}"), &format!("m{}", i % 8), team))
                .await
                .assert_ok("member");
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }

    let r = app.get(&format!("{P}/org/acme/alerts?limit=100")).await;
    r.assert_ok("org alerts");
    let list = &r.body["data"];
    assert_eq!(list["org_id"], "acme");
    assert_eq!(
        keys(list),
        [
            "budget/acme-day/2026-03-10T00:00:00Z/calls:*@100",
            "budget/acme-day/2026-03-10T00:00:00Z/calls:*@50",
            "budget/red-month/2026-03-01T00:00:00Z/calls:gemini@100",
            "budget/red-month/2026-03-01T00:00:00Z/calls:gemini@75",
        ]
    );
    assert_eq!(list["unread_count"], 4);
    let first = &list["alerts"][0];
    assert_eq!(first["org_id"], "acme");
    assert!(first.get("user_id").is_none(), "{first}");
    // No member lists them.
    for m in 0..8 {
        let r = app.get(&format!("{P}/alerts/m{m}?limit=100")).await;
        r.assert_ok("member alerts");
        assert_eq!(r.body["data"]["alerts"], json!([]), "m{m}: {}", r.body);
    }
    // Published once each, naming the org and the budget, no user.
    let published: Vec<OutboxMessage> = capture
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|m| m.attributes.contains_key("budget_id"))
        .cloned()
        .collect();
    assert_eq!(published.len(), 4, "{published:?}");
    for m in &published {
        assert_eq!(m.attributes["org_id"], "acme");
        assert!(!m.attributes.contains_key("user_id"), "{m:?}");
        assert_eq!(m.body["org_id"], "acme");
        assert!(m.body.get("user_id").is_none());
    }
    let team_full = published
        .iter()
        .find(|m| m.attributes["alert_key"].ends_with("calls:gemini@100"))
        .unwrap();
    assert_eq!(team_full.attributes["budget_id"], "red-month");
    assert_eq!(team_full.attributes["severity"], "error");

    // Marked read by id: the org's unread count and unread_only follow.
    let id = first["id"].as_str().unwrap();
    app.post(&format!("{P}/alerts/{id}/mark-read"), json!({}))
        .await
        .assert_ok("mark read");
    let r = app
        .get(&format!("{P}/org/acme/alerts?unread_only=true"))
        .await;
    r.assert_ok("unread");
    assert_eq!(r.body["data"]["unread_count"], 3);
    assert_eq!(r.body["data"]["alerts"].as_array().unwrap().len(), 3);
    let r = app.get(&format!("{P}/org/acme/alerts?limit=1")).await;
    assert_eq!(r.body["data"]["alerts"].as_array().unwrap().len(), 1);
    assert_eq!(r.body["data"]["unread_count"], 3);

    // The next day is a new window: the org's daily thresholds alert again, once.
    clock.set("2026-03-11T09:00:00Z".parse().unwrap());
    for i in 0..5 {
        app.usage(event(&format!("n{i}"), "m1", None))
            .await
            .assert_ok("next day");
    }
    let r = app.get(&format!("{P}/org/acme/alerts?limit=100")).await;
    let k = keys(&r.body["data"]);
    assert_eq!(k.len(), 5, "{k:?}");
    assert!(k.contains(&"budget/acme-day/2026-03-11T00:00:00Z/calls:*@50".to_owned()));

    // Another org has none; bad input is a 400 with a stable code.
    let r = app.get(&format!("{P}/org/globex/alerts")).await;
    r.assert_ok("globex");
    assert_eq!(r.body["data"]["alerts"], json!([]));
    assert_eq!(r.body["data"]["unread_count"], 0);
    for (q, code) in [
        ("org/acme/alerts?limit=0", "invalid_parameter"),
        ("org/acme/alerts?limit=101", "invalid_parameter"),
        ("org/acme/alerts?unread_only=yes", "invalid_parameter"),
        ("org/acme/alerts?page=2", "unknown_parameter"),
        ("org/ac%20me/alerts", "invalid_id"),
    ] {
        let r = app.get(&format!("{P}/{q}")).await;
        assert_eq!(r.status, 400, "{q}: {}", r.body);
        assert_eq!(r.body["error"]["code"], code, "{q}: {}", r.body);
    }
}
