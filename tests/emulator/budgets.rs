//! The DynamoDB request budget of the budget routes: what the check path will read (a
//! scope's list, a budget by id) is one request each, and a write one transaction.

use serde_json::json;

use super::ops;
use super::setup;

#[tokio::test]
async fn a_scope_list_and_a_budget_are_one_get_item_each_and_a_write_one_transaction() {
    let env = setup(None).await;
    let app = &env.app;
    let body = |i: u32| {
        json!({"scope": {"kind": "team", "org_id": "acme", "team_id": "red"},
               "limits": {"calls:*": 60 + i, "cost_usd": "5.25"}, "window": "minute", "mode": "hard"})
    };
    // Warm the admin key's cache; then fill the scope to its cap.
    for i in 0..32 {
        let r = app
            .put(&format!("/api/subscription/budgets/red-{i:02}"), body(i))
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }

    // Warm the service key's cache too (reads use it).
    assert_eq!(
        app.get("/api/subscription/budgets?user_id=u").await.status,
        200
    );

    env.counter.take();
    let r = app.put("/api/subscription/budgets/red-99", body(99)).await;
    assert_eq!(r.code(), "too_many_budgets");
    assert_eq!(
        env.counter.take(),
        ops(&[("GetItem", 1), ("TransactWriteItems", 1)]),
        "a refused creation"
    );

    let r = app
        .get("/api/subscription/budgets?org_id=acme&team_id=red")
        .await;
    assert_eq!(r.body["data"]["budgets"].as_array().map(Vec::len), Some(32));
    assert_eq!(
        env.counter.take(),
        ops(&[("GetItem", 1)]),
        "a full scope's list: the scope's item"
    );

    let r = app.get("/api/subscription/budgets/red-07").await;
    assert_eq!(r.body["data"]["limits"]["calls:*"], 67);
    assert_eq!(env.counter.take(), ops(&[("GetItem", 1)]), "a budget by id");

    let r = app.put("/api/subscription/budgets/red-07", body(1)).await;
    assert_eq!(r.body["data"]["budget"]["version"], 2);
    assert_eq!(
        env.counter.take(),
        ops(&[("GetItem", 1), ("TransactWriteItems", 1)]),
        "a replacement"
    );

    let r = app.delete("/api/subscription/budgets/red-07").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        env.counter.take(),
        ops(&[("GetItem", 1), ("TransactWriteItems", 1)]),
        "a deletion"
    );
}
