//! `alert.resolved` on DynamoDB, end to end through the router (issue 18): what a denial
//! at 100 % costs in requests (one more write than a denial below 100 %, the note, once
//! per window: later denials' notes fail their condition), and a raised limit resolved
//! once by racing passes, listed for the org (measured).

use std::collections::BTreeMap;

use super::setup_at;
use meter_core::testing::TestClock;
use serde_json::json;

const P: &str = "/api/subscription";

fn writes(ops: &BTreeMap<String, u64>) -> u64 {
    ["TransactWriteItems", "PutItem", "UpdateItem", "DeleteItem"]
        .iter()
        .map(|k| ops.get(*k).copied().unwrap_or(0))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_denial_at_full_is_noted_once_and_resolved_once_on_dynamodb() {
    let clock = TestClock::at("2026-03-10T12:00:10Z");
    let (app, counter) = setup_at(&clock).await;
    let budget = json!({"scope": {"kind": "org", "org_id": "acme"},
        "limits": {"calls:*": 2}, "window": "minute", "mode": "hard"});
    app.put(&format!("{P}/budgets/acme-rate"), budget.clone())
        .await
        .assert_ok("budget");
    let check = json!({"user_id": "ann", "provider": "gemini", "org_id": "acme"});
    for _ in 0..2 {
        app.check(check.clone()).await.assert_ok("allowed");
    }
    counter.take();
    let r = app.check(check.clone()).await;
    assert_eq!(r.status, 429, "{}", r.body);
    let first = counter.take();
    let r = app.check(check.clone()).await;
    assert_eq!(r.status, 429, "{}", r.body);
    let again = counter.take();
    // The note is one write request, the first time and (failing its condition) after.
    assert_eq!(writes(&first), 1, "{first:?}");
    assert_eq!(first, again, "a denial of the same window costs the same");

    let now = clock.now();
    let pass = || {
        let app = app.clone();
        async move { app.aggregate_at(now).await }
    };
    assert_eq!(pass().await.alerts_resolved, 0);
    let mut raised = budget.clone();
    raised["limits"] = json!({"calls:*": 5});
    app.put(&format!("{P}/budgets/acme-rate"), raised)
        .await
        .assert_ok("raise");
    let (a, b) = tokio::join!(pass(), pass());
    assert_eq!(a.alerts_resolved + b.alerts_resolved, 1);
    let r = app.get(&format!("{P}/org/acme/alerts")).await;
    r.assert_ok("org alerts");
    let alerts = r.body["data"]["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 1, "{}", r.body);
    assert!(alerts[0]["key"]
        .as_str()
        .unwrap()
        .starts_with("resolved/budget/acme-rate/"));
    assert_eq!(r.body["data"]["unread_count"], 1);
    app.check(check).await.assert_ok("allowed again");
}
