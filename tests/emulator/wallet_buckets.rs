//! SPEC §12 on a wallet's head (issue 19): the head keeps one credit bucket per expiry
//! instant of the wallet's grants. A promo that expires and is pruned a week later takes
//! its bucket with it (it holds 0 then), so a wallet that gets a promo a month for years
//! keeps a head of its live grants' buckets only; the others' buckets stay.

use std::collections::BTreeSet;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Duration, Utc};
use meter_core::service::aggregate::AggregateReport;
use meter_core::store::dynamo::layout;
use meter_core::testing::TestClock;
use meter_tests::TestApp;
use serde_json::json;

use std::sync::Arc;

use meter_core::store::dynamo::DynamoStore;

const ALICE: &str = "/api/subscription/wallet/user/alice";

async fn pass(app: &TestApp, at: DateTime<Utc>) -> AggregateReport {
    app.aggregate_at(at).await
}

/// The credit bucket attributes of the wallet heads in `table`.
async fn head_buckets(client: &aws_sdk_dynamodb::Client, table: &str) -> BTreeSet<String> {
    super::scan_items(client, table)
        .await
        .iter()
        .filter(|item| item.get(layout::SK) == Some(&AttributeValue::S("WALLET".into())))
        .flat_map(|item| item.keys().filter(|k| k.starts_with("credit#")).cloned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pruned_grant_takes_its_empty_credit_bucket_off_the_head() {
    let clock = TestClock::at("2026-03-01T09:00:00Z");
    let (client, table) = super::fresh_table().await;
    let store = Arc::new(DynamoStore::new(client.clone(), table.clone()));
    let app = TestApp::setup().store(store).clock(&clock).spawn().await;
    for (id, body) in [
        (
            "spring-promo",
            json!({"amount_usd": "5", "kind": "promo", "expires_at": "2026-03-31T00:00:00Z"}),
        ),
        (
            "summer-promo",
            json!({"amount_usd": "3", "kind": "promo", "expires_at": "2026-06-30T00:00:00Z"}),
        ),
        (
            "purchase-1",
            json!({"amount_usd": "10", "kind": "purchase"}),
        ),
    ] {
        app.put(&format!("{ALICE}/grants/{id}"), body)
            .await
            .assert_ok(id);
    }
    let spring = "credit#2026-03-31T00:00:00Z";
    let buckets = head_buckets(&client, &table).await;
    assert!(buckets.contains(spring), "{buckets:?}");
    assert_eq!(buckets.len(), 3, "{buckets:?}");

    let expiry: DateTime<Utc> = "2026-03-31T00:00:00Z".parse().unwrap();
    clock.set(expiry + Duration::minutes(5));
    assert_eq!(pass(&app, clock.now()).await.grants_expired, 1);
    assert!(
        head_buckets(&client, &table).await.contains(spring),
        "recorded, not pruned yet"
    );
    clock.set(expiry + Duration::days(7));
    assert_eq!(pass(&app, clock.now()).await.grants_pruned, 1);

    let buckets = head_buckets(&client, &table).await;
    assert!(!buckets.contains(spring), "{buckets:?}");
    assert_eq!(
        buckets.len(),
        2,
        "the summer promo's and the purchase's: {buckets:?}"
    );
    let w = app.get(ALICE).await;
    assert_eq!(w.body["data"]["balance_usd"], "13", "{}", w.body);
}
