//! Wallets through the router: GET `/wallet/{user|org}/{id}`, PUT `…/grants/{grant_id}`,
//! POST `…/grants/{grant_id}/void`, PUT `…/settings`: the worked example of
//! docs/credits.md, idempotency by grant id, expiry on read, roles, and every refusal
//! (4xx with a stable code, nothing stored).

use serde_json::{json, Value};

use meter_core::testing::TestClock;
use meter_tests::TestApp;

const P: &str = "/api/subscription";
const ALICE: &str = "/api/subscription/wallet/user/alice";

fn grant_path(wallet: &str, id: &str) -> String {
    format!("{wallet}/grants/{id}")
}

async fn void(app: &TestApp, wallet: &str, id: &str) -> meter_tests::Reply {
    app.post_as(
        &app.admin_key,
        &format!("{}/void", grant_path(wallet, id)),
        json!({}),
    )
    .await
}

fn ids(wallet: &Value) -> Vec<&str> {
    wallet["grants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["grant_id"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn a_purchase_and_a_promo_that_expires_first_then_a_void() {
    let clock = TestClock::at("2026-03-01T09:00:00Z");
    let app = TestApp::spawn_at(&clock).await;
    let r = app
        .put(
            &grant_path(ALICE, "purchase-1001"),
            json!({"amount_usd": "10.00", "kind": "purchase", "note": "order 1001"}),
        )
        .await;
    r.assert_ok("purchase");
    assert_eq!(r.body["data"]["created"], true);
    let g = &r.body["data"]["grant"];
    assert_eq!(
        g,
        &json!({"grant_id": "purchase-1001", "amount_usd": "10", "remaining_usd": "10",
                "expires_at": null, "priority": 10, "kind": "purchase", "note": "order 1001",
                "status": "active", "created_at": "2026-03-01T09:00:00Z", "voided_at": null, "expired_usd": null})
    );
    let r = app
        .put(
            &grant_path(ALICE, "spring-promo"),
            json!({"amount_usd": "5", "kind": "promo", "expires_at": "2026-03-31T00:00:00Z"}),
        )
        .await;
    r.assert_ok("promo");

    let w = app.get(ALICE).await;
    w.assert_ok("wallet");
    let d = &w.body["data"];
    assert_eq!(d["subscriber"], json!({"kind": "user", "id": "alice"}));
    assert_eq!(
        (&d["balance_usd"], &d["held_usd"], &d["available_usd"]),
        (&json!("15"), &json!("0"), &json!("15"))
    );
    assert_eq!(d["low_balance_usd"], Value::Null);
    assert_eq!(d["burn_last_7_days_usd"], "0");
    assert_eq!(d["projected_depletion_at"], Value::Null);
    assert_eq!(d["max_grants"], 100);
    // The promo burns first: same priority, it expires sooner.
    assert_eq!(ids(d), ["spring-promo", "purchase-1001"]);

    // At its expiry instant the promo stops counting, with no write.
    clock.set("2026-03-31T00:00:00Z".parse().unwrap());
    let d = app.get(ALICE).await.body["data"].clone();
    assert_eq!(
        (&d["balance_usd"], &d["available_usd"]),
        (&json!("10"), &json!("10"))
    );
    assert_eq!(ids(&d), ["purchase-1001", "spring-promo"]);
    assert_eq!(d["grants"][1]["status"], "expired");
    assert_eq!(d["grants"][1]["remaining_usd"], "5");

    // Voiding removes what is left; voiding again answers the same.
    clock.set("2026-04-02T00:00:00Z".parse().unwrap());
    let first = void(&app, ALICE, "purchase-1001").await;
    first.assert_ok("void");
    assert_eq!(first.body["data"]["removed_usd"], "10");
    assert_eq!(first.body["data"]["grant"]["status"], "voided");
    assert_eq!(
        first.body["data"]["grant"]["voided_at"],
        "2026-04-02T00:00:00Z"
    );
    clock.set("2026-04-03T00:00:00Z".parse().unwrap());
    let again = void(&app, ALICE, "purchase-1001").await;
    again.assert_ok("void again");
    assert_eq!(again.body, first.body);
    // Voiding the expired promo removes nothing more.
    let promo = void(&app, ALICE, "spring-promo").await;
    assert_eq!(promo.body["data"]["removed_usd"], "0");
    let d = app.get(ALICE).await.body["data"].clone();
    assert_eq!(
        (&d["balance_usd"], &d["available_usd"]),
        (&json!("0"), &json!("0"))
    );
}

#[tokio::test]
async fn the_same_grant_body_again_changes_nothing_and_another_body_is_a_conflict() {
    let clock = TestClock::at("2026-03-01T09:00:00Z");
    let app = TestApp::spawn_at(&clock).await;
    let body = json!({"amount_usd": "10.00", "kind": "promo", "priority": 3,
                      "expires_at": "2026-03-02T00:00:00Z", "grant_id": "welcome"});
    let path = grant_path(ALICE, "welcome");
    let first = app.put(&path, body.clone()).await;
    first.assert_ok("first");
    // The same body (`10` is `10.00`), even after its expiry has passed.
    clock.set("2026-03-05T00:00:00Z".parse().unwrap());
    let mut same = body.clone();
    same["amount_usd"] = json!("10");
    let again = app.put(&path, same).await;
    again.assert_ok("again");
    assert_eq!(again.body["data"]["created"], false);
    assert_eq!(
        again.body["data"]["grant"]["created_at"],
        first.body["data"]["grant"]["created_at"]
    );
    for (field, value) in [
        ("amount_usd", json!("10.01")),
        ("kind", json!("refund")),
        ("priority", json!(4)),
        ("expires_at", json!("2026-04-01T00:00:00Z")),
        ("note", json!("changed")),
    ] {
        let mut other = body.clone();
        other[field] = value;
        let r = app.put(&path, other).await;
        assert_eq!(
            (r.status.as_u16(), r.code()),
            (409, "conflict"),
            "{field}: {}",
            r.body
        );
    }
    let w = app.get(ALICE).await;
    assert_eq!(w.body["data"]["grants"].as_array().unwrap().len(), 1);
    assert_eq!(w.body["data"]["grants"][0]["amount_usd"], "10");
}

#[tokio::test]
async fn bad_grant_bodies_are_refused_with_stable_codes_and_store_nothing() {
    let clock = TestClock::at("2026-03-01T09:00:00Z");
    let app = TestApp::spawn_at(&clock).await;
    let ok = json!({"amount_usd": "1", "kind": "purchase"});
    let with = |field: &str, value: Value| {
        let mut b = ok.clone();
        b[field] = value;
        b
    };
    let cases = [
        (with("amount_usd", json!("0")), "amount_not_positive"),
        (with("amount_usd", json!("-5")), "amount_not_positive"),
        (with("amount_usd", json!(10.5)), "invalid_type"),
        (with("amount_usd", json!(10)), "invalid_type"),
        (with("amount_usd", json!("1.0000001")), "too_many_decimals"),
        (
            with("amount_usd", json!("0.12345678901234567")),
            "too_many_decimals",
        ),
        (with("amount_usd", json!("1e3")), "invalid_amount"),
        (with("amount_usd", json!(".5")), "invalid_amount"),
        (
            with("amount_usd", json!("10000000000000000")),
            "amount_too_large",
        ),
        (
            with("amount_usd", json!("1000000000000000.5")),
            "amount_too_large",
        ),
        (
            with("expires_at", json!("2026-03-01T08:59:59Z")),
            "expiry_in_the_past",
        ),
        (
            with("expires_at", json!("2026-03-01T09:00:00Z")),
            "expiry_in_the_past",
        ),
        (with("expires_at", json!("tomorrow")), "invalid_timestamp"),
        (with("kind", json!("gift")), "invalid_value"),
        (with("priority", json!(-1)), "priority_out_of_range"),
        (with("priority", json!(1001)), "priority_out_of_range"),
        (
            with("priority", json!(5_000_000_000i64)),
            "priority_out_of_range",
        ),
        (with("priority", json!(1.5)), "invalid_type"),
        (with("priority", json!(1e20)), "priority_out_of_range"),
        (with("priority", json!("1")), "invalid_type"),
        (with("note", json!("x".repeat(1025))), "too_long"),
        (with("note", Value::Null), "invalid_type"),
        (with("grant_id", json!("other")), "grant_id_mismatch"),
        (with("colour", json!("red")), "unknown_field"),
        (json!({"kind": "promo"}), "missing_field"),
        (json!({"amount_usd": "1"}), "missing_field"),
        (json!([1]), "invalid_type"),
    ];
    for (body, code) in cases {
        let r = app.put(&grant_path(ALICE, "g"), body.clone()).await;
        assert_eq!(
            (r.status.as_u16(), r.code()),
            (422, code),
            "{body}: {}",
            r.body
        );
        assert_eq!(r.body["success"], false);
    }
    let r = app.put(&grant_path(ALICE, "has%20space"), ok.clone()).await;
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (400, "invalid_id"),
        "{}",
        r.body
    );
    let r = app
        .put(&format!("{P}/wallet/user/bad%23id/grants/g"), ok.clone())
        .await;
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (400, "invalid_id"),
        "{}",
        r.body
    );
    // Nothing was stored by any of them.
    let w = app.get(ALICE).await;
    assert_eq!(w.body["data"]["grants"], json!([]));
    assert_eq!(w.body["data"]["balance_usd"], "0");
    // Unknown grants cannot be voided; unknown wallet kinds are not routes.
    let r = void(&app, ALICE, "never-granted").await;
    assert_eq!((r.status.as_u16(), r.code()), (404, "not_found"));
    let r = app.get(&format!("{P}/wallet/team/red")).await;
    assert_eq!((r.status.as_u16(), r.code()), (404, "route_not_found"));
}

#[tokio::test]
async fn writes_need_the_admin_key_and_reads_the_service_key() {
    let app = TestApp::spawn().await;
    let body = json!({"amount_usd": "1", "kind": "purchase"});
    let path = grant_path(ALICE, "g");
    let r = app.put_as(&app.service_key, &path, body.clone()).await;
    assert_eq!((r.status.as_u16(), r.code()), (403, "forbidden"));
    let r = app
        .post_as(&app.service_key, &format!("{path}/void"), json!({}))
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (403, "forbidden"));
    let r = app
        .put_as(&app.service_key, &format!("{ALICE}/settings"), json!({}))
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (403, "forbidden"));
    let r = app.get_as("mk_not_a_key", ALICE).await;
    assert_eq!((r.status.as_u16(), r.code()), (401, "unauthorized"));
    app.put(&path, body).await.assert_ok("admin put");
    app.get_as(&app.admin_key, ALICE)
        .await
        .assert_ok("admin read");
    app.get(ALICE).await.assert_ok("service read");
}

#[tokio::test]
async fn an_org_wallet_has_its_own_grants_and_low_balance_level() {
    let app = TestApp::spawn().await;
    let acme = format!("{P}/wallet/org/acme");
    app.put(
        &grant_path(&acme, "annual"),
        json!({"amount_usd": "1200.000001", "kind": "adjustment", "priority": 0}),
    )
    .await
    .assert_ok("org grant");
    let r = app
        .put(
            &format!("{acme}/settings"),
            json!({"low_balance_usd": "50.50"}),
        )
        .await;
    r.assert_ok("settings");
    assert_eq!(
        r.body["data"],
        json!({"subscriber": {"kind": "org", "id": "acme"}, "low_balance_usd": "50.5"})
    );
    let d = app.get(&acme).await.body["data"].clone();
    assert_eq!(d["balance_usd"], "1200.000001");
    assert_eq!(d["low_balance_usd"], "50.5");
    assert_eq!(ids(&d), ["annual"]);
    // The user `acme` is another wallet.
    let u = app.get(&format!("{P}/wallet/user/acme")).await.body["data"].clone();
    assert_eq!(u["grants"], json!([]));
    for (body, code) in [
        (json!({"low_balance_usd": "0"}), "amount_not_positive"),
        (json!({"low_balance_usd": 5}), "invalid_type"),
        (json!({"low_balance_usd": "1.1234567"}), "too_many_decimals"),
        (json!({"low_balance_usd": null}), "invalid_type"),
        (json!({"low": "1"}), "unknown_field"),
    ] {
        let r = app.put(&format!("{acme}/settings"), body.clone()).await;
        assert_eq!(
            (r.status.as_u16(), r.code()),
            (422, code),
            "{body}: {}",
            r.body
        );
    }
    assert_eq!(app.get(&acme).await.body["data"]["low_balance_usd"], "50.5");
    // An empty body clears the level.
    app.put(&format!("{acme}/settings"), json!({}))
        .await
        .assert_ok("clear");
    assert_eq!(
        app.get(&acme).await.body["data"]["low_balance_usd"],
        Value::Null
    );
}
