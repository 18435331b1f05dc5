//! Prepaid credits on DynamoDB (issue 19): an erasure gives back the credit held by the
//! user's open reservations (inline and spilled) once; the story is shared with the
//! router tests (tests/api/erasure_credit.rs, which also runs it on SQLite here).

use meter_core::testing::TestClock;

use super::setup_at;

#[path = "../api/erasure_credit.rs"]
mod erasure_story;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_erasure_releases_held_credit_once_on_dynamodb() {
    let clock = TestClock::at("2026-03-10T09:00:00Z");
    let (app, _) = setup_at(&clock).await;
    erasure_story::erasure_releases_held_credit_once(&app).await;
}
