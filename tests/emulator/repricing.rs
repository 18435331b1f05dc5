//! Unpriced events draw once re-priced on DynamoDB (issue 19): the story of
//! `meter_tests::repricing` (the same story runs on SQLite in `tests/api`).

use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unpriced_prepaid_events_draw_once_repriced() {
    let (store, _, _) = super::counted_store().await;
    meter_tests::repricing::unpriced_prepaid_events_draw_once_repriced(Some(Arc::new(store))).await;
}
