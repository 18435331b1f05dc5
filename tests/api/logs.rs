//! Logs never carry an API key (nor a prompt).

use std::io::Write;
use std::sync::{Arc, Mutex};

use meter_tests::TestApp;
use serde_json::json;
use tracing_subscriber::fmt::MakeWriter;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_full_request_cycle_logs_no_api_key() {
    let app = TestApp::spawn().await;
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(capture.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let bad_key = "mk_wrong_key_that_must_not_be_logged_0000000";
    let r = app.check(json!({"user_id": "lee", "provider": "gemini", "model": "gemini-2.5-flash", "reserve": true})).await;
    assert_eq!(r.status, 200);
    let id = r.body["data"]["reservation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let events: Vec<_> = (0..100).map(|i| json!({"event_id": format!("l-{i}"), "user_id": "lee", "provider": "gemini", "model": "gemini-2.5-flash", "input_tokens": 3, "metadata": {"prompt": "SECRET PROMPT TEXT"}})).collect();
    assert_eq!(app.usage(json!({ "events": events })).await.status, 200);
    app.post(
        &format!("/api/subscription/reservations/{id}/release"),
        json!({}),
    )
    .await;
    assert_eq!(
        app.post_as(
            bad_key,
            "/api/subscription/check",
            json!({"user_id": "lee", "provider": "gemini"})
        )
        .await
        .status,
        401
    );
    assert_eq!(
        app.post_as(
            &app.admin_key.clone(),
            "/api/subscription/check",
            json!({"user_id": "lee", "provider": "gemini"})
        )
        .await
        .status,
        429
    );

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("published"),
        "the cycle logged its alerts:\n{logs}"
    );
    for secret in [
        app.service_key.as_str(),
        app.admin_key.as_str(),
        bad_key,
        "SECRET PROMPT TEXT",
    ] {
        assert!(!logs.contains(secret), "a secret reached the log");
    }
    // Not even the key's hash.
    assert!(!logs.contains(&meter_core::auth::hash_key(&app.service_key)));
}
