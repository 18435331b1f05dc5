use serde_json::json;

use meter_tests::TestApp;

fn ts() -> String {
    chrono::Utc::now().to_rfc3339()
}

#[tokio::test]
async fn check_then_usage_then_check_reflects_the_usage() {
    let app = TestApp::spawn().await;
    let first = app
        .check(json!({"user_id": "alice", "provider": "gemini", "model": "gemini-2.5-flash", "estimated_input_tokens": 1000, "estimated_output_tokens": 500}))
        .await;
    assert_eq!(first.status, 200, "{:?}", first.body);
    assert_eq!(first.body["success"], true);
    let data = &first.body["data"];
    assert_eq!(data["allowed"], true);
    assert_eq!(data["usage_status"], "active");
    assert_eq!(data["remaining"]["calls:gemini"], 100);
    // 1000 * 0.30/1M + 500 * 2.50/1M = 0.0003 + 0.00125
    assert_eq!(data["estimated_cost_usd"], "0.00155");

    let usage = app
        .usage(json!({"events": [{"event_id": "e-1", "user_id": "alice", "provider": "gemini", "model": "gemini-2.5-flash", "input_tokens": 1000, "output_tokens": 500, "timestamp": ts()}]}))
        .await;
    assert_eq!(usage.status, 200, "{:?}", usage.body);
    let ev = &usage.body["data"]["events"][0];
    assert_eq!(ev["status"], "recorded");
    assert_eq!(ev["cost_usd"], "0.00155");
    assert_eq!(ev["priced"], true);
    assert_eq!(ev["estimated"], false);

    let second = app
        .check(json!({"user_id": "alice", "provider": "gemini", "model": "gemini-2.5-flash"}))
        .await;
    assert_eq!(second.body["data"]["remaining"]["calls:gemini"], 99);
    assert_eq!(
        second.body["data"]["remaining"]["tokens:gemini"],
        100_000 - 1500
    );
    assert_eq!(
        second.body["data"]["usage_percentages"]["calls:gemini"],
        1.0
    );
}

#[tokio::test]
async fn a_provider_the_plan_forbids_is_denied_with_details_and_retry_after() {
    let app = TestApp::spawn().await;
    let r = app.check(json!({"user_id": "bob", "provider": "openai", "model": "gpt-4o", "estimated_input_tokens": 10})).await;
    assert_eq!(r.status, 429, "{:?}", r.body);
    assert_eq!(r.code(), "usage_limit_exceeded");
    let d = &r.body["error"]["details"];
    assert_eq!(d["metric"], "calls:openai");
    assert_eq!(d["used"], 0);
    assert_eq!(d["limit"], 0);
    assert_eq!(d["requested"], 1);
    assert_eq!(d["upgrade_to"], "basic");
    assert!(d["period_resets_at"].is_string());
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=31 * 24 * 3600).contains(&retry));
}

#[tokio::test]
async fn reservations_hold_until_released_and_release_is_idempotent() {
    let app = TestApp::spawn().await;
    let r = app.check(json!({"user_id": "carol", "provider": "gemini", "model": "gemini-2.5-flash", "estimated_input_tokens": 2000, "reserve": true, "reservation_ttl_seconds": 60})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let id = r.body["data"]["reservation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(r.body["data"]["expires_at"].is_string());
    assert_eq!(
        r.body["data"]["remaining"]["calls:gemini"], 99,
        "the hold counts at once"
    );

    let path = format!("/api/subscription/reservations/{id}/release");
    let rel = app.post(&path, json!({})).await;
    assert_eq!(
        (rel.status.as_u16(), rel.body["data"]["status"].as_str()),
        (200, Some("released"))
    );
    let again = app.post(&path, json!({})).await;
    assert_eq!(
        (again.status.as_u16(), again.body["data"]["status"].as_str()),
        (200, Some("released"))
    );
    let after = app
        .check(json!({"user_id": "carol", "provider": "gemini"}))
        .await;
    assert_eq!(after.body["data"]["remaining"]["calls:gemini"], 100);
}

#[tokio::test]
async fn settling_a_reservation_through_usage_replaces_the_hold_with_the_actual() {
    let app = TestApp::spawn().await;
    let r = app.check(json!({"user_id": "dan", "provider": "gemini", "model": "gemini-2.5-flash", "estimated_input_tokens": 5000, "reserve": true})).await;
    let id = r.body["data"]["reservation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let u = app.usage(json!({"event_id": "dan-1", "user_id": "dan", "provider": "gemini", "model": "gemini-2.5-flash", "input_tokens": 700, "reservation_id": id})).await;
    assert_eq!(u.status, 200, "{:?}", u.body);
    let after = app
        .check(json!({"user_id": "dan", "provider": "gemini"}))
        .await;
    assert_eq!(after.body["data"]["remaining"]["calls:gemini"], 99);
    assert_eq!(
        after.body["data"]["remaining"]["tokens:gemini"],
        100_000 - 700
    );
    let rel = app
        .post(
            &format!("/api/subscription/reservations/{id}/release"),
            json!({}),
        )
        .await;
    assert_eq!(rel.body["data"]["status"], "settled");
}

#[tokio::test]
async fn duplicates_and_conflicts_never_change_counters() {
    let app = TestApp::spawn().await;
    let ev = json!({"event_id": "x-1", "user_id": "erin", "provider": "tavily", "searches": 1});
    assert_eq!(
        app.usage(ev.clone()).await.body["data"]["events"][0]["status"],
        "recorded"
    );
    let before = app.snapshot("erin").await;
    let dup = app.usage(ev.clone()).await;
    assert_eq!(dup.body["data"]["events"][0]["status"], "duplicate");
    assert_eq!(dup.body["data"]["events"][0]["cost_usd"], "0.008");
    let conflict = app
        .usage(json!({"event_id": "x-1", "user_id": "erin", "provider": "tavily", "searches": 3}))
        .await;
    assert_eq!(conflict.body["data"]["events"][0]["status"], "conflict");
    assert_eq!(app.snapshot("erin").await, before);
}

#[tokio::test]
async fn unknown_models_are_recorded_unpriced_never_at_zero() {
    let app = TestApp::spawn().await;
    let u = app.usage(json!({"event_id": "n-1", "user_id": "fay", "provider": "gemini", "model": "gemini-9-ultra", "input_tokens": 10})).await;
    let ev = &u.body["data"]["events"][0];
    assert_eq!(ev["status"], "recorded");
    assert_eq!(ev["priced"], false);
    assert_eq!(ev["cost_usd"], serde_json::Value::Null);
    let alerts = app
        .store
        .list_alerts(
            &app.tenant,
            &meter_core::domain::UserId::parse("fay").unwrap(),
            false,
            10,
        )
        .await
        .unwrap();
    assert_eq!(alerts.0.iter().filter(|a| a.key == "unpriced").count(), 1);
}

#[tokio::test]
async fn provider_is_detected_from_a_model_with_one_catalog_entry() {
    let app = TestApp::spawn().await;
    let u = app.usage(json!({"event_id": "m-1", "user_id": "gus", "model": "gpt-4o-mini", "input_tokens": 1000000})).await;
    assert_eq!(u.status, 200, "{:?}", u.body);
    assert_eq!(u.body["data"]["events"][0]["provider"], "openai");
    assert_eq!(u.body["data"]["events"][0]["cost_usd"], "0.15");
}

#[tokio::test]
async fn estimates_from_characters_are_marked_estimated() {
    let app = TestApp::spawn().await;
    let u = app.usage(json!({"event_id": "c-1", "user_id": "hal", "provider": "gemini", "model": "gemini-2.5-flash", "input_chars": 4001, "output_chars": 8})).await;
    let ev = &u.body["data"]["events"][0];
    assert_eq!(ev["estimated"], true);
    // ceil(4001/4) = 1001 input tokens, 2 output tokens.
    assert_eq!(ev["cost_usd"], "0.0003053");
}

#[tokio::test]
async fn free_user_gets_one_alert_per_threshold() {
    let app = TestApp::spawn().await;
    let events: Vec<_> = (0..100).map(|i| json!({"event_id": format!("a-{i}"), "user_id": "ivy", "provider": "gemini", "model": "gemini-2.5-flash", "input_tokens": 1})).collect();
    let r = app.usage(json!({ "events": events })).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let (alerts, unread) = app
        .store
        .list_alerts(
            &app.tenant,
            &meter_core::domain::UserId::parse("ivy").unwrap(),
            false,
            100,
        )
        .await
        .unwrap();
    let mut keys: Vec<_> = alerts.iter().map(|a| a.key.clone()).collect();
    keys.sort();
    assert_eq!(
        keys,
        vec!["calls:gemini@100", "calls:gemini@80", "calls:gemini@90"]
    );
    assert_eq!(unread, 3);
    assert!(alerts.iter().all(|a| a.published));
    let denied = app
        .check(json!({"user_id": "ivy", "provider": "gemini"}))
        .await;
    assert_eq!(denied.status, 429);
}

#[tokio::test]
async fn a_reservation_never_settled_is_released_by_the_aggregation_after_its_ttl() {
    let app = TestApp::spawn().await;
    let r = app.check(json!({"user_id": "jo", "provider": "gemini", "reserve": true, "reservation_ttl_seconds": 1})).await;
    assert_eq!(r.body["data"]["remaining"]["calls:gemini"], 99);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let report = app.meter.aggregate(&Default::default()).await.unwrap();
    assert_eq!(report.expired_reservations, 1);
    let after = app
        .check(json!({"user_id": "jo", "provider": "gemini"}))
        .await;
    assert_eq!(after.body["data"]["remaining"]["calls:gemini"], 100);
}

/// An alert port that refuses the first `failures` messages, then accepts and keeps them.
struct FlakyPublisher {
    failures: std::sync::atomic::AtomicUsize,
    delivered: std::sync::Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl meter_core::alerts::AlertPublisher for FlakyPublisher {
    async fn publish(
        &self,
        m: &meter_core::alerts::OutboxMessage,
    ) -> Result<(), meter_core::alerts::PublishError> {
        use std::sync::atomic::Ordering;
        if self.failures.load(Ordering::SeqCst) > 0 {
            self.failures.fetch_sub(1, Ordering::SeqCst);
            return Err(meter_core::alerts::PublishError("outage".into()));
        }
        self.delivered.lock().unwrap().push(m.id.clone());
        Ok(())
    }
}

#[tokio::test]
async fn an_alert_whose_publish_failed_stays_pending_and_is_delivered_once_by_the_aggregation() {
    let flaky = std::sync::Arc::new(FlakyPublisher {
        failures: 3.into(),
        delivered: Default::default(),
    });
    let app = TestApp::setup().publisher(flaky.clone()).spawn().await;
    let events: Vec<_> = (0..80).map(|i| json!({"event_id": format!("f-{i}"), "user_id": "kim", "provider": "gemini", "model": "gemini-2.5-flash", "input_tokens": 1})).collect();
    assert_eq!(app.usage(json!({ "events": events })).await.status, 200);

    let user = meter_core::domain::UserId::parse("kim").unwrap();
    let pending = app.store.unpublished_alerts(100).await.unwrap();
    assert_eq!(
        pending.iter().filter(|a| a.user == user).count(),
        1,
        "the 80 % alert waits in the outbox"
    );
    assert!(flaky.delivered.lock().unwrap().is_empty());

    // Two more failures, then the port recovers: delivered exactly once.
    for _ in 0..4 {
        app.meter.aggregate(&Default::default()).await.unwrap();
    }
    assert_eq!(flaky.delivered.lock().unwrap().len(), 1);
    assert!(app
        .store
        .unpublished_alerts(100)
        .await
        .unwrap()
        .iter()
        .all(|a| a.user != user));
}
