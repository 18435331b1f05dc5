//! A budget threshold crossed by a re-priced cost is alerted once, on DynamoDB (issue
//! 18): the story of `meter_tests::repriced_budget_alerts` (the same story runs on SQLite
//! in `tests/api`).

use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_budget_threshold_crossed_by_a_repriced_cost_is_alerted_once() {
    let (store, _, _) = super::counted_store().await;
    meter_tests::repriced_budget_alerts::a_budget_threshold_crossed_by_a_repriced_cost_is_alerted_once(
        Some(Arc::new(store)),
    )
    .await;
}
