//! The DynamoDB request budget of the wallet routes: a full wallet (100 grants) is read in
//! one Query, a grant is put in one transaction (a replay or a conflict too), a void is
//! one GetItem and one transaction, a setting one UpdateItem; a put into a full wallet
//! reads it once more and prunes its finished grants (one transaction each).

use serde_json::json;

use super::ops;
use super::setup;

const ACME: &str = "/api/subscription/wallet/org/acme";

#[tokio::test]
async fn wallets_cost_one_query_to_read_and_one_transaction_per_grant() {
    let env = setup(None).await;
    let app = &env.app;
    // The largest grants a wallet holds: 1024-character notes.
    let note = "n".repeat(1024);
    let body = |amount: &str| json!({"amount_usd": amount, "kind": "promo", "note": note});
    for i in 0..100 {
        let r = app
            .put(&format!("{ACME}/grants/g-{i:03}"), body("1.5"))
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    // Warm the service key's cache (reads use it).
    assert_eq!(app.get("/api/subscription/wallet/user/u").await.status, 200);

    env.counter.take();
    let r = app.get(ACME).await;
    assert_eq!(r.body["data"]["grants"].as_array().map(Vec::len), Some(100));
    assert_eq!(r.body["data"]["balance_usd"], "150");
    // The wallet's partition, and the org's draw ledger for the burn (issue 19).
    assert_eq!(env.counter.take(), ops(&[("Query", 2)]), "a full wallet");

    let r = app.put(&format!("{ACME}/grants/one-more"), body("1")).await;
    assert_eq!(r.code(), "too_many_grants");
    assert_eq!(
        env.counter.take(),
        ops(&[("TransactWriteItems", 1), ("Query", 1)]),
        "a refused creation (the wallet is read once for finished grants to prune)"
    );
    let r = app.put(&format!("{ACME}/grants/g-007"), body("1.50")).await;
    assert_eq!(r.body["data"]["created"], false);
    assert_eq!(
        env.counter.take(),
        ops(&[("TransactWriteItems", 1)]),
        "a replay (the stored grant comes back with the cancellation)"
    );
    let r = app.put(&format!("{ACME}/grants/g-007"), body("2")).await;
    assert_eq!(r.code(), "conflict");
    assert_eq!(
        env.counter.take(),
        ops(&[("TransactWriteItems", 1)]),
        "a conflict"
    );

    let r = app
        .post_as(
            &app.admin_key,
            &format!("{ACME}/grants/g-007/void"),
            json!({}),
        )
        .await;
    assert_eq!(r.body["data"]["removed_usd"], "1.5");
    // The grant, the void's transaction, and the wallet read that observes its alarms
    // (an org's wallet has them too: issue 19; none moves here, so no write).
    assert_eq!(
        env.counter.take(),
        ops(&[("GetItem", 1), ("Query", 1), ("TransactWriteItems", 1)]),
        "a void"
    );
    let r = app
        .put(
            &format!("{ACME}/settings"),
            json!({"low_balance_usd": "10"}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(env.counter.take(), ops(&[("UpdateItem", 1)]), "a setting");

    // The full wallet prunes the voided grant to take a new one (grant upkeep).
    let r = app.put(&format!("{ACME}/grants/one-more"), body("1")).await;
    assert_eq!(r.body["data"]["created"], true, "{}", r.body);
    assert_eq!(
        env.counter.take(),
        ops(&[("TransactWriteItems", 3), ("Query", 2)]),
        "a creation that prunes: refused, the wallet read, the prune, created; then the org \
         wallet's alarms observed (one wallet read)"
    );
}
