//! An org's alerts stay out of the list of a user of the same id, on SQLite (issue 18):
//! the story of `meter_tests::org_alert_namesake` (the same story runs on DynamoDB in
//! `tests/emulator`).

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_orgs_alerts_stay_out_of_its_namesake_users_list() {
    meter_tests::org_alert_namesake::an_orgs_alerts_stay_out_of_its_namesake_users_list(None).await;
}
