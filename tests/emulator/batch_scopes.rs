//! The request budget of an event batch whose events name several orgs, several teams of
//! one org, a `period` budget of the user's own, or a user with budgets this process has
//! not seen yet, on DynamoDB (issue 18, SPEC §12: one `TransactWriteItems` per ≤ 100
//! items plus at most 2 reads), and the budget alerts those reads feed, still exact.

use super::{ops, setup_at};
use meter_core::testing::TestClock;
use serde_json::{json, Value};

const P: &str = "/api/subscription";

fn event(id: &str, user: &str, org: &str, team: &str) -> Value {
    json!({"event_id": id, "user_id": user, "org_id": org, "team_id": team,
           "provider": "gemini", "model": "gemini-2.5-flash", "input_tokens": 1000})
}

fn own(id: &str, user: &str) -> Value {
    json!({"event_id": id, "user_id": user, "provider": "gemini",
           "model": "gemini-2.5-flash", "input_tokens": 1000})
}

/// The keys of the alerts listed at `path` that start with `budget/`.
async fn budget_alerts(app: &meter_tests::TestApp, path: &str) -> Vec<String> {
    let r = app.get(&format!("{P}{path}")).await;
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
async fn an_event_batch_naming_three_orgs_and_two_teams_of_one_is_one_write_and_two_reads() {
    let clock = TestClock::at("2026-03-10T12:00:00Z");
    let (app, counter) = setup_at(&clock).await;
    for org in ["o1", "o2", "o3"] {
        app.put(
            &format!("{P}/budgets/{org}-daily"),
            json!({"scope": {"kind": "org", "org_id": org}, "limits": {"calls:*": 10},
                   "window": "day", "mode": "hard", "alert_thresholds": [50]}),
        )
        .await
        .assert_ok("org budget");
    }
    app.put(
        &format!("{P}/budgets/o1-blue-members"),
        json!({"scope": {"kind": "team", "org_id": "o1", "team_id": "blue"},
               "applies_to": "each_member", "limits": {"calls:*": 4},
               "window": "month", "mode": "soft", "alert_thresholds": [50]}),
    )
    .await
    .assert_ok("team budget");

    // Warm the caches (tenant, prices) with another user's batch.
    app.usage(json!({"events": [event("w1", "zed", "o1", "red")]}))
        .await
        .assert_ok("warm");
    counter.take();
    // ann: o1 in teams red and blue, o2 and o3 in team red; no threshold crossed (o1 at
    // 3 of 10, o2 and o3 at 1 of 10, ann in blue at 1 of 4).
    let r = app
        .usage(json!({"events": [
            event("a1", "ann", "o1", "red"),
            event("a2", "ann", "o2", "red"),
            event("a3", "ann", "o1", "blue"),
            event("a4", "ann", "o3", "red"),
        ]}))
        .await;
    r.assert_ok("ingest");
    assert_eq!(r.body["data"]["recorded"], 4, "{}", r.body);
    let ingest = counter.take();
    eprintln!("event batch of 4 naming 3 orgs and 2 teams of one, 4 budgets: {ingest:?}");
    assert_eq!(
        ingest,
        ops(&[("BatchGetItem", 2), ("TransactWriteItems", 1)]),
        "one read of the state, the 3 org subscriptions and the 7 scope items; one \
         transaction; one read of the state and the counters for the alerts"
    );
    for org in ["o1", "o2", "o3"] {
        assert!(budget_alerts(&app, &format!("/org/{org}/alerts"))
            .await
            .is_empty());
    }

    // Crossings in one batch: o2 at 5 of 10 and ann in blue at 2 of 4; o1 and o3 stay
    // under. Each alert once, to its owner; a retry of the batch raises nothing.
    let crossing = json!({"events": [
        event("b1", "ann", "o2", "red"),
        event("b2", "ann", "o2", "red"),
        event("b3", "ann", "o2", "red"),
        event("b4", "ann", "o2", "red"),
        event("b5", "ann", "o1", "blue"),
    ]});
    app.usage(crossing.clone()).await.assert_ok("crossing");
    app.usage(crossing).await.assert_ok("retry");
    assert_eq!(
        budget_alerts(&app, "/org/o2/alerts").await,
        ["budget/o2-daily/2026-03-10T00:00:00Z/calls:*@50"]
    );
    assert!(budget_alerts(&app, "/org/o1/alerts").await.is_empty());
    assert!(budget_alerts(&app, "/org/o3/alerts").await.is_empty());
    assert_eq!(
        budget_alerts(&app, "/alerts/ann").await,
        ["budget/o1-blue-members/2026-03-01T00:00:00Z/calls:*@50"]
    );
    // The counters are exact: o1 4, o2 5, o3 1 calls today.
    for (org, calls) in [("o1", 4), ("o2", 5), ("o3", 1)] {
        let r = app
            .check(json!({"user_id": "cy", "org_id": org, "provider": "gemini"}))
            .await;
        r.assert_ok("check");
        assert_eq!(
            r.body["data"]["remaining"]["calls:*"],
            10 - calls,
            "{org}: {}",
            r.body
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_event_batch_of_a_user_with_a_period_budget_of_their_own_is_one_write_and_two_reads() {
    let clock = TestClock::at("2026-03-10T12:00:00Z");
    let (app, counter) = setup_at(&clock).await;
    app.put(
        &format!("{P}/budgets/cy-period"),
        json!({"scope": {"kind": "user", "user_id": "cy"}, "limits": {"calls:*": 10},
               "window": "period", "mode": "soft", "alert_thresholds": [50]}),
    )
    .await
    .assert_ok("budget");
    app.usage(json!({"events": [own("w1", "cy")]}))
        .await
        .assert_ok("warm");
    counter.take();
    app.usage(json!({"events": [own("c1", "cy"), own("c2", "cy")]}))
        .await
        .assert_ok("ingest");
    let ingest = counter.take();
    eprintln!("event batch of 2 of a user with a period budget of their own: {ingest:?}");
    assert_eq!(
        ingest,
        ops(&[("BatchGetItem", 2), ("TransactWriteItems", 1)]),
        "the period budget's usage is the plan usage on the state read after the write"
    );
    assert!(budget_alerts(&app, "/alerts/cy").await.is_empty());
    // 5 of 10: the 50 % alert, once.
    app.usage(json!({"events": [own("c3", "cy"), own("c4", "cy")]}))
        .await
        .assert_ok("crossing");
    app.usage(json!({"events": [own("c5", "cy")]}))
        .await
        .assert_ok("after");
    assert_eq!(
        budget_alerts(&app, "/alerts/cy").await,
        ["budget/cy-period/2026-03-01T00:00:00Z/calls:*@50"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_first_batch_in_a_process_of_a_user_with_budgets_is_one_write_and_two_reads() {
    let clock = TestClock::at("2026-03-10T12:00:00Z");
    let (app, counter) = setup_at(&clock).await;
    app.put(
        &format!("{P}/budgets/dee-daily"),
        json!({"scope": {"kind": "user", "user_id": "dee"}, "limits": {"calls:*": 8},
               "window": "day", "mode": "hard", "alert_thresholds": [50]}),
    )
    .await
    .assert_ok("budget");
    // Warm the caches (tenant, prices) with a user without budgets.
    app.usage(json!({"events": [own("w1", "zed")]}))
        .await
        .assert_ok("warm");
    counter.take();
    // dee's first batch in this process (2 of 8).
    app.usage(json!({"events": [own("d1", "dee"), own("d2", "dee")]}))
        .await
        .assert_ok("ingest");
    let ingest = counter.take();
    eprintln!("first event batch of 2 of a user with a budget of their own: {ingest:?}");
    let reads: u64 = ingest
        .iter()
        .filter(|(op, _)| op.contains("Get") || op.as_str() == "Query")
        .map(|(_, n)| n)
        .sum();
    assert_eq!(reads, 2, "{ingest:?}");
    assert_eq!(ingest.get("TransactWriteItems"), Some(&1), "{ingest:?}");
    // 4 of 8: the 50 % alert, once.
    app.usage(json!({"events": [own("d3", "dee"), own("d4", "dee")]}))
        .await
        .assert_ok("crossing");
    assert_eq!(
        budget_alerts(&app, "/alerts/dee").await,
        ["budget/dee-daily/2026-03-10T00:00:00Z/calls:*@50"]
    );
    // The counter was written by those batches: 4 left.
    let r = app
        .check(json!({"user_id": "dee", "provider": "gemini"}))
        .await;
    r.assert_ok("check");
    assert_eq!(r.body["data"]["remaining"]["calls:*"], 4, "{}", r.body);
    // A user seen without budgets reads the state alone.
    app.usage(json!({"events": [own("w2", "zed")]}))
        .await
        .assert_ok("plain");
    counter.take();
    app.usage(json!({"events": [own("w3", "zed")]}))
        .await
        .assert_ok("plain");
    let plain = counter.take();
    eprintln!("event batch of a user seen without budgets: {plain:?}");
    assert_eq!(plain.get("BatchGetItem"), None, "{plain:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_naming_more_orgs_than_one_read_holds_reads_once_more_per_100_keys() {
    let clock = TestClock::at("2026-03-10T12:00:00Z");
    let (app, counter) = setup_at(&clock).await;
    app.usage(json!({"events": [event("w1", "zed", "o0", "red")]}))
        .await
        .assert_ok("warm");
    // 40 orgs with a team each: the state, 40 subscription items and 81 scope items
    // (the user's own, 40 orgs, 40 teams) = 122 keys before the write.
    let events: Vec<Value> = (0..40)
        .map(|i| event(&format!("m{i}"), "ann", &format!("o{i}"), "red"))
        .collect();
    counter.take();
    let r = app.usage(json!({ "events": events })).await;
    r.assert_ok("ingest");
    assert_eq!(r.body["data"]["recorded"], 40, "{}", r.body);
    let ingest = counter.take();
    eprintln!("event batch of 40 events naming 40 orgs with a team each: {ingest:?}");
    assert_eq!(
        ingest.get("BatchGetItem"),
        Some(&3),
        "2 before the write (122 keys), 1 after it: {ingest:?}"
    );
    assert_eq!(ingest.get("GetItem"), None, "{ingest:?}");
}
