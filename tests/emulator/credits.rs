//! Prepaid credits on DynamoDB (issue 19): an erasure gives back the credit held by the
//! user's open reservations (inline and spilled) once (the story is shared with the
//! router tests, tests/api/erasure_credit.rs, which also runs it on SQLite here); a
//! prepaid invoice credits what the period drew from a strongly consistent read.

use meter_core::testing::TestClock;

use super::setup_at;

#[path = "../api/erasure_credit.rs"]
mod erasure_story;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_erasure_releases_held_credit_once_on_dynamodb() {
    let clock = TestClock::at("2026-03-10T09:00:00Z");
    let (app, _) = setup_at(&clock).await;
    erasure_story::erasure_releases_held_credit_once(&app).await;
}

/// A prepaid invoice's credit comes from a strongly consistent read (issue 19): the
/// events' draws are also listed through the `by_user` index, which DynamoDB updates
/// eventually; here the index has not caught up at all (the events' index keys are
/// removed) when the period is closed, and the invoice still credits the $1 the period's
/// event drew and bills the $0.20 overdraft.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_prepaid_invoice_credits_the_draws_without_waiting_for_the_user_index() {
    use meter_core::service::aggregate::AggregateOptions;
    use meter_core::store::dynamo::DynamoStore;
    use meter_tests::TestApp;
    use serde_json::json;
    use std::sync::Arc;

    let config = meter_core::config::load_aws().await;
    let (client, table) = super::fresh_table().await;
    let (store, _) = DynamoStore::with_request_counter(&config, table.clone());
    let clock = TestClock::at("2026-03-10T09:00:00Z");
    let app = TestApp::setup()
        .store(Arc::new(store))
        .clock(&clock)
        .spawn()
        .await;
    const P: &str = "/api/subscription";
    let plan = json!({"tier": "custom", "monthly_price_usd": "0", "yearly_price_usd": "0",
                      "limits": {"calls:gemini": 100}, "payment": "prepaid"});
    app.put(&format!("{P}/plans/payg"), plan)
        .await
        .assert_ok("plan");
    app.put(
        &format!("{P}/user/pam/subscription"),
        json!({"plan": "payg"}),
    )
    .await
    .assert_ok("subscribe");
    app.put(
        &format!("{P}/wallet/user/pam/grants/topup"),
        json!({"amount_usd": "1", "kind": "purchase"}),
    )
    .await
    .assert_ok("grant");
    // $1.20 of usage: $1 drawn, $0.20 overdrawn.
    app.usage(
        json!({"event_id": "p-1", "user_id": "pam", "provider": "gemini",
                     "model": "gemini-2.5-flash", "input_tokens": 4_000_000}),
    )
    .await
    .assert_ok("usage");

    // The index has not caught up: take the event items out of `by_user`.
    let scan = client.scan().table_name(&table).send().await.unwrap();
    let mut lagging = 0;
    for item in scan.items() {
        if item.contains_key("draws") {
            client
                .update_item()
                .table_name(&table)
                .key("PK", item["PK"].clone())
                .key("SK", item["SK"].clone())
                .update_expression("REMOVE USER_PK, USER_SK")
                .send()
                .await
                .unwrap();
            lagging += 1;
        }
    }
    assert_eq!(lagging, 1, "the event item keeps its draws");
    let listed = app
        .store
        .event_draws(
            &app.tenant,
            &meter_core::domain::UserId::parse("pam").unwrap(),
            None,
        )
        .await
        .unwrap();
    assert!(listed.is_empty(), "the index does not list the event yet");

    clock.set("2026-04-01T01:00:00Z".parse().unwrap());
    app.meter
        .aggregate(&AggregateOptions {
            at: Some(clock.now()),
            ..Default::default()
        })
        .await
        .unwrap();
    let inv = app
        .store
        .list_invoices(
            &app.tenant,
            &meter_core::domain::UserId::parse("pam").unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(inv.len(), 1, "{inv:?}");
    let credit = inv[0]
        .line_items
        .iter()
        .find(|l| l.kind == "credits_applied");
    assert_eq!(
        credit.map(|l| l.amount_usd),
        Some(rust_decimal::Decimal::from(-1)),
        "{:?}",
        inv[0]
    );
    assert_eq!(
        inv[0].total_usd,
        rust_decimal::Decimal::new(20, 2),
        "the overdraft"
    );
}
