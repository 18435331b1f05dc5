//! Issue 18: a re-priced org event is billed to the org once, on SQLite: the story of
//! `meter_tests::org_repricing` (the same story runs on DynamoDB in `tests/emulator`).

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_repriced_org_event_is_billed_to_the_org_once() {
    meter_tests::org_repricing::a_repriced_org_event_is_billed_to_the_org_once(None).await;
}
