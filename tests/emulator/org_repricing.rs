//! Issue 18: a re-priced org event is billed to the org once, on DynamoDB: the story of
//! `meter_tests::org_repricing` (the same story runs on SQLite in `tests/api`).

use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_repriced_org_event_is_billed_to_the_org_once() {
    let (store, _, _) = super::counted_store().await;
    meter_tests::org_repricing::a_repriced_org_event_is_billed_to_the_org_once(Some(Arc::new(
        store,
    )))
    .await;
}
