//! The request budget of an event batch over budgets on DynamoDB (issue 18, SPEC §12: one
//! `TransactWriteItems` per ≤ 100 items plus at most 2 reads), measured, and what the
//! reads it leaves out must not lose: the budget alerts judged on the counters after the
//! write (exactly once each under concurrent batches), the org member directory.

use super::{ops, setup_at};
use meter_core::testing::TestClock;
use serde_json::{json, Value};

const P: &str = "/api/subscription";

fn event(id: &str, user: &str, team: &str) -> Value {
    json!({"event_id": id, "user_id": user, "org_id": "acme", "team_id": team,
           "provider": "gemini", "model": "gemini-2.5-flash", "input_tokens": 1000})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_event_batch_naming_an_org_with_two_budgets_is_one_write_and_two_reads_on_dynamodb() {
    let clock = TestClock::at("2026-03-10T12:00:00Z");
    let (app, counter) = setup_at(&clock).await;
    app.put(
        &format!("{P}/plans/orgpro"),
        json!({"tier": "custom", "monthly_price_usd": "10", "yearly_price_usd": "100",
               "limits": {"calls:gemini": 1000}}),
    )
    .await
    .assert_ok("plan");
    app.put(
        &format!("{P}/org/acme/subscription"),
        json!({"plan": "orgpro"}),
    )
    .await
    .assert_ok("org subscription");
    app.put(
        &format!("{P}/budgets/acme-daily"),
        json!({"scope": {"kind": "org", "org_id": "acme"}, "limits": {"calls:*": 8},
               "window": "day", "mode": "soft", "alert_thresholds": [50]}),
    )
    .await
    .assert_ok("org budget");
    app.put(
        &format!("{P}/budgets/red-members"),
        json!({"scope": {"kind": "team", "org_id": "acme", "team_id": "red"},
               "applies_to": "each_member", "limits": {"calls:*": 100},
               "window": "month", "mode": "hard"}),
    )
    .await
    .assert_ok("team budget");

    // Warm the caches (tenant, plans, prices), then measure a batch that crosses no
    // threshold (3 of 8 calls).
    app.usage(json!({"events": [event("w1", "ann", "red")]}))
        .await
        .assert_ok("warm");
    counter.take();
    let r = app
        .usage(json!({"events": [event("a1", "ann", "red"), event("a2", "ann", "red")]}))
        .await;
    r.assert_ok("ingest");
    assert_eq!(r.body["data"]["recorded"], 2, "{}", r.body);
    let ingest = counter.take();
    eprintln!("event batch of 2 naming an org and a team, two budgets: {ingest:?}");
    assert_eq!(
        ingest,
        ops(&[("BatchGetItem", 2), ("TransactWriteItems", 1)]),
        "the view before the write (state, org subscription, budgets), one transaction \
         (events, counters, member directory), the view after it (state and counters for \
         the alerts)"
    );

    // A batch that crosses the org budget's 50 % (4 of 8): the alert, judged on the counter
    // after the write, once.
    app.usage(json!({"events": [event("b1", "bob", "red")]}))
        .await
        .assert_ok("crossing");
    app.usage(json!({"events": [event("b1", "bob", "red")]}))
        .await
        .assert_ok("retry");
    let r = app.get(&format!("{P}/org/acme/alerts")).await;
    r.assert_ok("org alerts");
    let keys: Vec<&str> = r.body["data"]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        ["budget/acme-daily/2026-03-10T00:00:00Z/calls:*@50"],
        "{}",
        r.body
    );

    // The directory was noted in the events' transactions: both members, the team.
    let r = app.get(&format!("{P}/org/acme/members")).await;
    r.assert_ok("members");
    let users: Vec<&str> = r.body["data"]["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["user_id"].as_str().unwrap())
        .collect();
    assert_eq!(users, ["ann", "bob"], "{}", r.body);
    assert_eq!(r.body["data"]["teams"][0]["team_id"], "red");
    assert_eq!(r.body["data"]["teams"][0]["calls"], 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn org_budget_alerts_fire_once_under_concurrent_batches_on_dynamodb() {
    let clock = TestClock::at("2026-03-10T12:00:00Z");
    let (app, _counter) = setup_at(&clock).await;
    app.put(
        &format!("{P}/budgets/acme-daily"),
        json!({"scope": {"kind": "org", "org_id": "acme"}, "limits": {"calls:*": 10},
               "window": "day", "mode": "soft", "alert_thresholds": [50, 90, 100]}),
    )
    .await
    .assert_ok("soft");
    let mut tasks = Vec::new();
    for i in 0..20 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let user = format!("u{}", i % 5);
            app.usage(json!({"events": [event(&format!("e{i}"), &user, "red")]}))
                .await
                .assert_ok("batch");
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let r = app.get(&format!("{P}/org/acme/alerts?limit=100")).await;
    r.assert_ok("alerts");
    let mut keys: Vec<String> = r.body["data"]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["key"].as_str().unwrap().to_owned())
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "budget/acme-daily/2026-03-10T00:00:00Z/calls:*@100",
            "budget/acme-daily/2026-03-10T00:00:00Z/calls:*@50",
            "budget/acme-daily/2026-03-10T00:00:00Z/calls:*@90",
        ]
    );
    let r = app.get(&format!("{P}/org/acme/members")).await;
    r.assert_ok("members");
    assert_eq!(r.body["data"]["total_users"], 5, "{}", r.body);
    assert_eq!(r.body["data"]["teams"][0]["calls"], 20, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_event_batch_of_a_user_with_budgets_of_their_own_is_one_write_and_two_reads_on_dynamodb()
{
    let clock = TestClock::at("2026-03-10T12:00:00Z");
    let (app, counter) = setup_at(&clock).await;
    app.put(
        &format!("{P}/budgets/cy-daily"),
        json!({"scope": {"kind": "user", "user_id": "cy"}, "limits": {"calls:*": 8},
               "window": "day", "mode": "hard", "alert_thresholds": [50]}),
    )
    .await
    .assert_ok("budget");
    let one = |id: &str| {
        json!({"event_id": id, "user_id": "cy", "provider": "gemini",
               "model": "gemini-2.5-flash", "input_tokens": 1000})
    };
    // The first batch finds the budget from the state item (its `nb`); this process then
    // reads the user's budgets and counters with the state.
    app.usage(json!({"events": [one("w1")]}))
        .await
        .assert_ok("warm");
    counter.take();
    app.usage(json!({"events": [one("c1"), one("c2")]}))
        .await
        .assert_ok("ingest");
    let ingest = counter.take();
    eprintln!("event batch of 2 of a user with a budget of their own: {ingest:?}");
    assert_eq!(
        ingest,
        ops(&[("BatchGetItem", 2), ("TransactWriteItems", 1)])
    );
    counter.take();
    let r = app
        .check(json!({"user_id": "cy", "provider": "gemini"}))
        .await;
    r.assert_ok("check");
    assert_eq!(r.body["data"]["remaining"]["calls:*"], 5, "{}", r.body);
    assert_eq!(
        r.body["data"]["limited_by"]["calls:*"]["budget_id"],
        "cy-daily"
    );
    assert_eq!(counter.take(), ops(&[("BatchGetItem", 1)]), "one read");

    // 4 of 8: the 50 % alert, once.
    app.usage(json!({"events": [one("c3")]}))
        .await
        .assert_ok("crossing");
    let r = app.get(&format!("{P}/alerts/cy")).await;
    r.assert_ok("alerts");
    let keys: Vec<&str> = r.body["data"]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["key"].as_str().unwrap())
        .filter(|k| k.starts_with("budget/"))
        .collect();
    assert_eq!(keys, ["budget/cy-daily/2026-03-10T00:00:00Z/calls:*@50"]);
}
