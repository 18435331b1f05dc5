//! Grant upkeep through the service (issue 19): the aggregation records an expired
//! grant's expiry once (GET wallet shows `expired_usd`, `remaining_usd` 0), prunes it a
//! week later (it leaves the wallet; a replay of its PUT still answers it), and a PUT
//! into a full wallet prunes its finished grants at once.

use chrono::{DateTime, Duration, Utc};
use meter_core::service::aggregate::AggregateReport;
use meter_core::testing::TestClock;
use meter_tests::TestApp;
use serde_json::{json, Value};

const ALICE: &str = "/api/subscription/wallet/user/alice";

async fn pass(app: &TestApp, at: DateTime<Utc>) -> AggregateReport {
    app.aggregate_at(at).await
}

fn grant<'a>(wallet: &'a Value, id: &str) -> Option<&'a Value> {
    wallet["grants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["grant_id"] == id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aggregation_records_an_expiry_once_then_prunes_the_grant() {
    let clock = TestClock::at("2026-03-01T09:00:00Z");
    let app = TestApp::spawn_at(&clock).await;
    let promo = json!({"amount_usd": "5", "kind": "promo", "expires_at": "2026-03-31T00:00:00Z"});
    app.put(&format!("{ALICE}/grants/spring-promo"), promo.clone())
        .await
        .assert_ok("promo");
    app.put(
        &format!("{ALICE}/grants/purchase-1"),
        json!({"amount_usd": "10", "kind": "purchase"}),
    )
    .await
    .assert_ok("purchase");
    // $15 available, above a $12 level; the promo's expiry takes it to $10, below.
    app.put(
        &format!("{ALICE}/settings"),
        json!({"low_balance_usd": "12"}),
    )
    .await
    .assert_ok("level");
    let low_alarms = || async {
        app.get("/api/subscription/alerts/alice?limit=50")
            .await
            .body["data"]["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| {
                a["key"]
                    .as_str()
                    .is_some_and(|k| k.starts_with("wallet.low_balance#"))
            })
            .count()
    };
    assert_eq!(low_alarms().await, 0);

    // Before the expiry: nothing to record.
    let r = pass(&app, clock.now()).await;
    assert_eq!((r.grants_expired, r.grants_pruned), (0, 0));

    let expiry: DateTime<Utc> = "2026-03-31T00:00:00Z".parse().unwrap();
    clock.set(expiry + Duration::minutes(5));
    // Two racing passes record it once.
    let (a, b) = tokio::join!(pass(&app, clock.now()), pass(&app, clock.now()));
    assert_eq!(a.grants_expired + b.grants_expired, 1);
    assert_eq!(pass(&app, clock.now()).await.grants_expired, 0);
    // The pass that recorded it raised the alarm the expiry caused, once.
    assert_eq!(low_alarms().await, 1);
    let w = app.get(ALICE).await.body["data"].clone();
    let g = grant(&w, "spring-promo").unwrap();
    assert_eq!(
        (&g["status"], &g["remaining_usd"], &g["expired_usd"]),
        (&json!("expired"), &json!("0"), &json!("5"))
    );
    assert_eq!(w["balance_usd"], "10");
    assert_eq!(grant(&w, "purchase-1").unwrap()["expired_usd"], Value::Null);

    // A week after it finished, the grant is pruned: gone from the wallet, its id kept.
    clock.set(expiry + Duration::days(7));
    let r = pass(&app, clock.now()).await;
    assert_eq!((r.grants_expired, r.grants_pruned), (0, 1));
    let w = app.get(ALICE).await.body["data"].clone();
    assert!(grant(&w, "spring-promo").is_none(), "{w}");
    assert_eq!(w["balance_usd"], "10");
    let replay = app
        .put(&format!("{ALICE}/grants/spring-promo"), promo)
        .await;
    replay.assert_ok("replay of a pruned grant");
    assert_eq!(replay.body["data"]["created"], false);
    assert_eq!(replay.body["data"]["grant"]["expired_usd"], "5");
}

#[tokio::test]
async fn a_put_into_a_full_wallet_prunes_its_finished_grants() {
    let clock = TestClock::at("2026-03-01T09:00:00Z");
    let app = TestApp::spawn_at(&clock).await;
    for i in 0..100 {
        app.put(
            &format!("{ALICE}/grants/g{i:03}"),
            json!({"amount_usd": "1", "kind": "purchase"}),
        )
        .await
        .assert_ok("grant");
    }
    let full = app
        .put(
            &format!("{ALICE}/grants/one-more"),
            json!({"amount_usd": "1", "kind": "purchase"}),
        )
        .await;
    assert_eq!(full.status, 422, "{}", full.body);
    assert_eq!(full.body["error"]["code"], "too_many_grants");
    // A void finishes a grant: the next PUT prunes it and takes its slot.
    app.post_as(
        &app.admin_key,
        &format!("{ALICE}/grants/g007/void"),
        json!({}),
    )
    .await
    .assert_ok("void");
    let r = app
        .put(
            &format!("{ALICE}/grants/one-more"),
            json!({"amount_usd": "1", "kind": "purchase"}),
        )
        .await;
    r.assert_ok("put after the void");
    assert_eq!(r.body["data"]["created"], true);
    let w = app.get(ALICE).await.body["data"].clone();
    assert_eq!(w["grants"].as_array().unwrap().len(), 100);
    assert!(grant(&w, "g007").is_none());
    assert_eq!(w["balance_usd"], "100");
}
