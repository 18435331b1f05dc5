//! The web dashboard's store calls under faults: a lost answer while a tenant's first
//! token key is created leaves one key that the next mint uses; an outage while a token's
//! mark-read looks up the alert is a 503, never a 401/403 or a panic.

use axum::body::Body;
use axum::http::Request;
use meter_core::testing::instant as at;
use serde_json::json;

use crate::faulty::{Fault, Timing};
use crate::helpers::{event, spawn_app};

#[tokio::test]
async fn a_lost_answer_while_creating_the_first_token_key_leaves_one_key_the_next_mint_uses() {
    let app = spawn_app("2025-03-10T12:00:00Z").await;
    app.faulty
        .faults
        .inject(Fault::nth(1, Timing::After).on(&["create_token_keys"]));

    app.post("/api/subscription/tokens", json!({"user_id": "amy"}))
        .await
        .assert_unavailable("the first mint, whose key was written but not acknowledged");
    let stored = app
        .store
        .get_token_keys(&app.tenant)
        .await
        .unwrap()
        .expect("the key was written");

    let again = app
        .post("/api/subscription/tokens", json!({"user_id": "amy"}))
        .await;
    again.assert_ok("the retry");
    let token = again.body["data"]["token"].as_str().unwrap();
    let claims = meter_core::tokens::verify(token, &stored, at("2025-03-10T12:00:01Z"))
        .expect("signed with the key that was stored");
    assert_eq!(
        claims.subject,
        meter_core::tokens::Subject::User(meter_core::domain::UserId::parse("amy").unwrap())
    );
    assert_eq!(
        app.store.get_token_keys(&app.tenant).await.unwrap(),
        Some(stored),
        "no second key"
    );
}

#[tokio::test]
async fn a_store_outage_during_a_tokens_mark_read_is_a_503_and_changes_nothing() {
    let app = spawn_app("2025-03-10T12:00:00Z").await;
    let events: Vec<_> = (0..80)
        .map(|i| event(&format!("e-{i}"), "amy", 5, "2025-03-10T11:00:00Z"))
        .collect();
    app.ingest(&events).await.assert_ok("ingest");
    let token = app
        .post("/api/subscription/tokens", json!({"user_id": "amy"}))
        .await
        .body["data"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let amy = meter_core::domain::UserId::parse("amy").unwrap();
    let (alerts, unread) = app
        .store
        .list_alerts(&app.tenant, &amy, false, 10)
        .await
        .unwrap();
    assert_eq!(unread, 1, "the 80 % alert");

    app.faulty
        .faults
        .inject(Fault::every(Timing::Before).on(&["get_alert"]));
    let req = Request::post(format!(
        "/api/subscription/alerts/{}/mark-read",
        alerts[0].id
    ))
    .header("authorization", format!("Bearer {token}"))
    .body(Body::empty())
    .unwrap();
    app.send(req)
        .await
        .assert_unavailable("mark-read during the outage");
    assert_eq!(
        app.store
            .list_alerts(&app.tenant, &amy, true, 10)
            .await
            .unwrap()
            .1,
        1
    );

    app.faulty.faults.heal();
    let req = Request::post(format!(
        "/api/subscription/alerts/{}/mark-read",
        alerts[0].id
    ))
    .header("authorization", format!("Bearer {token}"))
    .body(Body::empty())
    .unwrap();
    app.send(req).await.assert_ok("mark-read after the outage");
    assert_eq!(
        app.store
            .list_alerts(&app.tenant, &amy, true, 10)
            .await
            .unwrap()
            .1,
        0
    );
}
