//! A fresh app per test: a SQLite store in a temporary directory behind a [`FaultyStore`],
//! a [`FaultyPublisher`], a settable clock; requests go through the router in-process.
//! And the consistency audit every fault test ends with.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Once};

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::Router;
use chrono::{DateTime, NaiveDate, Utc};
use http_body_util::BodyExt as _;
use meter_core::domain::{ProviderId, ReservationStatus, Role, TenantId, UserId};
use meter_core::service::aggregate::{AggregateOptions, AggregateReport};
use meter_core::service::Error;
use meter_core::service::{bootstrap, Meter};
use meter_core::store::Store;
use meter_core::usage::Tally;
use serde_json::{json, Value};
use tower::ServiceExt as _;

use crate::faulty::{FaultyPublisher, FaultyStore};

static TRACING: Once = Once::new();

fn init_tracing() {
    TRACING.call_once(|| {
        // Injected faults log errors by design; only a panic's own output matters here.
        let _ = tracing_subscriber::fmt()
            .with_env_filter("off")
            .with_test_writer()
            .try_init();
    });
}

pub struct App {
    pub router: Router,
    pub meter: Arc<Meter>,
    /// The store the service uses: every call may fail.
    pub faulty: Arc<FaultyStore>,
    /// The same data without faults, for setup and audits.
    pub store: Arc<dyn Store>,
    pub publisher: Arc<FaultyPublisher>,
    pub tenant: TenantId,
    pub service_key: String,
    clock: Arc<Mutex<DateTime<Utc>>>,
    _dir: tempfile::TempDir,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("<no code>")
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

    pub fn assert_ok(&self, context: &str) {
        assert_eq!(self.status, 200, "{context}: {}", self.body);
    }
}

pub fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

pub async fn spawn_app(now: &str) -> App {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(
        meter_core::store::sqlite::SqliteStore::open(&dir.path().join("meter.db")).unwrap(),
    );
    let tenant = TenantId::parse("default").unwrap();
    bootstrap::bootstrap(store.as_ref(), &tenant, None, Utc::now())
        .await
        .unwrap();
    let service = meter_core::auth::generate_key(&tenant, Role::Service, Utc::now());
    store.put_api_key(&service.record).await.unwrap();
    let faulty = Arc::new(FaultyStore::new(store.clone()));
    let publisher = Arc::new(FaultyPublisher::default());
    let clock = Arc::new(Mutex::new(at(now)));
    let read = clock.clone();
    let meter = Arc::new(Meter::with_clock(
        faulty.clone(),
        publisher.clone(),
        Arc::new(move || *read.lock().unwrap()),
    ));
    App {
        router: meter_core::http::app(meter.clone()),
        meter,
        faulty,
        store,
        publisher,
        tenant,
        service_key: service.secret,
        clock,
        _dir: dir,
    }
}

/// A gemini event of `user` at `ts` with `tokens` input tokens.
pub fn event(id: &str, user: &str, tokens: u64, ts: &str) -> Value {
    json!({
        "event_id": id,
        "user_id": user,
        "provider": "gemini",
        "model": "gemini-2.5-flash",
        "timestamp": ts,
        "input_tokens": tokens,
        "output_tokens": tokens / 3,
        "latency_ms": 100 + tokens % 50,
    })
}

impl App {
    pub fn set_now(&self, now: DateTime<Utc>) {
        *self.clock.lock().unwrap() = now;
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        let req = Request::post(path)
            .header("authorization", format!("Bearer {}", self.service_key))
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            headers,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    pub async fn check(&self, body: Value) -> Reply {
        self.post("/api/subscription/check", body).await
    }

    pub async fn usage(&self, events: &[Value]) -> Reply {
        self.post("/api/subscription/usage", json!({ "events": events }))
            .await
    }

    pub async fn release(&self, id: &str) -> Reply {
        self.post(
            &format!("/api/subscription/reservations/{id}/release"),
            json!({}),
        )
        .await
    }

    /// One aggregation pass as of the clock, closing periods as soon as they end.
    pub async fn aggregate(&self) -> Result<AggregateReport, Error> {
        self.meter
            .aggregate(&AggregateOptions {
                grace: chrono::Duration::zero(),
                ..AggregateOptions::default()
            })
            .await
    }

    fn user(user: &str) -> UserId {
        UserId::parse(user).unwrap()
    }

    /// What the store holds about `user`, read without faults.
    pub async fn audit(&self, user: &str) -> Audit {
        let u = Self::user(user);
        let records = self.store.user_records(&self.tenant, &u).await.unwrap();
        let held_open: Vec<_> = records
            .reservations
            .iter()
            .filter(|r| r.status == ReservationStatus::Held)
            .collect();
        Audit {
            event_ids: records
                .events
                .iter()
                .map(|e| e.event_id.to_string())
                .collect(),
            recorded: sum(records
                .periods
                .values()
                .flat_map(|p| p.by_provider.values().map(|u| &u.recorded))),
            held: sum(records
                .periods
                .values()
                .flat_map(|p| p.by_provider.values().map(|u| &u.held))),
            open_reservations: held_open.iter().map(|r| r.id.clone()).collect(),
        }
    }

    /// The store's promise after any failure: for each period and provider, the counters
    /// equal the sum of the stored events (recorded, unpriced, latency) plus the open
    /// reservations (held); each day's rollup equals its events; `get_period_usage`
    /// answers the same counters.
    pub async fn assert_consistent(&self, user: &str, context: &str) {
        let u = Self::user(user);
        let records = self.store.user_records(&self.tenant, &u).await.unwrap();
        type Key = (DateTime<Utc>, ProviderId);
        #[derive(Debug, Default, PartialEq)]
        struct Expect {
            recorded: Tally,
            held: Tally,
            unpriced_calls: u64,
            latency_ms_sum: u64,
        }
        let mut want: BTreeMap<Key, Expect> = BTreeMap::new();
        let mut days: BTreeMap<(NaiveDate, ProviderId), Tally> = BTreeMap::new();
        for e in &records.events {
            let w = want
                .entry((e.period_start, e.provider.clone()))
                .or_default();
            w.recorded = add(&w.recorded, &e.tally());
            w.unpriced_calls += u64::from(e.cost_usd.is_none());
            w.latency_ms_sum += e.latency_ms.unwrap_or(0);
            let d = days
                .entry((e.timestamp.date_naive(), e.provider.clone()))
                .or_default();
            *d = add(d, &e.tally());
        }
        for r in &records.reservations {
            if r.status == ReservationStatus::Held {
                let w = want
                    .entry((r.period_start, r.provider.clone()))
                    .or_default();
                w.held = add(&w.held, &r.held);
            }
        }
        let mut got: BTreeMap<Key, Expect> = BTreeMap::new();
        for (start, usage) in &records.periods {
            for (p, pu) in &usage.by_provider {
                got.insert(
                    (*start, p.clone()),
                    Expect {
                        recorded: pu.recorded.clone(),
                        held: pu.held.clone(),
                        unpriced_calls: pu.unpriced_calls,
                        latency_ms_sum: pu.latency_ms_sum,
                    },
                );
            }
        }
        want.retain(|_, e| *e != Expect::default());
        got.retain(|_, e| *e != Expect::default());
        assert_eq!(
            got, want,
            "{context}: counters of {user} differ from events + holds"
        );

        let mut rollups: BTreeMap<(NaiveDate, ProviderId), Tally> = BTreeMap::new();
        for d in &records.daily {
            for (p, t) in &d.by_provider {
                rollups.insert((d.day, p.clone()), t.clone());
            }
        }
        rollups.retain(|_, t| *t != Tally::default());
        assert_eq!(
            rollups, days,
            "{context}: daily rollups of {user} differ from events"
        );

        let starts: Vec<_> = records.periods.keys().copied().collect();
        let read = self
            .store
            .get_period_usage(&self.tenant, &u, &starts)
            .await
            .unwrap();
        assert_eq!(
            read,
            records.periods.values().cloned().collect::<Vec<_>>(),
            "{context}: get_period_usage disagrees with user_records"
        );
    }
}

/// Totals of one user's store contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audit {
    pub event_ids: Vec<String>,
    pub recorded: Tally,
    pub held: Tally,
    pub open_reservations: Vec<String>,
}

pub fn add(a: &Tally, b: &Tally) -> Tally {
    Tally {
        calls: a.calls + b.calls,
        tokens: a.tokens + b.tokens,
        cost_usd: a.cost_usd + b.cost_usd,
    }
}

pub fn sum<'a>(tallies: impl Iterator<Item = &'a Tally>) -> Tally {
    tallies.fold(Tally::default(), |acc, t| add(&acc, t))
}
