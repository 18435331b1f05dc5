//! `alert.resolved` after a top-up, on DynamoDB (issue 18): the story of
//! `meter_tests::credit_resolved` (the same story runs on SQLite in `tests/api`).

use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_top_up_resolves_a_wallet_that_denied_at_zero_once() {
    let (store, _, _) = super::counted_store().await;
    meter_tests::credit_resolved::a_top_up_resolves_a_wallet_that_denied_at_zero_once(Some(
        Arc::new(store),
    ))
    .await;
}
