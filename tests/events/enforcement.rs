//! The answers of a check when budgets apply (issue 18) against openapi.yaml: a 200 with
//! `limited_by`, a 429 naming a budget and one naming the plan validate; details mixing
//! the two shapes do not.

use serde_json::{json, Value};

use super::contract::Contract;
use meter_tests::TestApp;

/// A change to an answer body, named.
type Mutation = (&'static str, fn(&mut Value));

fn route() -> (String, String) {
    ("POST".to_owned(), "/api/subscription/check".to_owned())
}

#[tokio::test]
async fn budget_aware_check_answers_match_the_contract() {
    let app = TestApp::spawn().await;
    app.put(
        "/api/subscription/budgets/acme-one",
        json!({"scope": {"kind": "org", "org_id": "acme"}, "limits": {"calls:gemini": 1},
               "window": "day", "mode": "hard"}),
    )
    .await
    .assert_ok("budget");
    let contract = Contract::load();
    let check = |provider: &str| json!({"user_id": "ann", "provider": provider, "org_id": "acme"});

    let allowed = app.check(check("gemini")).await;
    allowed.assert_ok("allowed");
    assert!(allowed.body["data"]["limited_by"].is_object());
    contract.validate(&route(), 200, &allowed.body).unwrap();

    app.usage(
        json!({"event_id": "x1", "user_id": "bob", "provider": "gemini",
                     "model": "gemini-2.5-flash", "input_tokens": 1, "org_id": "acme"}),
    )
    .await
    .assert_ok("event");
    let by_budget = app.check(check("gemini")).await;
    assert_eq!(by_budget.status, 429, "{}", by_budget.body);
    contract.validate(&route(), 429, &by_budget.body).unwrap();

    let by_plan = app.check(check("openai")).await;
    assert_eq!(by_plan.status, 429, "{}", by_plan.body);
    assert_eq!(by_plan.body["error"]["details"]["plan"], "free");
    contract.validate(&route(), 429, &by_plan.body).unwrap();

    let mutated: [Mutation; 3] = [
        ("a budget with an upgrade", |d| {
            d["error"]["details"]["upgrade_to"] = json!("pro")
        }),
        ("a scope without its window", |d| {
            d["error"]["details"]
                .as_object_mut()
                .unwrap()
                .remove("window");
        }),
        ("an unknown window", |d| {
            d["error"]["details"]["window"] = json!("fortnight")
        }),
    ];
    for (what, change) in mutated {
        let mut body = by_budget.body.clone();
        change(&mut body);
        assert!(
            contract.validate(&route(), 429, &body).is_err(),
            "the contract accepts {what}"
        );
    }
    let mut odd = allowed.body.clone();
    odd["data"]["limited_by"]["calls:gemini"]["plan"] = json!("free");
    assert!(
        contract.validate(&route(), 200, &odd).is_err(),
        "the contract accepts a limit of both a plan and a budget"
    );
}
