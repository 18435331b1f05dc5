//! A budget threshold crossed by a re-priced cost is alerted once, on SQLite (issue 18):
//! the story of `meter_tests::repriced_budget_alerts` (the same story runs on DynamoDB in
//! `tests/emulator`).

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_budget_threshold_crossed_by_a_repriced_cost_is_alerted_once() {
    meter_tests::repriced_budget_alerts::a_budget_threshold_crossed_by_a_repriced_cost_is_alerted_once(None)
        .await;
}
