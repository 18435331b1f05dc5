//! Hard budgets enforced by the check (§10), through the router on SQLite: the decision
//! over the plan and every budget of the named scopes, `limited_by`, the 429 details and
//! `Retry-After`, windows that start again, rate limits counted at check time.

use chrono::{Duration, Timelike};
use serde_json::{json, Value};

use meter_core::testing::TestClock;
use meter_tests::TestApp;

const P: &str = "/api/subscription";

async fn put_budget(app: &TestApp, id: &str, body: Value) {
    let r = app.put(&format!("{P}/budgets/{id}"), body).await;
    r.assert_ok(id);
}

fn check(user: &str, scopes: Value) -> Value {
    let mut c = json!({"user_id": user, "provider": "gemini"});
    for (k, v) in scopes.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

fn event(id: &str, user: &str, scopes: Value) -> Value {
    let mut e = json!({"event_id": id, "user_id": user, "provider": "gemini",
        "model": "gemini-2.5-flash", "input_tokens": 10});
    for (k, v) in scopes.as_object().unwrap() {
        e[k] = v.clone();
    }
    e
}

#[tokio::test]
async fn an_org_day_budget_denies_with_its_details_and_allows_again_the_next_day() {
    let clock = TestClock::at("2026-03-10T15:30:00Z");
    let app = TestApp::spawn_at(&clock).await;
    put_budget(
        &app,
        "acme-daily",
        json!({"scope": {"kind": "org", "org_id": "acme"}, "limits": {"calls:*": 3},
               "window": "day", "mode": "hard"}),
    )
    .await;
    let acme = json!({"org_id": "acme"});

    let r = app.check(check("ann", acme.clone())).await;
    r.assert_ok("first");
    let data = &r.body["data"];
    assert_eq!(data["remaining"]["calls:*"], 3, "{data}");
    assert_eq!(
        data["limited_by"]["calls:*"],
        json!({"scope": {"kind": "org", "org_id": "acme"}, "budget_id": "acme-daily", "window": "day"})
    );
    // The plan still bounds its own metrics.
    assert_eq!(
        data["limited_by"]["calls:gemini"],
        json!({"scope": {"kind": "user", "user_id": "ann"}, "plan": "free", "window": "period"})
    );

    // Three calls of three members of acme fill the org's day.
    let r = app
        .usage(json!({"events": [
            event("a1", "ann", acme.clone()),
            event("b1", "bob", acme.clone()),
            event("c1", "cat", acme.clone()),
        ]}))
        .await;
    r.assert_ok("ingest");
    // A redelivery counts nothing more.
    app.usage(event("a1", "ann", acme.clone()))
        .await
        .assert_ok("redelivery");

    let denied = app.check(check("dan", acme.clone())).await;
    assert_eq!(denied.status, 429, "{}", denied.body);
    assert_eq!(denied.code(), "usage_limit_exceeded");
    let d = &denied.body["error"]["details"];
    assert_eq!(d["scope"], json!({"kind": "org", "org_id": "acme"}));
    assert_eq!(d["budget_id"], "acme-daily");
    assert_eq!(d["metric"], "calls:*");
    assert_eq!(d["window"], "day");
    assert_eq!(
        (
            d["used"].clone(),
            d["limit"].clone(),
            d["requested"].clone()
        ),
        (json!(3), json!(3), json!(1))
    );
    assert_eq!(d["resets_at"], "2026-03-11T00:00:00Z");
    assert!(
        d.get("upgrade_to").is_none(),
        "budgets have no upgrade: {d}"
    );
    assert!(d.get("plan").is_none(), "{d}");
    let retry: i64 = denied.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(retry, 8 * 3600 + 30 * 60);

    // The same user without the org is not bound by it: the plan-only answer.
    let alone = app.check(check("dan", json!({}))).await;
    alone.assert_ok("without the org");
    assert!(alone.body["data"].get("limited_by").is_none());
    // Another org is not bound either.
    app.check(check("dan", json!({"org_id": "globex"})))
        .await
        .assert_ok("another org");

    clock.set(clock.now() + Duration::hours(9));
    let next_day = app.check(check("dan", acme)).await;
    next_day.assert_ok("next day");
    assert_eq!(next_day.body["data"]["remaining"]["calls:*"], 3);
}

#[tokio::test]
async fn a_plan_denial_among_budgets_names_the_plan_and_an_upgrade() {
    let app = TestApp::spawn().await;
    put_budget(
        &app,
        "acme-cap",
        json!({"scope": {"kind": "org", "org_id": "acme"}, "limits": {"cost_usd": "100"},
               "window": "month", "mode": "hard"}),
    )
    .await;
    // The Free plan allows no openai call.
    let r = app
        .check(json!({"user_id": "ann", "provider": "openai", "org_id": "acme"}))
        .await;
    assert_eq!(r.status, 429, "{}", r.body);
    let d = &r.body["error"]["details"];
    assert_eq!(d["scope"], json!({"kind": "user", "user_id": "ann"}));
    assert_eq!(d["plan"], "free");
    assert_eq!(d["window"], "period");
    assert_eq!(d["metric"], "calls:openai");
    assert_eq!(d["upgrade_to"], "basic");
    assert!(d.get("budget_id").is_none());
}

#[tokio::test]
async fn each_member_of_a_team_gets_its_own_counter() {
    let app = TestApp::spawn().await;
    put_budget(
        &app,
        "search-members",
        json!({"scope": {"kind": "team", "org_id": "acme", "team_id": "search"},
               "applies_to": "each_member", "limits": {"calls:gemini": 1},
               "window": "month", "mode": "hard"}),
    )
    .await;
    let team = json!({"org_id": "acme", "team_id": "search"});
    app.usage(event("m1", "ann", team.clone()))
        .await
        .assert_ok("ann's call");

    let ann = app.check(check("ann", team.clone())).await;
    assert_eq!(ann.status, 429, "{}", ann.body);
    assert_eq!(ann.body["error"]["details"]["budget_id"], "search-members");
    app.check(check("bob", team.clone())).await.assert_ok("bob");
    // Ann in the org but not in the team: the team's budget does not apply.
    app.check(check("ann", json!({"org_id": "acme"})))
        .await
        .assert_ok("ann outside the team");
}

#[tokio::test]
async fn a_minute_rate_limit_counts_checks_and_not_their_events_and_starts_again() {
    let clock = TestClock::at("2026-03-10T15:30:10Z");
    let app = TestApp::spawn_at(&clock).await;
    put_budget(
        &app,
        "ann-rate",
        json!({"scope": {"kind": "user", "user_id": "ann"}, "limits": {"calls:*": 3},
               "window": "minute", "mode": "hard"}),
    )
    .await;
    for i in 0..3 {
        let r = app.check(check("ann", json!({}))).await;
        r.assert_ok(&format!("check {i}"));
        // The event of an allowed call does not count it again in the minute.
        app.usage(event(&format!("r{i}"), "ann", json!({})))
            .await
            .assert_ok("event");
    }
    let denied = app.check(check("ann", json!({}))).await;
    assert_eq!(denied.status, 429, "{}", denied.body);
    let d = &denied.body["error"]["details"];
    assert_eq!(d["window"], "minute");
    assert_eq!(d["scope"], json!({"kind": "user", "user_id": "ann"}));
    assert_eq!(d["resets_at"], "2026-03-10T15:31:00Z");
    assert_eq!(denied.headers["retry-after"], "50");

    clock.set(clock.now().with_second(0).unwrap() + Duration::minutes(1));
    app.check(check("ann", json!({})))
        .await
        .assert_ok("next minute");
    // Other users are not limited by ann's budget.
    app.check(check("bob", json!({}))).await.assert_ok("bob");
}

#[tokio::test]
async fn a_check_without_budgets_keeps_its_plan_only_answer() {
    let app = TestApp::spawn().await;
    let before = app.check(check("ann", json!({}))).await;
    before.assert_ok("before");
    put_budget(
        &app,
        "other-org",
        json!({"scope": {"kind": "org", "org_id": "globex"}, "limits": {"calls:*": 1},
               "window": "day", "mode": "hard"}),
    )
    .await;
    let after = app.check(check("ann", json!({"org_id": "acme"}))).await;
    after.assert_ok("after");
    assert_eq!(after.body, before.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_minute_budget_admits_exactly_sixty_of_200_concurrent_checks() {
    let clock = TestClock::at("2026-03-10T15:30:05Z");
    let app = std::sync::Arc::new(TestApp::spawn_at(&clock).await);
    put_budget(
        &app,
        "red-rate",
        json!({"scope": {"kind": "team", "org_id": "acme", "team_id": "red"},
               "limits": {"calls:*": 60}, "window": "minute", "mode": "hard"}),
    )
    .await;
    let red = json!({"org_id": "acme", "team_id": "red"});
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let (app, body) = (app.clone(), check(&format!("u{}", i % 20), red.clone()));
            tokio::spawn(async move { app.check(body).await.status.as_u16() })
        })
        .collect();
    let mut statuses = std::collections::BTreeMap::new();
    for t in tasks {
        *statuses.entry(t.await.unwrap()).or_insert(0) += 1;
    }
    assert_eq!(
        statuses,
        std::collections::BTreeMap::from([(200, 60), (429, 140)])
    );

    clock.set(clock.now() + Duration::minutes(1));
    app.check(check("u1", red)).await.assert_ok("next minute");
}
