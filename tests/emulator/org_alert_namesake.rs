//! An org's alerts stay out of the list of a user of the same id, on DynamoDB (issue 18):
//! the story of `meter_tests::org_alert_namesake` (the same story runs on SQLite in
//! `tests/api`).

use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_orgs_alerts_stay_out_of_its_namesake_users_list() {
    let (store, _, _) = super::counted_store().await;
    meter_tests::org_alert_namesake::an_orgs_alerts_stay_out_of_its_namesake_users_list(Some(
        Arc::new(store),
    ))
    .await;
}
