//! Over HTTP against a running `meter serve` (the real binary on a loopback port).

mod common;

use std::ffi::OsStr;
use std::sync::Arc;

use meter_core::domain::{TenantId, UserId};
use meter_core::store::Store;
use serde_json::{json, Value};

const ADMIN_KEY: &str = "mk_serve_test_admin_key_0123456789abcdef";

struct Server {
    server: common::Server,
    db: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("meter.db");
    let server = common::serve(&[OsStr::new("--db"), db.as_os_str()], ADMIN_KEY, "warn");
    Server {
        server,
        db,
        _dir: dir,
    }
}

async fn post(client: &reqwest::Client, s: &Server, path: &str, body: Value) -> (u16, Value) {
    let r = client
        .post(format!("{}{path}", s.server.base))
        .bearer_auth(ADMIN_KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn event(id: &str, user: &str) -> Value {
    json!({"event_id": id, "user_id": user, "provider": "gemini", "model": "gemini-2.5-flash", "input_tokens": 10, "output_tokens": 5})
}

async fn open_store(s: &Server) -> Arc<dyn Store> {
    Arc::new(meter_core::store::sqlite::SqliteStore::open(&s.db).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_concurrent_reservations_with_fifty_left_allow_exactly_fifty() {
    let s = start();
    let client = reqwest::Client::new();
    let events: Vec<_> = (0..50)
        .map(|i| event(&format!("pre-{i}"), "racer"))
        .collect();
    let (status, body) = post(
        &client,
        &s,
        "/api/subscription/usage",
        json!({ "events": events }),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let (client, url) = (client.clone(), format!("{}/api/subscription/check", s.server.base));
            tokio::spawn(async move {
                let r = client
                    .post(url)
                    .bearer_auth(ADMIN_KEY)
                    .json(&json!({"user_id": "racer", "provider": "gemini", "model": "gemini-2.5-flash", "estimated_input_tokens": 10, "reserve": true}))
                    .send()
                    .await
                    .unwrap();
                r.status().as_u16()
            })
        })
        .collect();
    let mut allowed = 0;
    let mut denied = 0;
    for t in tasks {
        match t.await.unwrap() {
            200 => allowed += 1,
            429 => denied += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!((allowed, denied), (50, 150));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_crossings_raise_exactly_three_alerts_and_retries_count_once() {
    let s = start();
    let client = reqwest::Client::new();
    // 100 events (the Free gemini call limit), each sent three times, all concurrently.
    let tasks: Vec<_> = (0..300)
        .map(|i| {
            let (client, url) = (
                client.clone(),
                format!("{}/api/subscription/usage", s.server.base),
            );
            tokio::spawn(async move {
                let r = client
                    .post(url)
                    .bearer_auth(ADMIN_KEY)
                    .json(&event(&format!("cross-{}", i % 100), "crosser"))
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                let body: Value = r.json().await.unwrap();
                (
                    status,
                    body["data"]["events"][0]["status"]
                        .as_str()
                        .unwrap_or("")
                        .to_owned(),
                )
            })
        })
        .collect();
    let mut recorded = 0;
    for t in tasks {
        let (status, outcome) = t.await.unwrap();
        assert_eq!(status, 200);
        recorded += usize::from(outcome == "recorded");
        assert!(outcome == "recorded" || outcome == "duplicate", "{outcome}");
    }
    assert_eq!(recorded, 100);

    let store = open_store(&s).await;
    let (t, u) = (
        TenantId::parse("default").unwrap(),
        UserId::parse("crosser").unwrap(),
    );
    let (alerts, _) = store.list_alerts(&t, &u, false, 100).await.unwrap();
    let mut keys: Vec<_> = alerts.iter().map(|a| a.key.as_str()).collect();
    keys.sort();
    assert_eq!(
        keys,
        ["calls:gemini@100", "calls:gemini@80", "calls:gemini@90"]
    );
    let now = chrono::Utc::now();
    let usage = store
        .get_user_usage(&t, &u, &|_| {
            meter_core::periods::Schedule::calendar()
                .period_containing(now)
                .unwrap()
                .start
        })
        .await
        .unwrap();
    let g = &usage.usage.by_provider[&meter_core::domain::ProviderId::parse("gemini").unwrap()];
    assert_eq!((g.recorded.calls, g.recorded.tokens), (100, 1500));
    let (status, _) = post(
        &client,
        &s,
        "/api/subscription/check",
        json!({"user_id": "crosser", "provider": "gemini"}),
    )
    .await;
    assert_eq!(status, 429);
}

/// `meter healthcheck --addr <addr>`: its exit status.
fn healthcheck(addr: &str) -> bool {
    std::process::Command::new(env!("CARGO_BIN_EXE_meter"))
        .args(["healthcheck", "--addr", addr, "--timeout-seconds", "2"])
        .output()
        .expect("the meter binary runs")
        .status
        .success()
}

#[tokio::test]
async fn healthz_metrics_and_the_healthcheck_command_against_the_real_server() {
    let s = start();
    let client = reqwest::Client::new();
    let health = client
        .get(format!("{}/healthz", s.server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(
        health.json::<Value>().await.unwrap(),
        json!({"success": true, "data": {"status": "ok"}})
    );
    let addr = s.server.base.trim_start_matches("http://").to_owned();
    assert!(
        healthcheck(&addr),
        "meter healthcheck against a serving server"
    );

    let (status, _) = post(
        &client,
        &s,
        "/api/subscription/check",
        json!({"user_id": "scraped", "provider": "gemini", "model": "gemini-2.5-flash"}),
    )
    .await;
    assert_eq!(status, 200);
    let metrics = client
        .get(format!("{}/metrics", s.server.base))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.unwrap();
    assert!(
        text.contains("\nmeter_checks_total{outcome=\"allowed\"} 1\n"),
        "{text}"
    );
    let anonymous = client
        .get(format!("{}/metrics", s.server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        anonymous.status(),
        401,
        "GET /metrics needs the admin key by default"
    );

    drop(s);
    assert!(!healthcheck(&addr), "nothing listens any more");
}
