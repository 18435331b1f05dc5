//! `alert.resolved` after a top-up, on SQLite (issue 18): the story of
//! `meter_tests::credit_resolved` (the same story runs on DynamoDB in `tests/emulator`).

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_top_up_resolves_a_wallet_that_denied_at_zero_once() {
    meter_tests::credit_resolved::a_top_up_resolves_a_wallet_that_denied_at_zero_once(None).await;
}
