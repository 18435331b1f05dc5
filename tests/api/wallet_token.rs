//! An end-user token reads its own user's wallet (the web page's prepaid panel) and no
//! other wallet (issue 19).

use serde_json::json;

use meter_tests::TestApp;

#[tokio::test]
async fn a_token_reads_its_own_wallet_only() {
    let app = TestApp::spawn().await;
    let minted = app
        .post("/api/subscription/tokens", json!({"user_id": "pam"}))
        .await;
    minted.assert_ok("mint");
    let token = minted.body["data"]["token"].as_str().unwrap().to_owned();
    let own = app
        .get_as(&token, "/api/subscription/wallet/user/pam")
        .await;
    own.assert_ok("own wallet");
    assert_eq!(
        own.body["data"]["subscriber"],
        json!({"kind": "user", "id": "pam"})
    );
    for path in [
        "/api/subscription/wallet/user/alice",
        "/api/subscription/wallet/org/pam",
    ] {
        let r = app.get_as(&token, path).await;
        assert_eq!(r.status, 403, "{path}: {}", r.body);
    }
    let write = app
        .put_as(
            &token,
            "/api/subscription/wallet/user/pam/grants/g",
            json!({"amount_usd": "1", "kind": "promo"}),
        )
        .await;
    assert_eq!(write.status, 403, "{}", write.body);
}
