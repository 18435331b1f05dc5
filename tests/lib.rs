//! What the integration test binaries share: [`TestApp`], the one way they build the app
//! and send it requests. Requests go through the router in-process (`oneshot`), exactly as
//! Lambda and `meter serve` run it; the fixtures behind it are `meter_core::testing`.

use std::sync::{Arc, Once};

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt as _;
use meter_core::alerts::{AlertPublisher, LogPublisher};
use meter_core::domain::{TenantId, UserId};
use meter_core::service::{Clock, Meter};
use meter_core::store::Store;
use meter_core::testing::{Keys, TestClock};
use serde_json::Value;
use tower::ServiceExt as _;

/// Issue 18: the `alert.resolved`-after-a-top-up story, run on both stores.
pub mod credit_resolved;
/// Issue 19: the wallet-alarms-after-a-hold story, run on both stores.
pub mod hold_alarms;
/// Issue 18: the one-payer-per-call story, run on both stores.
pub mod one_payer;
/// Issue 18: the org-alerts-out-of-a-namesake-user's-list story, run on both stores.
pub mod org_alert_namesake;
/// Issue 18: the re-priced-org-event story, run on both stores.
pub mod org_repricing;
/// Issue 18: the budget-alerts-of-a-re-priced-cost story, run on both stores.
pub mod repriced_budget_alerts;
/// Issue 19: the unpriced-events-draw-once-re-priced story, run on both stores.
pub mod repricing;

static TRACING: Once = Once::new();

/// Logs to the test output at `filter` (the first call in a test binary wins).
pub fn init_tracing(filter: &str) {
    TRACING.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    });
}

/// A bootstrapped store (default tenant, plans and catalog, an admin and a service key)
/// behind a service and its router.
pub struct TestApp {
    pub router: Router,
    pub meter: Arc<Meter>,
    /// The store the service uses.
    pub store: Arc<dyn Store>,
    pub tenant: TenantId,
    pub admin_key: String,
    pub service_key: String,
    _dir: Option<tempfile::TempDir>,
}

/// An answer: status, headers and the body as JSON (`Null` when empty, a JSON string when
/// it is not JSON).
#[derive(Debug)]
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

    pub fn assert_ok(&self, context: &str) {
        assert_eq!(self.status, 200, "{context}: {}", self.body);
    }

    /// A 503 with the stable code, a safe message and `Retry-After`.
    pub fn assert_unavailable(&self, context: &str) {
        assert_eq!(self.status, 503, "{context}: {}", self.body);
        assert_eq!(self.code(), "store_unavailable", "{context}");
        assert_eq!(self.body["success"], false, "{context}");
        assert!(
            !self.body.to_string().contains("injected"),
            "{context}: the cause leaked into the response: {}",
            self.body
        );
        assert_eq!(
            self.headers.get("retry-after").map(|v| v.as_bytes()),
            Some(&b"1"[..]),
            "{context}"
        );
    }
}

/// How a [`TestApp`] is built; the defaults are a fresh SQLite store, random keys, the
/// real clock, alerts logged, and every route ([`meter_core::http::app`]).
pub struct Setup {
    store: Option<Arc<dyn Store>>,
    keys: Keys,
    clock: Option<Clock>,
    publisher: Arc<dyn AlertPublisher>,
    router: fn(Arc<Meter>) -> Router,
}

impl Setup {
    /// This store instead of a fresh SQLite one.
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// The service clock reads `clock`.
    pub fn clock(mut self, clock: &TestClock) -> Self {
        self.clock = Some(clock.clock());
        self
    }

    pub fn publisher(mut self, publisher: Arc<dyn AlertPublisher>) -> Self {
        self.publisher = publisher;
        self
    }

    /// These keys instead of random ones.
    pub fn keys(mut self, admin: &str, service: &str) -> Self {
        self.keys.admin = admin.to_owned();
        self.keys.service = service.to_owned();
        self
    }

    /// Another router over the service (e.g. one function's).
    pub fn router(mut self, router: fn(Arc<Meter>) -> Router) -> Self {
        self.router = router;
        self
    }

    /// Bootstraps the store and builds the service and its router.
    pub async fn spawn(self) -> TestApp {
        init_tracing("warn");
        let (store, dir) = match self.store {
            Some(store) => {
                meter_core::testing::bootstrap(store.as_ref(), &self.keys).await;
                (store, None)
            }
            None => {
                let (dir, store) = meter_core::testing::bootstrapped_sqlite_store(&self.keys).await;
                (store, Some(dir))
            }
        };
        let clock = self.clock.unwrap_or_else(|| Arc::new(chrono::Utc::now));
        let meter = Arc::new(Meter::with_clock(store.clone(), self.publisher, clock));
        TestApp {
            router: (self.router)(meter.clone()),
            meter,
            store,
            tenant: self.keys.tenant,
            admin_key: self.keys.admin,
            service_key: self.keys.service,
            _dir: dir,
        }
    }
}

impl TestApp {
    /// One aggregation pass at `at` (the schedule's default options otherwise).
    pub async fn aggregate_at(
        &self,
        at: chrono::DateTime<chrono::Utc>,
    ) -> meter_core::service::aggregate::AggregateReport {
        self.meter
            .aggregate(&meter_core::service::aggregate::AggregateOptions {
                at: Some(at),
                ..Default::default()
            })
            .await
            .unwrap()
    }

    /// The defaults of [`Setup`], to change some.
    pub fn setup() -> Setup {
        Setup {
            store: None,
            keys: Keys::generate(),
            clock: None,
            publisher: Arc::new(LogPublisher),
            router: meter_core::http::app,
        }
    }

    /// A fresh app on a fresh SQLite store.
    pub async fn spawn() -> Self {
        Self::setup().spawn().await
    }

    /// A fresh app whose service clock reads `clock` (set it to move time).
    pub async fn spawn_at(clock: &TestClock) -> Self {
        Self::setup().clock(clock).spawn().await
    }

    /// A fresh app on `store` (DynamoDB, a wrapper that injects faults …), bootstrapped
    /// first; [`TestApp::setup`]`.store(…)` to change more.
    pub async fn with_store(store: Arc<dyn Store>) -> Self {
        Self::setup().store(store).spawn().await
    }

    /// Sends `req` as it is (any body type the router takes, e.g. a decoded Lambda event).
    pub async fn send<B>(&self, req: Request<B>) -> Reply
    where
        B: axum::body::HttpBody<Data = axum::body::Bytes> + Send + 'static,
        B::Error: Into<axum::BoxError>,
    {
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

    async fn call(&self, method: &str, key: &str, path: &str, body: Option<Value>) -> Reply {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {key}"));
        let req = match body {
            Some(body) => req
                .header("content-type", "application/json")
                .body(Body::from(body.to_string())),
            None => req.body(Body::empty()),
        };
        self.send(req.unwrap()).await
    }

    pub async fn get_as(&self, key: &str, path: &str) -> Reply {
        self.call("GET", key, path, None).await
    }

    pub async fn post_as(&self, key: &str, path: &str, body: Value) -> Reply {
        self.call("POST", key, path, Some(body)).await
    }

    pub async fn put_as(&self, key: &str, path: &str, body: Value) -> Reply {
        self.call("PUT", key, path, Some(body)).await
    }

    pub async fn delete_as(&self, key: &str, path: &str) -> Reply {
        self.call("DELETE", key, path, None).await
    }

    /// A GET with the service key.
    pub async fn get(&self, path: &str) -> Reply {
        self.get_as(&self.service_key, path).await
    }

    /// A POST with the service key.
    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.post_as(&self.service_key, path, body).await
    }

    /// A PUT with the admin key (the admin routes).
    pub async fn put(&self, path: &str, body: Value) -> Reply {
        self.put_as(&self.admin_key, path, body).await
    }

    /// A DELETE with the admin key (the admin routes).
    pub async fn delete(&self, path: &str) -> Reply {
        self.delete_as(&self.admin_key, path).await
    }

    /// POST /api/subscription/check.
    pub async fn check(&self, body: Value) -> Reply {
        self.post("/api/subscription/check", body).await
    }

    /// POST /api/subscription/usage.
    pub async fn usage(&self, body: Value) -> Reply {
        self.post("/api/subscription/usage", body).await
    }

    /// Everything the store holds about a user's current period and alerts, to prove that
    /// a rejected request changed nothing.
    pub async fn snapshot(&self, user: &str) -> String {
        let u = UserId::parse(user).unwrap();
        let now = self.meter.now();
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
