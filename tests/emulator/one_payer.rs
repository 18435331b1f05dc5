//! Issue 18: every call is billed once, by its payer, on DynamoDB: the story of
//! `meter_tests::one_payer` (the same story runs on SQLite in `tests/api`).

use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_call_is_billed_once_by_its_payer() {
    let (store, _, _) = super::counted_store().await;
    meter_tests::one_payer::every_call_is_billed_once_by_its_payer(Some(Arc::new(store))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn calls_racing_the_closes_are_billed_once_by_their_payer() {
    let (store, _, _) = super::counted_store().await;
    meter_tests::one_payer::calls_racing_the_closes_are_billed_once_by_their_payer(Some(Arc::new(
        store,
    )))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_call_repriced_after_its_org_cancelled_is_billed_to_its_user() {
    let (store, _, _) = super::counted_store().await;
    meter_tests::one_payer::a_call_repriced_after_its_org_cancelled_is_billed_to_its_user(Some(
        Arc::new(store),
    ))
    .await;
}
