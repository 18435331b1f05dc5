//! The wallet routes' answers against openapi.yaml: the real bodies validate, and bodies
//! that differ from them do not (the schemas are exact, not merely permissive).

use chrono::{Duration, Utc};
use meter_core::credits::{GrantKind, GrantRequest, Subscriber};
use meter_core::domain::{GrantId, OrgId, UserId};
use meter_core::store::GrantInsert;
use meter_tests::TestApp;
use rust_decimal_macros::dec;
use serde_json::{json, Value};

use super::{assert_contract_rejects, remove};

/// The grants the wallet events name: alice's $10 purchase `purchase-1001` and acme's
/// `annual-2026`, with a low-balance level on alice's wallet.
pub async fn seed(app: &TestApp) {
    let now = Utc::now() - Duration::seconds(60);
    for (wallet, id, amount) in [
        (
            Subscriber::User(UserId::parse("alice").unwrap()),
            "purchase-1001",
            dec!(10.00),
        ),
        (
            Subscriber::Org(OrgId::parse("acme").unwrap()),
            "annual-2026",
            dec!(1200),
        ),
    ] {
        let mut req = GrantRequest::new(amount, GrantKind::Purchase);
        req.note = Some("order 1001".to_owned());
        let grant = req.into_grant(GrantId::parse(id).unwrap(), now).unwrap();
        let put = app
            .store
            .insert_grant(&app.tenant, &wallet, &grant)
            .await
            .unwrap();
        assert!(matches!(put, GrantInsert::Created(_)));
    }
    app.store
        .set_low_balance(
            &app.tenant,
            &Subscriber::User(UserId::parse("alice").unwrap()),
            Some(dec!(2)),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn the_contract_rejects_wallet_bodies_that_differ_from_the_real_ones() {
    assert_contract_rejects(
        "get-user-wallet.200.json",
        "GET /api/subscription/wallet/user/{user_id}",
        &[
            ("a float balance", |d| d["balance_usd"] = json!(10.0)),
            ("no held_usd", |d| remove(d, "held_usd")),
            ("another cap", |d| d["max_grants"] = json!(101)),
            ("a scope-style subscriber", |d| {
                d["subscriber"] = json!({"kind": "user", "user_id": "alice"})
            }),
            ("a team subscriber", |d| {
                d["subscriber"] = json!({"kind": "team", "id": "red"})
            }),
            ("a grant of an unknown kind", |d| {
                d["grants"][0]["kind"] = json!("gift")
            }),
            ("a grant with a float amount", |d| {
                d["grants"][0]["amount_usd"] = json!(10)
            }),
            ("a grant without its status", |d| {
                remove(&mut d["grants"][0], "status")
            }),
            ("an extra field", |d| d["tenant"] = json!("default")),
        ],
    )
    .await;
    assert_contract_rejects(
        "put-user-grant.200.json",
        "PUT /api/subscription/wallet/user/{user_id}/grants/{grant_id}",
        &[
            ("no created flag", |d| remove(d, "created")),
            ("the grant at the top", |d: &mut Value| {
                *d = d["grant"].clone()
            }),
            ("a priority out of range", |d| {
                d["grant"]["priority"] = json!(1001)
            }),
        ],
    )
    .await;
    assert_contract_rejects(
        "void-org-grant.200.json",
        "POST /api/subscription/wallet/org/{org_id}/grants/{grant_id}/void",
        &[
            ("no removed_usd", |d| remove(d, "removed_usd")),
            ("an unknown status", |d| {
                d["grant"]["status"] = json!("cancelled")
            }),
        ],
    )
    .await;
    assert_contract_rejects(
        "put-org-wallet-settings.200.json",
        "PUT /api/subscription/wallet/org/{org_id}/settings",
        &[
            ("a float level", |d| d["low_balance_usd"] = json!(2.0)),
            ("no subscriber", |d| remove(d, "subscriber")),
        ],
    )
    .await;
}
