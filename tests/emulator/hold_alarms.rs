//! Wallet alarms after a check's hold on DynamoDB (issue 19): the story of
//! `meter_tests::hold_alarms` (the same story runs on SQLite in `tests/api`), and a hold
//! that crosses nothing still costs its check no request more.

use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn holds_raise_wallet_alarms_once_per_crossing() {
    let (store, _, _) = super::counted_store().await;
    meter_tests::hold_alarms::holds_raise_wallet_alarms_once_per_crossing(Some(Arc::new(store)))
        .await;
}
