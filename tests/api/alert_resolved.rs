//! Issue 18: `alert.resolved` — published once when a scope a hard limit denied at 100 %
//! is allowed again (a raised limit, a new window), by the aggregation pass, exactly once
//! however many passes race; owned like budget alerts (the org for a pooled team budget,
//! the user for the user's own).

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use meter_core::alerts::{AlertPublisher, OutboxMessage, PublishError};
use meter_core::service::aggregate::AggregateReport;
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

impl Capture {
    fn resolved(&self) -> Vec<OutboxMessage> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m.kind == "alert.resolved")
            .cloned()
            .collect()
    }
}

async fn pass(app: &TestApp, at: DateTime<Utc>) -> AggregateReport {
    app.aggregate_at(at).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_denied_scope_allowed_again_is_resolved_once() {
    let clock = TestClock::at("2026-03-10T12:00:10Z");
    let capture = Arc::new(Capture::default());
    let app = Arc::new(
        TestApp::setup()
            .clock(&clock)
            .publisher(capture.clone())
            .spawn()
            .await,
    );
    // Team red of acme: 3 calls a minute (pooled); eve: 2 calls a day on her own scope.
    let red = json!({"scope": {"kind": "team", "org_id": "acme", "team_id": "red"},
        "limits": {"calls:*": 3}, "window": "minute", "mode": "hard"});
    app.put(&format!("{P}/budgets/red-rate"), red.clone())
        .await
        .assert_ok("team");
    app.put(
        &format!("{P}/budgets/eve-day"),
        json!({"scope": {"kind": "user", "user_id": "eve"}, "limits": {"calls:*": 2},
               "window": "day", "mode": "hard"}),
    )
    .await
    .assert_ok("user");
    let red_check =
        json!({"user_id": "ann", "provider": "gemini", "org_id": "acme", "team_id": "red"});
    for _ in 0..3 {
        app.check(red_check.clone()).await.assert_ok("red");
    }
    // Denied at 100 % by several members, several times: remembered once.
    for user in ["ann", "bob", "ann"] {
        let mut c = red_check.clone();
        c["user_id"] = json!(user);
        let r = app.check(c).await;
        assert_eq!(r.status, 429, "{}", r.body);
        assert_eq!(r.body["error"]["details"]["budget_id"], "red-rate");
    }
    let eve = |id: &str| {
        json!({"event_id": id, "user_id": "eve", "provider": "gemini",
               "model": "gemini-2.5-flash", "input_tokens": 10})
    };
    app.usage(eve("e1")).await.assert_ok("e1");
    app.usage(eve("e2")).await.assert_ok("e2");
    let r = app
        .check(json!({"user_id": "eve", "provider": "gemini"}))
        .await;
    assert_eq!(r.status, 429, "{}", r.body);

    // Still denying: a pass resolves nothing.
    let report = pass(&app, clock.now()).await;
    assert_eq!(report.alerts_resolved, 0);
    assert!(capture.resolved().is_empty());

    // The team's limit raised within the minute: resolved once, however many passes race.
    let mut raised = red.clone();
    raised["limits"] = json!({"calls:*": 10});
    app.put(&format!("{P}/budgets/red-rate"), raised)
        .await
        .assert_ok("raise");
    let now = clock.now();
    let (a, b, c) = tokio::join!(pass(&app, now), pass(&app, now), pass(&app, now));
    assert_eq!(a.alerts_resolved + b.alerts_resolved + c.alerts_resolved, 1);
    let resolved = capture.resolved();
    assert_eq!(resolved.len(), 1, "{resolved:?}");
    let m = &resolved[0];
    assert_eq!(m.attributes["type"], "alert.resolved");
    assert_eq!(m.attributes["org_id"], "acme");
    assert_eq!(m.attributes["budget_id"], "red-rate");
    assert!(!m.attributes.contains_key("user_id"));
    assert_eq!(
        m.attributes["scope"], "team",
        "the budget's scope (SPEC §10)"
    );
    assert_eq!(m.attributes["team_id"], "red");
    assert_eq!(m.attributes["window"], "minute");
    assert_eq!(m.body["type"], "alert.resolved");
    let r = app.get(&format!("{P}/org/acme/alerts")).await;
    r.assert_ok("org alerts");
    let keys: Vec<&str> = r.body["data"]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(keys[0].starts_with("resolved/budget/red-rate/2026-03-10T12:00:00Z/calls:*/org#acme@"));

    // Eve's day ends: her denial resolves with the new window, for her.
    clock.set("2026-03-11T00:00:05Z".parse().unwrap());
    let report = pass(&app, clock.now()).await;
    assert_eq!(report.alerts_resolved, 1);
    let resolved = capture.resolved();
    assert_eq!(resolved.len(), 2);
    assert_eq!(resolved[1].attributes["user_id"], "eve");
    assert_eq!(resolved[1].attributes["budget_id"], "eve-day");
    let r = app.get(&format!("{P}/alerts/eve")).await;
    assert!(r.body["data"]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["key"]
            .as_str()
            .unwrap()
            .starts_with("resolved/budget/eve-day/")));
    // Nothing left: later passes publish nothing more.
    assert_eq!(pass(&app, clock.now()).await.alerts_resolved, 0);
    assert_eq!(capture.resolved().len(), 2);

    // Alerts of minute and day budgets are kept 30 days after they were raised (§12: such
    // budgets can alert in every window); the first pass after that deletes each once.
    let budget_alerts = |body: &Value| -> usize {
        body["data"]["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| {
                let k = a["key"].as_str().unwrap();
                k.starts_with("budget/") || k.starts_with("resolved/budget/")
            })
            .count()
    };
    let eve_before = budget_alerts(&app.get(&format!("{P}/alerts/eve")).await.body);
    let org_before = budget_alerts(&app.get(&format!("{P}/org/acme/alerts")).await.body);
    assert!(
        eve_before >= 2 && org_before == 1,
        "{eve_before} {org_before}"
    );
    clock.set("2026-04-09T00:00:00Z".parse().unwrap());
    assert_eq!(
        pass(&app, clock.now()).await.alerts_expired,
        0,
        "29 days: kept"
    );
    clock.set("2026-04-11T00:00:00Z".parse().unwrap());
    let (a, b) = tokio::join!(pass(&app, clock.now()), pass(&app, clock.now()));
    assert_eq!(a.alerts_expired + b.alerts_expired, eve_before + org_before);
    let eve_after = app.get(&format!("{P}/alerts/eve")).await;
    assert_eq!(budget_alerts(&eve_after.body), 0, "{}", eve_after.body);
    assert_eq!(
        eve_after.body["data"]["unread_count"], 0,
        "{}",
        eve_after.body
    );
    let org_after = app.get(&format!("{P}/org/acme/alerts")).await;
    assert_eq!(budget_alerts(&org_after.body), 0, "{}", org_after.body);
    assert_eq!(pass(&app, clock.now()).await.alerts_expired, 0);
}

/// An org's plan that denied its pooled usage at 100 % resolves when the org upgrades,
/// once, owned by the org.
#[tokio::test]
async fn an_org_upgrade_resolves_an_org_plan_denial_once() {
    let clock = TestClock::at("2026-03-10T12:00:00Z");
    let capture = Arc::new(Capture::default());
    let app = TestApp::setup()
        .clock(&clock)
        .publisher(capture.clone())
        .spawn()
        .await;
    for (name, calls) in [("tiny", 2), ("roomy", 50)] {
        app.put(
            &format!("{P}/plans/{name}"),
            json!({"tier": "custom", "monthly_price_usd": "10", "yearly_price_usd": "100",
                   "limits": {"calls:gemini": calls}}),
        )
        .await
        .assert_ok("plan");
    }
    app.put(
        &format!("{P}/org/acme/subscription"),
        json!({"plan": "tiny"}),
    )
    .await
    .assert_ok("org subscribes");
    for (id, user) in [("o1", "ann"), ("o2", "bob")] {
        app.usage(json!({"event_id": id, "user_id": user, "org_id": "acme",
                         "provider": "gemini", "model": "gemini-2.5-flash",
                         "input_tokens": 1}))
            .await
            .assert_ok(id);
    }
    let check = json!({"user_id": "ann", "org_id": "acme", "provider": "gemini"});
    let r = app.check(check.clone()).await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(r.body["error"]["details"]["plan"], "tiny", "{}", r.body);
    assert_eq!(pass(&app, clock.now()).await.alerts_resolved, 0);

    app.put(
        &format!("{P}/org/acme/subscription"),
        json!({"plan": "roomy"}),
    )
    .await
    .assert_ok("org upgrades");
    assert_eq!(pass(&app, clock.now()).await.alerts_resolved, 1);
    assert_eq!(pass(&app, clock.now()).await.alerts_resolved, 0);
    let resolved = capture.resolved();
    assert_eq!(resolved.len(), 1, "{resolved:?}");
    assert_eq!(resolved[0].attributes["org_id"], "acme");
    assert!(!resolved[0].attributes.contains_key("user_id"));
    assert!(!resolved[0].attributes.contains_key("budget_id"));
    app.check(check)
        .await
        .assert_ok("allowed after the org's upgrade");
}

/// A plan that denied a user at 100 % resolves when the user upgrades, once; a call too
/// large for what is left (below 100 %) is no denial to resolve.
#[tokio::test]
async fn an_upgrade_resolves_a_plan_denial_once() {
    let clock = TestClock::at("2026-03-10T12:00:00Z");
    let capture = Arc::new(Capture::default());
    let app = TestApp::setup()
        .clock(&clock)
        .publisher(capture.clone())
        .spawn()
        .await;
    for (name, calls) in [("tiny", 2), ("roomy", 50)] {
        app.put(
            &format!("{P}/plans/{name}"),
            json!({"tier": "custom", "monthly_price_usd": "10", "yearly_price_usd": "100",
                   "limits": {"calls:gemini": calls, "tokens:gemini": 1000}}),
        )
        .await
        .assert_ok("plan");
    }
    app.put(
        &format!("{P}/user/pam/subscription"),
        json!({"plan": "tiny"}),
    )
    .await
    .assert_ok("subscribe");
    // 900 of 1,000 tokens: a check asking for 200 more is denied below 100 %: not noted.
    app.usage(
        json!({"event_id": "p1", "user_id": "pam", "provider": "gemini",
                     "model": "gemini-2.5-flash", "input_tokens": 900}),
    )
    .await
    .assert_ok("p1");
    let r = app
        .check(json!({"user_id": "pam", "provider": "gemini", "estimated_input_tokens": 200}))
        .await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(pass(&app, clock.now()).await.alerts_resolved, 0);
    // The second call reaches 2 of 2: the next check is denied at 100 %.
    app.usage(
        json!({"event_id": "p2", "user_id": "pam", "provider": "gemini",
                     "model": "gemini-2.5-flash", "input_tokens": 1}),
    )
    .await
    .assert_ok("p2");
    let r = app
        .check(json!({"user_id": "pam", "provider": "gemini"}))
        .await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(r.body["error"]["details"]["metric"], "calls:gemini");
    assert_eq!(pass(&app, clock.now()).await.alerts_resolved, 0);

    app.put(
        &format!("{P}/user/pam/subscription"),
        json!({"plan": "roomy"}),
    )
    .await
    .assert_ok("upgrade");
    assert_eq!(pass(&app, clock.now()).await.alerts_resolved, 1);
    assert_eq!(pass(&app, clock.now()).await.alerts_resolved, 0);
    let resolved = capture.resolved();
    assert_eq!(resolved.len(), 1, "{resolved:?}");
    assert_eq!(resolved[0].attributes["user_id"], "pam");
    assert_eq!(resolved[0].attributes["metric"], "calls:gemini");
    assert!(!resolved[0].attributes.contains_key("budget_id"));
    assert!(
        resolved[0].attributes["alert_key"]
            .starts_with("resolved/plan/tiny/2026-03-01T00:00:00Z/calls:gemini/pam@"),
        "{:?}",
        resolved[0].attributes
    );
    app.check(json!({"user_id": "pam", "provider": "gemini"}))
        .await
        .assert_ok("allowed after the upgrade");
}
