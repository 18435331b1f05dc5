//! Issue 18 (SPEC §10): `alert.resolved` after a top-up. A prepaid check denied because
//! the wallet has nothing available is remembered once; the aggregation pass after a
//! grant publishes one `alert.resolved` to the wallet's owner, once, and a denial of a
//! call merely larger than what is left is not remembered. An org's wallet resolves to
//! the org when its plan stops asking for credit. One story through the router and the
//! aggregation, run on SQLite (`tests/api`) and on DynamoDB (`tests/emulator`).

use std::sync::Arc;

use chrono::Duration;
use serde_json::{json, Value};

use meter_core::store::Store;
use meter_core::testing::TestClock;

use crate::TestApp;

const P: &str = "/api/subscription";

/// A check of gemini-2.5-flash estimated at `mtok` million input tokens ($0.30 each).
fn check(user: &str, mtok: u64, org: Option<&str>) -> Value {
    let mut c = json!({"user_id": user, "provider": "gemini", "model": "gemini-2.5-flash",
                       "estimated_input_tokens": mtok * 1_000_000});
    if let Some(org) = org {
        c["org_id"] = json!(org);
    }
    c
}

/// The keys of the `alert.resolved` alerts listed at `path`.
async fn resolved(app: &TestApp, path: &str) -> Vec<String> {
    let r = app.get(&format!("{P}{path}")).await;
    r.assert_ok("alerts");
    r.body["data"]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["key"].as_str())
        .filter(|k| k.starts_with("resolved/"))
        .map(str::to_owned)
        .collect()
}

async fn pass(app: &TestApp, clock: &TestClock) -> usize {
    clock.set(clock.now() + Duration::minutes(1));
    app.aggregate_at(clock.now()).await.alerts_resolved
}

/// The story, on `store` (`None`: a fresh SQLite store).
pub async fn a_top_up_resolves_a_wallet_that_denied_at_zero_once(store: Option<Arc<dyn Store>>) {
    let clock = TestClock::at("2026-03-10T09:00:00Z");
    let mut setup = TestApp::setup().clock(&clock);
    if let Some(store) = store {
        setup = setup.store(store);
    }
    let app = setup.spawn().await;
    let plan = |payment: &str| {
        json!({"tier": "custom", "monthly_price_usd": "0", "yearly_price_usd": "0",
               "limits": {"calls:gemini": 100}, "payment": payment})
    };
    app.put(&format!("{P}/plans/payg"), plan("prepaid"))
        .await
        .assert_ok("prepaid plan");
    app.put(&format!("{P}/plans/later"), plan("postpaid"))
        .await
        .assert_ok("postpaid plan");
    app.put(
        &format!("{P}/user/pam/subscription"),
        json!({"plan": "payg"}),
    )
    .await
    .assert_ok("pam");

    // An empty wallet denies, twice: remembered once, and still denying at the next pass.
    for _ in 0..2 {
        let denied = app.check(check("pam", 1, None)).await;
        assert_eq!(denied.status, 429, "{}", denied.body);
        assert_eq!(denied.body["error"]["details"]["metric"], "credits_usd");
    }
    assert_eq!(pass(&app, &clock).await, 0, "the wallet is still empty");

    // A $1 grant: the next pass resolves the denial, once, for pam.
    app.put(
        &format!("{P}/wallet/user/pam/grants/top-up-1"),
        json!({"amount_usd": "1", "kind": "purchase"}),
    )
    .await
    .assert_ok("top-up");
    let (a, b) = tokio::join!(pass(&app, &clock), pass(&app, &clock));
    assert_eq!(a + b, 1, "racing passes resolve it once");
    assert_eq!(pass(&app, &clock).await, 0);
    let keys = resolved(&app, "/alerts/pam").await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(
        keys[0].starts_with("resolved/credits/user/pam@"),
        "{keys:?}"
    );
    app.check(check("pam", 1, None))
        .await
        .assert_ok("allowed again");

    // A call larger than what is left ($30 of $0.70): denied, not at 0, not remembered.
    let denied = app.check(check("pam", 100, None)).await;
    assert_eq!(denied.status, 429, "{}", denied.body);
    assert_eq!(denied.body["error"]["details"]["available_usd"], "1");
    app.put(
        &format!("{P}/wallet/user/pam/grants/top-up-2"),
        json!({"amount_usd": "50", "kind": "purchase"}),
    )
    .await
    .assert_ok("second top-up");
    assert_eq!(pass(&app, &clock).await, 0, "nothing was remembered");

    // An org on the prepaid plan with an empty wallet denies its member without a plan
    // of their own; the org moving to a postpaid plan resolves it for the org.
    app.put(
        &format!("{P}/org/acme/subscription"),
        json!({"plan": "payg"}),
    )
    .await
    .assert_ok("acme");
    let denied = app.check(check("ola", 1, Some("acme"))).await;
    assert_eq!(denied.status, 429, "{}", denied.body);
    assert_eq!(
        denied.body["error"]["details"]["scope"],
        json!({"kind": "org", "org_id": "acme"})
    );
    assert_eq!(pass(&app, &clock).await, 0);
    app.put(
        &format!("{P}/org/acme/subscription"),
        json!({"plan": "later"}),
    )
    .await
    .assert_ok("acme postpaid");
    assert_eq!(pass(&app, &clock).await, 1);
    let keys = resolved(&app, "/org/acme/alerts").await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(
        keys[0].starts_with("resolved/credits/org/acme@"),
        "{keys:?}"
    );
    assert!(
        resolved(&app, "/alerts/ola").await.is_empty(),
        "the org's, not ola's"
    );
}
