//! Wallet alarms after a check's hold on SQLite (issue 19): the story of
//! `meter_tests::hold_alarms` (the same story runs on DynamoDB in `tests/emulator`).

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn holds_raise_wallet_alarms_once_per_crossing() {
    meter_tests::hold_alarms::holds_raise_wallet_alarms_once_per_crossing(None).await;
}
