//! `meter serve`'s operations routes (GET /healthz, GET /metrics) through the router, and
//! the business metrics the hot path reports into them.
//!
//! The metrics registry is process-wide and the tests of this binary run in parallel, so
//! each assertion compares a series before and after this test's own requests and asks
//! for at least the increase those requests make.

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt as _;
use meter_core::http::ops::{self, MetricsAccess};
use serde_json::json;
use tower::ServiceExt as _;

use meter_tests::TestApp;

/// The app as `meter serve` runs it: every route plus the operations routes.
fn served(app: &TestApp, access: MetricsAccess) -> axum::Router {
    meter_core::http::app(app.meter.clone()).merge(ops::router(app.meter.clone(), access))
}

/// Status, content type and body text of one GET.
async fn get(router: &axum::Router, path: &str, key: Option<&str>) -> (u16, String, String) {
    let mut req = Request::get(path);
    if let Some(k) = key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    let res = router
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status().as_u16();
    let ctype = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (status, ctype, String::from_utf8(bytes.to_vec()).unwrap())
}

/// The value of one series (`name{labels}` exactly as rendered), 0 when absent.
fn value(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0)
}

async fn scrape(app: &TestApp) -> String {
    let (status, ctype, text) = get(
        &served(app, MetricsAccess::AdminKey),
        "/metrics",
        Some(&app.admin_key),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(ctype, "text/plain; version=0.0.4; charset=utf-8");
    text
}

#[tokio::test]
async fn healthz_answers_the_envelope_without_a_key_and_405_for_other_methods() {
    let app = TestApp::spawn().await;
    let router = served(&app, MetricsAccess::AdminKey);
    let (status, _, body) = get(&router, "/healthz", None).await;
    assert_eq!(status, 200);
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body, json!({"success": true, "data": {"status": "ok"}}));

    let res = router
        .oneshot(Request::post("/healthz").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), 405);
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed");
}

#[tokio::test]
async fn metrics_need_an_admin_key_unless_served_open() {
    let app = TestApp::spawn().await;
    let guarded = served(&app, MetricsAccess::AdminKey);
    let (status, _, body) = get(&guarded, "/metrics", None).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("\"unauthorized\""), "{body}");
    let (status, _, body) = get(&guarded, "/metrics", Some(&app.service_key)).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("\"forbidden\""), "{body}");
    let (status, _, body) = get(&guarded, "/metrics", Some(&app.admin_key)).await;
    assert_eq!(status, 200);
    assert!(
        body.contains("# TYPE meter_checks_total counter\n"),
        "{body}"
    );

    let (status, _, body) = get(&served(&app, MetricsAccess::Open), "/metrics", None).await;
    assert_eq!(status, 200);
    assert!(
        body.contains("# TYPE meter_outbox_backlog gauge\n"),
        "{body}"
    );
}

#[tokio::test]
async fn checks_are_counted_by_outcome_and_denials_by_metric() {
    let app = TestApp::spawn().await;
    let before = scrape(&app).await;
    let allowed = app
        .check(json!({"user_id": "metrics-a", "provider": "gemini", "model": "gemini-2.5-flash", "estimated_input_tokens": 10}))
        .await;
    assert_eq!(allowed.status, 200, "{:?}", allowed.body);
    // The free plan allows no openai calls: 429 on calls:openai.
    for _ in 0..2 {
        let denied = app
            .check(json!({"user_id": "metrics-a", "provider": "openai", "model": "gpt-4o", "estimated_input_tokens": 10}))
            .await;
        assert_eq!(denied.code(), "usage_limit_exceeded");
    }
    let bad = app.check(json!({"user_id": "metrics-a"})).await;
    assert_eq!(bad.status, 422, "bad input is not a decision");
    let after = scrape(&app).await;

    let grew = |series: &str| value(&after, series) - value(&before, series);
    assert!(
        grew("meter_checks_total{outcome=\"allowed\"}") >= 1,
        "{after}"
    );
    assert!(
        grew("meter_checks_total{outcome=\"denied\"}") >= 2,
        "{after}"
    );
    assert!(
        grew("meter_check_denials_total{metric=\"calls:openai\"}") >= 2,
        "{after}"
    );
}

#[tokio::test]
async fn ingested_events_are_counted_by_outcome_and_unpriced_ones_apart() {
    let app = TestApp::spawn().await;
    let before = scrape(&app).await;
    let ts = chrono::Utc::now().to_rfc3339();
    let event = |id: &str, input: u64| json!({"event_id": id, "user_id": "metrics-b", "provider": "gemini", "model": "gemini-2.5-flash", "input_tokens": input, "output_tokens": 5, "timestamp": ts});
    let first = app
        .usage(json!({"events": [event("m-1", 10), event("m-2", 10)]}))
        .await;
    assert_eq!(first.status, 200, "{:?}", first.body);
    // m-1 again (duplicate) and m-2 with other content (conflict).
    let again = app
        .usage(json!({"events": [event("m-1", 10), event("m-2", 99)]}))
        .await;
    assert_eq!(again.status, 200, "{:?}", again.body);
    assert_eq!(again.body["data"]["events"][1]["status"], "conflict");
    // A model without a price in force is recorded unpriced.
    let unpriced = app
        .usage(json!({"event_id": "m-3", "user_id": "metrics-b", "provider": "gemini", "model": "gemini-9-ultra", "input_tokens": 10, "timestamp": ts}))
        .await;
    assert_eq!(unpriced.body["data"]["events"][0]["priced"], false);
    let after = scrape(&app).await;

    let grew = |series: &str| value(&after, series) - value(&before, series);
    assert!(
        grew("meter_events_total{status=\"recorded\"}") >= 3,
        "{after}"
    );
    assert!(grew("meter_events_unpriced_total") >= 1, "{after}");
    assert!(
        grew("meter_events_total{status=\"duplicate\"}") >= 1,
        "{after}"
    );
    assert!(
        grew("meter_events_total{status=\"conflict\"}") >= 1,
        "{after}"
    );
}

#[tokio::test]
async fn the_outbox_backlog_counts_undelivered_alerts_and_the_oldest_age() {
    use meter_core::domain::{Alert, Severity, UserId};
    let app = TestApp::spawn().await;
    let now = chrono::Utc::now();
    let empty = meter_core::metrics::outbox_backlog(app.store.as_ref(), now)
        .await
        .unwrap();
    assert_eq!(
        (empty.alerts, empty.invoices, empty.oldest_age_seconds),
        (0, 0, 0)
    );

    let alert = |id: &str, age_s: i64| Alert {
        id: id.to_owned(),
        tenant: app.tenant.clone(),
        user: UserId::parse("metrics-c").unwrap(),
        period_start: now,
        key: format!("k-{id}"),
        metric: None,
        threshold: None,
        severity: Severity::Info,
        title: "t".to_owned(),
        message: "m".to_owned(),
        created_at: now - chrono::Duration::seconds(age_s),
        read: false,
        published: false,
        org: None,
        budget: None,
    };
    for (id, age) in [("alt-old", 900), ("alt-new", 30)] {
        assert!(app.store.create_alert_once(&alert(id, age)).await.unwrap());
    }
    let backlog = meter_core::metrics::outbox_backlog(app.store.as_ref(), now)
        .await
        .unwrap();
    assert_eq!(
        (backlog.alerts, backlog.invoices, backlog.oldest_age_seconds),
        (2, 0, 900)
    );

    // After a pass, the hook puts the measure in the gauges `GET /metrics` shows.
    let report = meter_core::service::aggregate::AggregateReport::default();
    meter_core::metrics::observe_aggregation(app.store.as_ref(), &report, now).await;
    let text = scrape(&app).await;
    assert!(
        text.contains("\nmeter_outbox_backlog{kind=\"alert\"} 2\n"),
        "{text}"
    );
    assert!(
        text.contains("\nmeter_outbox_oldest_age_seconds 900\n"),
        "{text}"
    );
}
