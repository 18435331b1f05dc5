//! `GET /admin/orgs` against openapi.yaml with orgs on the page: a subscribed org (plan,
//! status, limits' percentage) and one with usage only (`null` plan and status) validate;
//! a float cost or a missing field does not.

use serde_json::{json, Value};

use super::contract::Contract;
use meter_tests::TestApp;

#[tokio::test]
async fn a_page_of_orgs_matches_the_contract() {
    let app = TestApp::spawn().await;
    let contract = Contract::load();
    app.put(
        "/api/subscription/org/acme/subscription",
        json!({"plan": "pro"}),
    )
    .await
    .assert_ok("org subscription");
    for (id, org) in [("e1", "acme"), ("e2", "beta")] {
        app.usage(
            json!({"event_id": id, "user_id": "ann", "org_id": org, "provider": "gemini",
                         "model": "gemini-2.5-flash", "input_tokens": 1000}),
        )
        .await
        .assert_ok(id);
    }
    let admin = app.admin_key.clone();
    let page = app.get_as(&admin, "/api/subscription/admin/orgs").await;
    page.assert_ok("orgs");
    assert_eq!(page.body["data"]["orgs"].as_array().map(Vec::len), Some(2));
    let route = ("GET".to_owned(), "/api/subscription/admin/orgs".to_owned());
    contract.validate(&route, 200, &page.body).unwrap();
    let mutations: [fn(&mut Value); 2] = [
        |v| v["data"]["orgs"][0]["cost_usd"] = json!(0.001),
        |v| {
            v["data"]["orgs"][1].as_object_mut().unwrap().remove("plan");
        },
    ];
    for m in mutations {
        let mut bad = page.body.clone();
        m(&mut bad);
        assert!(contract.validate(&route, 200, &bad).is_err(), "{bad}");
    }
}
