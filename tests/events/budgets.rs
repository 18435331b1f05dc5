//! The budget routes' answers against openapi.yaml: the real bodies validate, and bodies
//! that differ from them do not (the schemas are exact, not merely permissive).

use serde_json::{json, Value};

use super::{assert_contract_rejects, remove};

#[tokio::test]
async fn the_contract_rejects_budget_bodies_that_differ_from_the_real_ones() {
    assert_contract_rejects(
        "get-budget.200.json",
        "GET /api/subscription/budgets/{budget_id}",
        &[
            ("a float cost limit", |d| {
                d["limits"]["cost_usd"] = json!(20.0)
            }),
            ("no limits", |d| d["limits"] = json!({})),
            ("an unknown window", |d| d["window"] = json!("fortnight")),
            ("a team scope without its org", |d| {
                d["scope"] = json!({"kind": "team", "team_id": "red"})
            }),
            ("a user scope with an org id", |d| {
                d["scope"] = json!({"kind": "user", "user_id": "u", "org_id": "acme"})
            }),
            ("version 0", |d| d["version"] = json!(0)),
            ("no updated_at", |d| remove(d, "updated_at")),
            ("an extra field", |d| d["tenant"] = json!("default")),
        ],
    )
    .await;
    assert_contract_rejects(
        "list-budgets.200.json",
        "GET /api/subscription/budgets",
        &[
            ("no scope", |d| remove(d, "scope")),
            ("another cap", |d| d["max_budgets"] = json!(33)),
            ("a bare array", |d: &mut Value| *d = d["budgets"].clone()),
        ],
    )
    .await;
    assert_contract_rejects(
        "put-budget.200.json",
        "PUT /api/subscription/budgets/{budget_id}",
        &[
            ("no created flag", |d| remove(d, "created")),
            ("the budget at the top", |d: &mut Value| {
                *d = d["budget"].clone()
            }),
        ],
    )
    .await;
    assert_contract_rejects(
        "delete-budget.200.json",
        "DELETE /api/subscription/budgets/{budget_id}",
        &[("deleted false", |d| d["deleted"] = json!(false))],
    )
    .await;
}
