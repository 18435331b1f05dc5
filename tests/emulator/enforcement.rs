//! Hard budgets on DynamoDB, end to end through the router (issue 18): an org's day
//! budget denies with its details and resets the next day; a minute rate limit admits
//! exactly its calls under 200 concurrent checks and again in the next minute; and what
//! such checks cost in requests (one read).

use std::collections::BTreeMap;

use super::{ops, setup_at};
use chrono::Duration;
use meter_core::testing::TestClock;
use meter_tests::TestApp;
use serde_json::{json, Value};

async fn put_budget(app: &TestApp, id: &str, body: Value) {
    app.put(&format!("/api/subscription/budgets/{id}"), body)
        .await
        .assert_ok(id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_org_day_budget_denies_on_dynamodb_and_resets_the_next_day() {
    let clock = TestClock::at("2026-03-10T15:30:00Z");
    let (app, counter) = setup_at(&clock).await;
    put_budget(
        &app,
        "acme-daily",
        json!({"scope": {"kind": "org", "org_id": "acme"}, "limits": {"calls:*": 3},
               "window": "day", "mode": "hard"}),
    )
    .await;
    put_budget(
        &app,
        "search-members",
        json!({"scope": {"kind": "team", "org_id": "acme", "team_id": "search"},
               "applies_to": "each_member", "limits": {"cost_usd": "5"},
               "window": "month", "mode": "hard"}),
    )
    .await;
    let check = |user: &str| json!({"user_id": user, "provider": "gemini", "org_id": "acme", "team_id": "search"});
    app.check(check("ann")).await.assert_ok("warm");

    counter.take();
    let r = app.check(check("ann")).await;
    r.assert_ok("first");
    // One request (SPEC §12): the state item, the org's subscription item, the items of
    // the user, org and team scopes (their budgets) and their counter items, in one
    // BatchGetItem.
    assert_eq!(
        counter.take(),
        ops(&[("BatchGetItem", 1)]),
        "a check naming an org and a team with two budgets"
    );
    assert_eq!(
        r.body["data"]["limited_by"]["calls:*"]["budget_id"],
        "acme-daily"
    );

    let events: Vec<Value> = ["ann", "bob", "cat"]
        .iter()
        .enumerate()
        .map(|(i, u)| {
            json!({"event_id": format!("e{i}"), "user_id": u, "provider": "gemini",
                   "model": "gemini-2.5-flash", "input_tokens": 10,
                   "org_id": "acme", "team_id": "search"})
        })
        .collect();
    app.usage(json!({ "events": events }))
        .await
        .assert_ok("ingest");

    let denied = app.check(check("dan")).await;
    assert_eq!(denied.status, 429, "{}", denied.body);
    let d = &denied.body["error"]["details"];
    assert_eq!(d["budget_id"], "acme-daily");
    assert_eq!(d["window"], "day");
    assert_eq!(d["used"], 3);
    assert_eq!(d["resets_at"], "2026-03-11T00:00:00Z");
    assert_eq!(
        denied.headers["retry-after"],
        (8 * 3600 + 30 * 60).to_string().as_str()
    );

    clock.set(clock.now() + Duration::hours(9));
    app.check(check("dan")).await.assert_ok("next day");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_minute_budget_admits_exactly_sixty_of_200_concurrent_checks_on_dynamodb() {
    let clock = TestClock::at("2026-03-10T15:30:05Z");
    let (app, counter) = setup_at(&clock).await;
    put_budget(
        &app,
        "team-rate",
        json!({"scope": {"kind": "team", "org_id": "acme", "team_id": "red"},
               "limits": {"calls:*": 60}, "window": "minute", "mode": "hard"}),
    )
    .await;
    let check = |i: usize| {
        json!({"user_id": format!("u{}", i % 20), "provider": "gemini",
               "org_id": "acme", "team_id": "red"})
    };
    // Warm the caches with a check of another team.
    app.check(json!({"user_id": "w", "provider": "gemini", "org_id": "acme", "team_id": "blue"}))
        .await
        .assert_ok("warm");
    counter.take();
    let r = app.check(check(0)).await;
    r.assert_ok("one");
    // The check's one read, then its call counted in the minute window.
    assert_eq!(
        counter.take(),
        ops(&[("BatchGetItem", 1), ("TransactWriteItems", 1)]),
        "a rate-limited check: reads, then one guarded write of its minute counter"
    );

    let tasks: Vec<_> = (1..200)
        .map(|i| {
            let app = app.clone();
            let body = check(i);
            tokio::spawn(async move { app.check(body).await.status.as_u16() })
        })
        .collect();
    let mut statuses = BTreeMap::new();
    for t in tasks {
        *statuses.entry(t.await.unwrap()).or_insert(0) += 1;
    }
    // 1 + 59 allowed, 140 denied, nothing else.
    assert_eq!(statuses, BTreeMap::from([(200, 59), (429, 140)]));

    clock.set(clock.now() + Duration::minutes(1));
    app.check(check(7)).await.assert_ok("next minute");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_users_own_budget_is_found_from_the_state_item_and_gone_with_its_deletion() {
    let clock = TestClock::at("2026-03-10T15:30:00Z");
    let (app, counter) = setup_at(&clock).await;
    let check = json!({"user_id": "ann", "provider": "gemini"});
    app.check(check.clone()).await.assert_ok("warm");
    put_budget(
        &app,
        "ann-daily",
        json!({"scope": {"kind": "user", "user_id": "ann"}, "limits": {"calls:*": 1},
               "window": "day", "mode": "hard"}),
    )
    .await;
    app.usage(
        json!({"event_id": "o1", "user_id": "ann", "provider": "gemini",
                     "model": "gemini-2.5-flash", "input_tokens": 1}),
    )
    .await
    .assert_ok("event");
    // The event's read found the budget: this process reads the user's budgets and
    // counters with the state from now on (one request; the denial at 100 % is noted for
    // `alert.resolved` with one write).
    counter.take();
    let denied = app.check(check.clone()).await;
    assert_eq!(denied.status, 429, "{}", denied.body);
    assert_eq!(denied.body["error"]["details"]["budget_id"], "ann-daily");
    assert_eq!(
        counter.take(),
        ops(&[("BatchGetItem", 1), ("TransactWriteItems", 1)]),
        "a check naming no org whose user has a budget: one read"
    );

    app.delete("/api/subscription/budgets/ann-daily")
        .await
        .assert_ok("delete");
    counter.take();
    app.check(check.clone()).await.assert_ok("no budget left");
    assert_eq!(
        counter.take(),
        ops(&[("BatchGetItem", 1)]),
        "the remembered user's view, which finds no budget"
    );
    app.check(check).await.assert_ok("forgotten");
    assert_eq!(
        counter.take(),
        ops(&[("GetItem", 1)]),
        "back to one GetItem"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_first_check_of_a_user_in_a_process_is_one_request_with_or_without_budgets() {
    let clock = TestClock::at("2026-03-10T15:30:00Z");
    let (app, counter) = setup_at(&clock).await;
    put_budget(
        &app,
        "bob-daily",
        json!({"scope": {"kind": "user", "user_id": "bob"}, "limits": {"calls:*": 3},
               "window": "day", "mode": "hard"}),
    )
    .await;
    // Warm the caches (plans, prices) with a check of another user.
    app.check(json!({"user_id": "zed", "provider": "gemini"}))
        .await
        .assert_ok("warm");
    // Bob is new to this process: the check reads his state with his own scope (its
    // budgets and their counters) in one request, and the budget applies at once.
    counter.take();
    let first = app
        .check(json!({"user_id": "bob", "provider": "gemini"}))
        .await;
    first.assert_ok("bob's first check");
    assert_eq!(
        first.body["data"]["limited_by"]["calls:*"]["budget_id"], "bob-daily",
        "{}",
        first.body
    );
    assert_eq!(
        counter.take(),
        ops(&[("BatchGetItem", 1)]),
        "bob's first check"
    );
    // Cy has no budget: the first check reads the same two keys, the next ones the state
    // alone.
    for (n, expected) in [("first", "BatchGetItem"), ("second", "GetItem")] {
        app.check(json!({"user_id": "cy", "provider": "gemini"}))
            .await
            .assert_ok(n);
        assert_eq!(counter.take(), ops(&[(expected, 1)]), "cy's {n} check");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn erasing_a_user_with_budgets_deletes_them_although_its_state_item_is_gone() {
    let clock = TestClock::at("2026-03-10T15:30:00Z");
    let (app, counter) = setup_at(&clock).await;
    put_budget(
        &app,
        "ann-daily",
        json!({"scope": {"kind": "user", "user_id": "ann"}, "limits": {"calls:*": 5},
               "window": "day", "mode": "hard"}),
    )
    .await;
    app.usage(
        json!({"event_id": "z1", "user_id": "ann", "provider": "gemini",
                     "model": "gemini-2.5-flash", "input_tokens": 1}),
    )
    .await
    .assert_ok("event");
    let erased = app.delete("/api/subscription/user/ann").await;
    erased.assert_ok("erase");
    assert_eq!(erased.body["data"]["done"], true, "{}", erased.body);
    let listed = app.get("/api/subscription/budgets?user_id=ann").await;
    listed.assert_ok("list");
    assert_eq!(listed.body["data"]["budgets"], json!([]));
    // The deletions went through although the state item (whose budget count they
    // update only while it exists) was gone: the erased user's check finds no budget
    // (this process remembered the user with budgets, so it reads the user's view once,
    // then forgets), and the next one reads one item.
    counter.take();
    app.check(json!({"user_id": "ann", "provider": "gemini"}))
        .await
        .assert_ok("check");
    assert_eq!(counter.take(), ops(&[("BatchGetItem", 1)]));
    app.check(json!({"user_id": "ann", "provider": "gemini"}))
        .await
        .assert_ok("check");
    assert_eq!(counter.take(), ops(&[("GetItem", 1)]));
}
