//! Unpriced events draw once re-priced on SQLite (issue 19): the story of
//! `meter_tests::repricing` (the same story runs on DynamoDB in `tests/emulator`).

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unpriced_prepaid_events_draw_once_repriced() {
    meter_tests::repricing::unpriced_prepaid_events_draw_once_repriced(None).await;
}
