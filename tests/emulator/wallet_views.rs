//! The views of wallets on DynamoDB through the router (issue 19): a user's export shows
//! the draws an org's wallet paid (read from the user's events), the org's export its
//! ledger, and a page of `GET /admin/wallets` costs one `Query` of the `subs` index and
//! one `BatchGetItem` of the heads, whatever the tenant's size.

use serde_json::json;

use super::{ops, setup_at};

const P: &str = "/api/subscription";

#[tokio::test]
async fn exports_name_the_payer_and_a_wallet_page_is_two_requests() {
    let clock = meter_core::testing::TestClock::at("2026-03-10T09:00:00Z");
    let (app, counter) = setup_at(&clock).await;
    let admin = app.admin_key.clone();
    app.put(
        &format!("{P}/plans/teampay"),
        json!({"tier": "custom", "monthly_price_usd": "0", "yearly_price_usd": "0",
               "limits": {"calls:gemini": 100}, "payment": "prepaid"}),
    )
    .await
    .assert_ok("plan");
    app.put(
        &format!("{P}/org/acme/subscription"),
        json!({"plan": "teampay"}),
    )
    .await
    .assert_ok("org subscription");
    app.put(
        &format!("{P}/wallet/org/acme/grants/pool"),
        json!({"amount_usd": "2", "kind": "purchase"}),
    )
    .await
    .assert_ok("grant");
    let e = json!({"event_id": "ann-1", "user_id": "ann", "org_id": "acme", "provider": "gemini",
                   "model": "gemini-2.5-flash", "input_tokens": 1_000_000});
    app.usage(e).await.assert_ok("ann-1");

    let ann = app.get_as(&admin, &format!("{P}/user/ann/export")).await;
    ann.assert_ok("ann's export");
    let d = &ann.body["data"]["draws"];
    assert_eq!(d.as_array().map(Vec::len), Some(1), "{d}");
    assert_eq!(d[0]["event_id"], "ann-1");
    assert_eq!(d[0]["wallet"], json!({"kind": "org", "id": "acme"}));
    assert_eq!(d[0]["cost_usd"], "0.3");
    let acme = app.get_as(&admin, &format!("{P}/org/acme/export")).await;
    acme.assert_ok("acme's export");
    assert_eq!(
        acme.body["data"]["draws"], *d,
        "the same draw, from the ledger"
    );
    assert_eq!(acme.body["data"]["wallet"]["balance_usd"], "1.7");

    // 120 more wallets: the admin's page of 100 is still two requests.
    for i in 0..120 {
        app.put(
            &format!("{P}/wallet/user/u{i:03}/grants/g"),
            json!({"amount_usd": "1", "kind": "promo"}),
        )
        .await
        .assert_ok("grant");
    }
    counter.take();
    let first = app
        .get_as(&admin, &format!("{P}/admin/wallets?limit=100"))
        .await;
    first.assert_ok("first page");
    assert_eq!(
        counter.take(),
        ops(&[("Query", 1), ("BatchGetItem", 1)]),
        "a page of 100 wallets"
    );
    let wallets = first.body["data"]["wallets"].as_array().unwrap();
    assert_eq!(wallets.len(), 100);
    assert_eq!(
        wallets[0]["subscriber"],
        json!({"kind": "org", "id": "acme"})
    );
    assert_eq!(wallets[0]["available_usd"], "1.7");
    assert_eq!(first.body["data"]["next_cursor"], "user/u098");
    let rest = app
        .get_as(
            &admin,
            &format!("{P}/admin/wallets?limit=100&cursor=user/u098"),
        )
        .await;
    rest.assert_ok("second page");
    assert_eq!(counter.take(), ops(&[("Query", 1), ("BatchGetItem", 1)]));
    assert_eq!(
        rest.body["data"]["wallets"].as_array().map(Vec::len),
        Some(21)
    );
    assert_eq!(rest.body["data"]["next_cursor"], serde_json::Value::Null);
}
