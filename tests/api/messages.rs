//! The messages subscribers of the alert topic receive, as the code publishes them (an
//! ingest that raises alerts, an aggregation that closes a period into an invoice), checked
//! against the JSON Schemas docs/schemas/alert.json and docs/schemas/invoice-created.json
//! and the message attributes docs/deploy.md documents for filter policies.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::Request;
use chrono::{TimeZone, Utc};
use meter_core::alerts::{AlertPublisher, OutboxMessage, PublishError};
use meter_core::service::aggregate::AggregateOptions;
use meter_core::service::Meter;
use serde_json::{json, Value};
use tower::ServiceExt as _;

use meter_tests::TestApp;

/// Keeps every message it is given, as the SNS publisher would send it.
#[derive(Default)]
struct Capture(Mutex<Vec<OutboxMessage>>);

#[async_trait::async_trait]
impl AlertPublisher for Capture {
    async fn publish(&self, m: &OutboxMessage) -> Result<(), PublishError> {
        self.0.lock().unwrap().push(m.clone());
        Ok(())
    }
}

/// What a broken body has, and how to break a real one so.
type Mutation = (&'static str, fn(&mut Value));

fn schema(name: &str) -> jsonschema::Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/schemas")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).unwrap()
}

fn errors(v: &jsonschema::Validator, body: &Value) -> Vec<String> {
    v.iter_errors(body)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect()
}

/// Real messages: two alerts (80 % of the free plan's gemini calls; usage without a
/// price) from one ingest in March, and March's invoice from the pass on April 1st.
async fn published_messages() -> Vec<OutboxMessage> {
    let app = TestApp::spawn().await;
    let capture = Arc::new(Capture::default());
    let meter_at = |now: chrono::DateTime<Utc>| {
        Arc::new(Meter::with_clock(
            app.store.clone(),
            capture.clone(),
            Arc::new(move || now),
        ))
    };
    let march = Utc.with_ymd_and_hms(2026, 3, 10, 12, 0, 0).unwrap();
    let mut events: Vec<Value> = (0..80)
        .map(|i| json!({"event_id": format!("s-{i}"), "user_id": "subscriber", "provider": "gemini", "model": "gemini-2.5-flash", "input_tokens": 10, "output_tokens": 5, "timestamp": march.to_rfc3339()}))
        .collect();
    events.push(json!({"event_id": "s-unpriced", "user_id": "subscriber", "provider": "gemini", "model": "gemini-9-ultra", "input_tokens": 10, "timestamp": march.to_rfc3339()}));
    let req = Request::post("/api/subscription/usage")
        .header("authorization", format!("Bearer {}", app.service_key))
        .header("content-type", "application/json")
        .body(Body::from(json!({ "events": events }).to_string()))
        .unwrap();
    let res = meter_core::http::app(meter_at(march))
        .oneshot(req)
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    let april = Utc.with_ymd_and_hms(2026, 4, 1, 1, 0, 0).unwrap();
    let report = meter_at(april)
        .aggregate(&AggregateOptions::default())
        .await
        .unwrap();
    assert_eq!(report.invoices_created, 1, "{report:?}");
    let messages = capture.0.lock().unwrap().clone();
    messages
}

#[tokio::test]
async fn published_alerts_and_invoices_match_their_json_schemas_and_attributes() {
    let (alert_schema, invoice_schema) = (schema("alert.json"), schema("invoice-created.json"));
    let messages = published_messages().await;
    let kinds: Vec<&str> = messages.iter().map(|m| m.kind).collect();
    assert!(
        kinds.iter().filter(|k| **k == "alert").count() >= 2,
        "{kinds:?}"
    );
    assert_eq!(kinds.iter().filter(|k| **k == "invoice.created").count(), 1);

    let mut threshold_alert = false;
    let mut unpriced_alert = false;
    for m in &messages {
        // What SNS carries is the body's JSON text; subscribers parse it back.
        let body: Value = serde_json::from_str(&m.body.to_string()).unwrap();
        let attrs: BTreeSet<&str> = m.attributes.keys().copied().collect();
        assert_eq!(m.attributes["type"], m.kind);
        assert_eq!(body["type"], m.kind);
        match m.kind {
            "alert" => {
                let e = errors(&alert_schema, &body);
                assert!(e.is_empty(), "{e:?}\n{body}");
                assert_eq!(body["alert_id"], m.id.as_str());
                assert_eq!(
                    m.attributes["tenant_id"],
                    body["tenant_id"].as_str().unwrap()
                );
                assert_eq!(m.attributes["user_id"], body["user_id"].as_str().unwrap());
                assert_eq!(m.attributes["severity"], body["severity"].as_str().unwrap());
                assert_eq!(m.attributes["alert_key"], body["key"].as_str().unwrap());
                let mut expected =
                    BTreeSet::from(["type", "tenant_id", "user_id", "severity", "alert_key"]);
                if let Some(metric) = body["metric"].as_str() {
                    assert_eq!(m.attributes["metric"], metric);
                    expected.insert("metric");
                }
                if let Some(t) = body["threshold"].as_u64() {
                    assert_eq!(m.attributes["threshold"], t.to_string());
                    expected.insert("threshold");
                    threshold_alert = true;
                } else {
                    unpriced_alert |= body["key"] == "unpriced";
                }
                assert_eq!(attrs, expected, "{body}");
            }
            "invoice.created" => {
                let e = errors(&invoice_schema, &body);
                assert!(e.is_empty(), "{e:?}\n{body}");
                assert_eq!(body["invoice"]["id"], m.id.as_str());
                assert_eq!(
                    m.attributes["user_id"],
                    body["invoice"]["user"].as_str().unwrap()
                );
                assert_eq!(attrs, BTreeSet::from(["type", "tenant_id", "user_id"]));
            }
            other => panic!("a message of unknown type {other}"),
        }
    }
    assert!(threshold_alert && unpriced_alert, "{messages:#?}");
}

#[tokio::test]
async fn the_schemas_reject_messages_that_differ_from_the_real_ones() {
    let (alert_schema, invoice_schema) = (schema("alert.json"), schema("invoice-created.json"));
    let messages = published_messages().await;
    let alert = messages
        .iter()
        .find(|m| m.kind == "alert")
        .unwrap()
        .body
        .clone();
    let invoice = messages
        .iter()
        .find(|m| m.kind == "invoice.created")
        .unwrap()
        .body
        .clone();
    let broken_alerts: [Mutation; 3] = [
        ("no alert_id", |b| {
            b.as_object_mut().unwrap().remove("alert_id");
        }),
        ("an unknown severity", |b| b["severity"] = json!("fatal")),
        ("an extra field", |b| b["surprise"] = json!(1)),
    ];
    for (what, mutate) in broken_alerts {
        let mut b = alert.clone();
        mutate(&mut b);
        assert!(
            !errors(&alert_schema, &b).is_empty(),
            "alert.json accepts {what}"
        );
    }
    let broken_invoices: [Mutation; 3] = [
        ("a float total", |b| b["invoice"]["total_usd"] = json!(29.0)),
        ("an unknown line kind", |b| {
            b["invoice"]["line_items"][0]["kind"] = json!("tax")
        }),
        ("no period end", |b| {
            b["invoice"]["period"]
                .as_object_mut()
                .unwrap()
                .remove("end");
        }),
    ];
    for (what, mutate) in broken_invoices {
        let mut b = invoice.clone();
        mutate(&mut b);
        assert!(
            !errors(&invoice_schema, &b).is_empty(),
            "invoice-created.json accepts {what}"
        );
    }
}
