//! Reservations holding on budget counters on DynamoDB, through the router (issue 18):
//! what a reservation, its release and its settlement cost in requests, and that the
//! holds go back exactly.

use super::{ops, setup_at};
use meter_core::testing::TestClock;
use serde_json::{json, Value};

fn reserve(user: &str) -> Value {
    json!({"user_id": user, "provider": "gemini", "model": "gemini-2.5-flash",
           "estimated_output_tokens": 12000, "org_id": "acme", "team_id": "red",
           "reserve": true})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reservation_over_budgets_is_one_transaction_and_its_release_returns_every_hold() {
    let clock = TestClock::at("2026-03-10T15:30:05Z");
    let (app, counter) = setup_at(&clock).await;
    for (id, body) in [
        (
            "acme-daily",
            json!({"scope": {"kind": "org", "org_id": "acme"}, "limits": {"cost_usd": "0.10"},
                   "window": "day", "mode": "hard"}),
        ),
        (
            "red-rate",
            json!({"scope": {"kind": "team", "org_id": "acme", "team_id": "red"},
                   "applies_to": "each_member", "limits": {"calls:*": 60, "cost_usd": "1"},
                   "window": "minute", "mode": "hard"}),
        ),
    ] {
        app.put(&format!("/api/subscription/budgets/{id}"), body)
            .await
            .assert_ok(id);
    }
    app.check(reserve("warm")).await.assert_ok("warm");

    counter.take();
    let r = app.check(reserve("ann")).await;
    r.assert_ok("reserve");
    // The check's one read (state, org subscription, the scopes' budgets and counter
    // items: one BatchGetItem), then one transaction: the user's state item (plan hold
    // and reservation), the org's counter item (day window) and ann's counter item in
    // the team (minute window: her call counted there as an attempt, its cost held).
    assert_eq!(
        counter.take(),
        ops(&[("BatchGetItem", 1), ("TransactWriteItems", 1)]),
        "a reservation naming an org and a team with two budgets"
    );
    // $0.03 held of the org's $0.10 (and of the warm-up's), the tightest cost limit.
    assert_eq!(
        r.body["data"]["remaining"]["cost_usd"], "0.04",
        "{}",
        r.body
    );
    let rid = r.body["data"]["reservation_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Two more fit the org's day ($0.09 of $0.10 held); the next is denied by it.
    app.check(reserve("bob")).await.assert_ok("bob");
    let denied = app.check(reserve("cat")).await;
    assert_eq!(denied.status, 429, "{}", denied.body);
    assert_eq!(denied.body["error"]["details"]["budget_id"], "acme-daily");
    assert_eq!(denied.body["error"]["details"]["used"], "0.09");

    counter.take();
    let released = app
        .post(
            &format!("/api/subscription/reservations/{rid}/release"),
            json!({}),
        )
        .await;
    released.assert_ok("release");
    assert_eq!(
        counter.take(),
        ops(&[("GetItem", 1), ("TransactWriteItems", 1)]),
        "a release: the state item, then one transaction with every counter"
    );
    // Released twice: nothing more goes back.
    app.post(
        &format!("/api/subscription/reservations/{rid}/release"),
        json!({}),
    )
    .await
    .assert_ok("release again");

    // ann's $0.03 is free again: cat fits, and then no one.
    app.check(reserve("cat"))
        .await
        .assert_ok("cat after the release");
    let denied = app.check(reserve("dan")).await;
    assert_eq!(denied.status, 429, "{}", denied.body);
    assert_eq!(denied.body["error"]["details"]["used"], "0.09");
}
