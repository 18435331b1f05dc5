//! A fresh app per test: a SQLite store in a temporary directory, bootstrapped with the
//! default plans and catalog, an admin key and a service key; requests go through the
//! router in-process (`oneshot`), exactly as Lambda and `meter serve` run it.

use std::sync::{Arc, Once};

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt as _;
use meter_core::alerts::LogPublisher;
use meter_core::domain::{Role, TenantId, UserId};
use meter_core::service::{bootstrap, Meter};
use meter_core::store::Store;
use serde_json::Value;
use tower::ServiceExt as _;

static TRACING: Once = Once::new();

pub fn init_tracing() {
    TRACING.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("warn")
            .with_test_writer()
            .try_init();
    });
}

pub struct TestApp {
    pub router: Router,
    pub meter: Arc<Meter>,
    pub store: Arc<dyn Store>,
    pub tenant: TenantId,
    pub admin_key: String,
    pub service_key: String,
    _dir: tempfile::TempDir,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    /// The error code of an error reply.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("<no code>")
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with_clock(Arc::new(chrono::Utc::now)).await
}

/// A settable clock for [`spawn_app_at`].
pub type TestClock = Arc<std::sync::Mutex<chrono::DateTime<chrono::Utc>>>;

/// A fresh app whose service clock reads `clock` (set it to move time).
pub async fn spawn_app_at(at: &str) -> (TestApp, TestClock) {
    let clock: TestClock = Arc::new(std::sync::Mutex::new(at.parse().unwrap()));
    let read = clock.clone();
    let app = spawn_app_with_clock(Arc::new(move || *read.lock().unwrap())).await;
    (app, clock)
}

pub async fn spawn_app_with_clock(clock: meter_core::service::Clock) -> TestApp {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(
        meter_core::store::sqlite::SqliteStore::open(&dir.path().join("meter.db")).unwrap(),
    );
    let tenant = TenantId::parse("default").unwrap();
    let admin_key = format!("mk_test_admin_{}", uuid::Uuid::new_v4().simple());
    bootstrap::bootstrap(
        store.as_ref(),
        &tenant,
        Some(&admin_key),
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    let service = meter_core::auth::generate_key(&tenant, Role::Service, chrono::Utc::now());
    store.put_api_key(&service.record).await.unwrap();
    let meter = Arc::new(Meter::with_clock(
        store.clone(),
        Arc::new(LogPublisher),
        clock,
    ));
    TestApp {
        router: meter_core::http::app(meter.clone()),
        meter,
        store,
        tenant,
        admin_key,
        service_key: service.secret,
        _dir: dir,
    }
}

impl TestApp {
    pub async fn send(&self, req: Request<Body>) -> Reply {
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.post_as(&self.service_key.clone(), path, body).await
    }

    pub async fn post_as(&self, key: &str, path: &str, body: Value) -> Reply {
        let req = Request::post(path)
            .header("authorization", format!("Bearer {key}"))
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        self.send(req).await
    }

    pub async fn get_as(&self, key: &str, path: &str) -> Reply {
        let req = Request::get(path)
            .header("authorization", format!("Bearer {key}"))
            .body(Body::empty())
            .unwrap();
        self.send(req).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.get_as(&self.service_key.clone(), path).await
    }

    pub async fn put_as(&self, key: &str, path: &str, body: Value) -> Reply {
        let req = Request::put(path)
            .header("authorization", format!("Bearer {key}"))
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        self.send(req).await
    }

    /// A PUT with the admin key.
    pub async fn put(&self, path: &str, body: Value) -> Reply {
        self.put_as(&self.admin_key.clone(), path, body).await
    }

    pub async fn check(&self, body: Value) -> Reply {
        self.post("/api/subscription/check", body).await
    }

    pub async fn usage(&self, body: Value) -> Reply {
        self.post("/api/subscription/usage", body).await
    }

    /// Everything the store holds about a user, to prove that a rejected request changed nothing.
    pub async fn snapshot(&self, user: &str) -> String {
        let u = UserId::parse(user).unwrap();
        let now = chrono::Utc::now();
        let state = self
            .store
            .get_user_usage(&self.tenant, &u, &|s| {
                meter_core::service::period_start_at(s, now)
            })
            .await
            .unwrap();
        let alerts = self
            .store
            .list_alerts(&self.tenant, &u, false, 100)
            .await
            .unwrap();
        format!("{:?}|{:?}|{:?}", state.usage, state.fired_alerts, alerts)
    }
}
