//! Org subscriptions and org reads on DynamoDB, end to end through the router (issue 18):
//! an org on a plan denies past it, its period is invoiced once by racing passes, and
//! what the org routes and an event batch naming an org cost in requests (measured).

use super::{ops, setup_at};
use meter_core::testing::TestClock;
use serde_json::{json, Value};

const P: &str = "/api/subscription";

fn event(id: &str, user: &str, team: &str) -> Value {
    json!({"event_id": id, "user_id": user, "org_id": "acme", "team_id": team,
           "provider": "gemini", "model": "gemini-2.5-flash", "input_tokens": 1000})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_org_plan_denies_is_invoiced_once_and_org_reads_cost_few_requests_on_dynamodb() {
    let clock = TestClock::at("2026-03-10T12:00:00Z");
    let (app, counter) = setup_at(&clock).await;
    app.put(
        &format!("{P}/plans/orgtiny"),
        json!({"tier": "custom", "monthly_price_usd": "10", "yearly_price_usd": "100",
               "limits": {"calls:gemini": 3}}),
    )
    .await
    .assert_ok("plan");
    app.put(
        &format!("{P}/org/acme/subscription"),
        json!({"plan": "orgtiny"}),
    )
    .await
    .assert_ok("org subscription");

    // Warm the caches, then measure an event batch naming the org and a team.
    app.usage(json!({"events": [event("w1", "ann", "red")]}))
        .await
        .assert_ok("warm");
    counter.take();
    app.usage(json!({"events": [event("a1", "ann", "red"), event("a2", "ann", "red")]}))
        .await
        .assert_ok("ingest");
    let ingest = counter.take();
    assert_eq!(
        ingest.get("TransactWriteItems"),
        Some(&1),
        "one transaction for the events and their counters: {ingest:?}"
    );
    assert_eq!(
        ingest.get("UpdateItem"),
        None,
        "the directory note is in the transaction: {ingest:?}"
    );
    eprintln!("event batch of 2 naming an org and a team: {ingest:?}");

    let denied = app
        .check(json!({"user_id": "bob", "provider": "gemini", "org_id": "acme"}))
        .await;
    assert_eq!(denied.status, 429, "{}", denied.body);
    assert_eq!(denied.body["error"]["details"]["plan"], "orgtiny");

    counter.take();
    let r = app.get(&format!("{P}/org/acme/usage")).await;
    r.assert_ok("usage");
    assert_eq!(r.body["data"]["total_calls"], 3);
    assert_eq!(
        counter.take(),
        ops(&[("GetItem", 1), ("BatchGetItem", 1)]),
        "org usage: the subscription item and the org's counter"
    );
    let r = app.get(&format!("{P}/org/acme/members")).await;
    r.assert_ok("members");
    assert_eq!(r.body["data"]["users"][0]["user_id"], "ann");
    assert_eq!(r.body["data"]["teams"][0]["calls"], 3);
    assert_eq!(
        counter.take(),
        ops(&[("GetItem", 1), ("Query", 1), ("BatchGetItem", 1)]),
        "org members: the subscription item, the directory, the counters"
    );

    // Racing passes after the period's end: one invoice.
    let after = "2026-04-01T00:20:00Z".parse().unwrap();
    clock.set(after);
    let mut passes = Vec::new();
    for _ in 0..4 {
        let app = app.clone();
        passes.push(tokio::spawn(async move { app.aggregate_at(after).await }));
    }
    for p in passes {
        p.await.unwrap();
    }
    let r = app.get(&format!("{P}/org/acme/billing")).await;
    r.assert_ok("billing");
    let invoices = r.body["data"]["invoices"].as_array().unwrap();
    assert_eq!(invoices.len(), 1, "{}", r.body);
    assert_eq!(
        invoices[0]["line_items"][1]["description"],
        "gemini: 3 calls, 3000 tokens"
    );
    let r = app.get(&format!("{P}/org/acme/subscription")).await;
    assert_eq!(r.body["data"]["subscription"]["version"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn budget_alerts_fire_once_under_concurrent_ingest_on_dynamodb() {
    let clock = TestClock::at("2026-03-10T12:00:00Z");
    let (app, _counter) = setup_at(&clock).await;
    app.put(
        &format!("{P}/budgets/eve-daily"),
        json!({"scope": {"kind": "user", "user_id": "eve"}, "limits": {"calls:*": 10},
               "window": "day", "mode": "soft", "alert_thresholds": [50, 100]}),
    )
    .await
    .assert_ok("soft");
    let mut tasks = Vec::new();
    for i in 0..20 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            app.usage(
                json!({"event_id": format!("e{i}"), "user_id": "eve", "provider": "gemini",
                              "model": "gemini-2.5-flash", "input_tokens": 100}),
            )
            .await
            .assert_ok("eve");
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let r = app.get(&format!("{P}/alerts/eve?limit=100")).await;
    r.assert_ok("alerts");
    let mut keys: Vec<String> = r.body["data"]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["key"].as_str().unwrap().to_owned())
        .filter(|k| k.starts_with("budget/"))
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "budget/eve-daily/2026-03-10T00:00:00Z/calls:*@100",
            "budget/eve-daily/2026-03-10T00:00:00Z/calls:*@50",
        ]
    );
    assert_eq!(r.body["data"]["unread_count"], 2, "{}", r.body);
}
