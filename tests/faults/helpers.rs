//! A fresh app per test ([`TestApp`]) whose service reaches a SQLite store through a
//! [`FaultyStore`] and publishes through a [`FaultyPublisher`], at a settable clock; and
//! the consistency audit every fault test ends with.

use std::collections::BTreeMap;
use std::ops::Deref;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use meter_core::domain::{ProviderId, ReservationStatus, UserId};
use meter_core::service::aggregate::{AggregateOptions, AggregateReport};
use meter_core::service::Error;
use meter_core::store::Store;
use meter_core::testing::TestClock;
use meter_core::usage::Tally;
use meter_tests::{Reply, TestApp};
use serde_json::{json, Value};

use crate::faulty::{FaultyPublisher, FaultyStore};

pub struct App {
    /// The app; its service's store is `faulty`.
    pub app: TestApp,
    /// The store the service uses: every call may fail.
    pub faulty: Arc<FaultyStore>,
    /// The same data without faults, for setup and audits.
    pub store: Arc<dyn Store>,
    pub publisher: Arc<FaultyPublisher>,
    clock: TestClock,
    _dir: tempfile::TempDir,
}

/// The app's requests and fields (`post`, `check`, `tenant`, `meter` …).
impl Deref for App {
    type Target = TestApp;

    fn deref(&self) -> &TestApp {
        &self.app
    }
}

pub async fn spawn_app(now: &str) -> App {
    // Injected faults log errors by design; only a panic's own output matters here.
    meter_tests::init_tracing("off");
    let (dir, store) = meter_core::testing::sqlite_store();
    let store: Arc<dyn Store> = Arc::new(store);
    let faulty = Arc::new(FaultyStore::new(store.clone()));
    let publisher = Arc::new(FaultyPublisher::default());
    let clock = TestClock::at(now);
    let app = TestApp::setup()
        .store(faulty.clone())
        .publisher(publisher.clone())
        .clock(&clock)
        .spawn()
        .await;
    App {
        app,
        faulty,
        store,
        publisher,
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
        self.clock.set(now);
    }

    /// POST /api/subscription/usage with these events.
    pub async fn ingest(&self, events: &[Value]) -> Reply {
        self.usage(json!({ "events": events })).await
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
