//! The answers of a prepaid plan (issue 19) against openapi.yaml: a plan with `payment`,
//! an allowed prepaid check with a reservation and a 429 for want of credit validate;
//! credit details with a window's fields or a float amount do not.

use serde_json::{json, Value};

use super::contract::Contract;
use meter_tests::TestApp;

type Mutation = (&'static str, fn(&mut Value));

#[tokio::test]
async fn prepaid_answers_match_the_contract() {
    let app = TestApp::spawn().await;
    let contract = Contract::load();
    let plan = app
        .put(
            "/api/subscription/plans/payg",
            json!({"tier": "custom", "monthly_price_usd": "0", "yearly_price_usd": "0",
                   "limits": {}, "payment": "prepaid"}),
        )
        .await;
    plan.assert_ok("plan");
    contract
        .validate(
            &(
                "PUT".to_owned(),
                "/api/subscription/plans/{name}".to_owned(),
            ),
            200,
            &plan.body,
        )
        .unwrap();
    let plans = app.get("/api/subscription/plans").await;
    contract
        .validate(
            &("GET".to_owned(), "/api/subscription/plans".to_owned()),
            200,
            &plans.body,
        )
        .unwrap();
    app.put(
        "/api/subscription/user/pam/subscription",
        json!({"plan": "payg"}),
    )
    .await
    .assert_ok("subscribe");
    let route = ("POST".to_owned(), "/api/subscription/check".to_owned());
    let check = json!({"user_id": "pam", "provider": "gemini", "model": "gemini-2.5-flash",
                       "estimated_input_tokens": 1_000_000, "reserve": true});
    let denied = app.check(check.clone()).await;
    assert_eq!(denied.status, 429, "{}", denied.body);
    contract.validate(&route, 429, &denied.body).unwrap();

    app.put(
        "/api/subscription/wallet/user/pam/grants/topup",
        json!({"amount_usd": "1", "kind": "purchase"}),
    )
    .await
    .assert_ok("grant");
    let allowed = app.check(check).await;
    allowed.assert_ok("allowed");
    contract.validate(&route, 200, &allowed.body).unwrap();
    let wallet = app.get("/api/subscription/wallet/user/pam").await;
    assert_eq!(wallet.body["data"]["held_usd"], "0.3");
    contract
        .validate(
            &(
                "GET".to_owned(),
                "/api/subscription/wallet/user/{user_id}".to_owned(),
            ),
            200,
            &wallet.body,
        )
        .unwrap();

    // The dashboard shows the wallet; the billing route an invoice with credits.
    let dash = app.get("/api/subscription/dashboard/pam").await;
    dash.assert_ok("dashboard");
    assert_eq!(
        dash.body["data"]["wallet"],
        json!({"payment": "prepaid", "balance_usd": "1", "held_usd": "0.3", "available_usd": "0.7"})
    );
    contract
        .validate(
            &(
                "GET".to_owned(),
                "/api/subscription/dashboard/{user_id}".to_owned(),
            ),
            200,
            &dash.body,
        )
        .unwrap();

    // The export shows the wallet and each event's draws.
    app.usage(
        json!({"event_id": "x-1", "user_id": "pam", "provider": "gemini",
                     "model": "gemini-2.5-flash", "input_tokens": 2_000_000}),
    )
    .await
    .assert_ok("usage");
    let export = app
        .get_as(&app.admin_key, "/api/subscription/user/pam/export")
        .await;
    export.assert_ok("export");
    assert_eq!(
        export.body["data"]["draws"],
        json!([{"event_id": "x-1", "wallet": {"kind": "user", "id": "pam"},
                "at": export.body["data"]["draws"][0]["at"].clone(),
                "draws": [{"grant_id": "topup", "amount_usd": "0.6"}],
                "shortfall_usd": "0", "cost_usd": "0.6"}])
    );
    assert_eq!(export.body["data"]["wallet"]["balance_usd"], "0.4");
    contract
        .validate(
            &(
                "GET".to_owned(),
                "/api/subscription/user/{user_id}/export".to_owned(),
            ),
            200,
            &export.body,
        )
        .unwrap();

    let mutated: [Mutation; 3] = [
        ("a window on a credit denial", |d| {
            d["error"]["details"]["window"] = json!("day")
        }),
        ("a float available", |d| {
            d["error"]["details"]["available_usd"] = json!(0.1)
        }),
        ("an upgrade for credit", |d| {
            d["error"]["details"]["upgrade_to"] = json!("pro")
        }),
    ];
    for (what, change) in mutated {
        let mut body = denied.body.clone();
        change(&mut body);
        assert!(
            contract.validate(&route, 429, &body).is_err(),
            "the contract accepts {what}"
        );
    }
}
