//! Business metrics: a small registry of labelled counters and gauges, shared by the
//! Lambda functions and `meter serve`, under the same names in both:
//!
//! - in Lambda, [`emf`] writes what changed since the last flush to stdout as CloudWatch
//!   embedded metric format lines (namespace `meter`, dimension `stack`), once per
//!   invocation;
//! - `meter serve` renders the totals for Prometheus at `GET /metrics` ([`prometheus`]).
//!
//! The registry is process-wide ([`global`]); request handlers report into it through
//! the `observe_*` hooks below. docs/operations.md ("Metrics") lists every name.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, RwLock};

use chrono::{DateTime, Utc};

use crate::service::aggregate::AggregateReport;
use crate::service::ingest::{EventStatus, IngestReport};
use crate::service::{CheckOutcome, Error};
use crate::store::Store;

pub mod emf;
pub mod prometheus;

/// Counters only go up (Prometheus `counter`; EMF gets the increase since the last
/// flush); gauges are set to a measured value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

/// One metric name with its help text, kind, unit and label names.
#[derive(Debug, PartialEq, Eq)]
pub struct Family {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    /// The CloudWatch unit of its EMF values.
    pub unit: &'static str,
    pub labels: &'static [&'static str],
}

pub static CHECKS: Family = Family {
    name: "meter_checks_total",
    help: "POST /check decisions: allowed (200), denied (429 usage_limit_exceeded), inactive (403 subscription_inactive)",
    kind: Kind::Counter,
    unit: "Count",
    labels: &["outcome"],
};

pub static CHECK_DENIALS: Family = Family {
    name: "meter_check_denials_total",
    help: "POST /check answers 429 usage_limit_exceeded, by the plan metric that would be exceeded",
    kind: Kind::Counter,
    unit: "Count",
    labels: &["metric"],
};

pub static EVENTS: Family = Family {
    name: "meter_events_total",
    help: "Usage events of accepted POST /usage batches, by outcome: recorded, duplicate (same event_id and content), conflict (same event_id, other content)",
    kind: Kind::Counter,
    unit: "Count",
    labels: &["status"],
};

pub static EVENTS_UNPRICED: Family = Family {
    name: "meter_events_unpriced_total",
    help: "Recorded usage events without a price in force (re-priced later by the aggregation)",
    kind: Kind::Counter,
    unit: "Count",
    labels: &[],
};

pub static INVOICES_CREATED: Family = Family {
    name: "meter_invoices_created_total",
    help: "Invoices the aggregation created (ended periods closed)",
    kind: Kind::Counter,
    unit: "Count",
    labels: &[],
};

pub static HOLDS_EXPIRED: Family = Family {
    name: "meter_holds_expired_total",
    help: "Reservations the aggregation expired (held past their TTL, their holds returned)",
    kind: Kind::Counter,
    unit: "Count",
    labels: &[],
};

pub static OUTBOX_BACKLOG: Family = Family {
    name: "meter_outbox_backlog",
    help: "Alerts and invoices not yet published, after the last aggregation pass (at most 1000 counted per kind)",
    kind: Kind::Gauge,
    unit: "Count",
    labels: &["kind"],
};

pub static OUTBOX_OLDEST_AGE: Family = Family {
    name: "meter_outbox_oldest_age_seconds",
    help: "Age of the oldest alert or invoice not yet published, after the last aggregation pass (0 when none)",
    kind: Kind::Gauge,
    unit: "Seconds",
    labels: &[],
};

/// Every family, in the order they are rendered.
pub static FAMILIES: [&Family; 8] = [
    &CHECKS,
    &CHECK_DENIALS,
    &EVENTS,
    &EVENTS_UNPRICED,
    &INVOICES_CREATED,
    &HOLDS_EXPIRED,
    &OUTBOX_BACKLOG,
    &OUTBOX_OLDEST_AGE,
];

/// How many unpublished alerts (and invoices) the backlog gauge reads at most.
pub const BACKLOG_SCAN: usize = 1000;

/// One series: a family and the values of its labels, in the family's label order.
type Key = (&'static str, Vec<String>);

#[derive(Default)]
struct Series {
    value: AtomicU64,
    /// A counter's value at the last [`Registry::take_changes`].
    flushed: AtomicU64,
    /// A gauge set since the last [`Registry::take_changes`].
    dirty: AtomicBool,
}

/// One value of one series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    pub family: &'static Family,
    /// `(label name, value)` in the family's label order.
    pub labels: Vec<(&'static str, String)>,
    pub value: u64,
}

/// Labelled counters and gauges (atomics; the map is locked only to add a new series).
#[derive(Default)]
pub struct Registry {
    series: RwLock<BTreeMap<Key, Arc<Series>>>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    fn series(&self, family: &'static Family, labels: &[&str]) -> Arc<Series> {
        debug_assert_eq!(family.labels.len(), labels.len(), "{}", family.name);
        debug_assert!(
            FAMILIES.contains(&family),
            "{} is not in FAMILIES",
            family.name
        );
        let key: Key = (
            family.name,
            labels.iter().map(|l| (*l).to_owned()).collect(),
        );
        if let Some(s) = self
            .series
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return s.clone();
        }
        self.series
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key)
            .or_default()
            .clone()
    }

    /// Adds `n` to a counter.
    pub fn add(&self, family: &'static Family, labels: &[&str], n: u64) {
        debug_assert_eq!(family.kind, Kind::Counter);
        if n > 0 {
            self.series(family, labels)
                .value
                .fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Sets a gauge.
    pub fn set(&self, family: &'static Family, labels: &[&str], value: u64) {
        debug_assert_eq!(family.kind, Kind::Gauge);
        let s = self.series(family, labels);
        s.value.store(value, Ordering::Relaxed);
        s.dirty.store(true, Ordering::Release);
    }

    /// The current value of every series (counters since the process started).
    pub fn snapshot(&self) -> Vec<Sample> {
        self.collect(|_, s| Some(s.value.load(Ordering::Relaxed)))
    }

    /// What changed since the last call: each counter's increase (when not zero) and each
    /// gauge set meanwhile. For the EMF flush, whose values CloudWatch adds up.
    pub fn take_changes(&self) -> Vec<Sample> {
        self.collect(|family, s| match family.kind {
            Kind::Counter => {
                let now = s.value.load(Ordering::Relaxed);
                let before = s.flushed.swap(now, Ordering::Relaxed);
                (now > before).then(|| now - before)
            }
            Kind::Gauge => s
                .dirty
                .swap(false, Ordering::Acquire)
                .then(|| s.value.load(Ordering::Relaxed)),
        })
    }

    fn collect(&self, value: impl Fn(&'static Family, &Series) -> Option<u64>) -> Vec<Sample> {
        let series = self.series.read().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        for family in FAMILIES {
            for ((name, labels), s) in series.range((family.name, Vec::new())..) {
                if *name != family.name {
                    break;
                }
                if let Some(v) = value(family, s) {
                    out.push(Sample {
                        family,
                        labels: family.labels.iter().copied().zip(labels.clone()).collect(),
                        value: v,
                    });
                }
            }
        }
        out
    }
}

static GLOBAL: LazyLock<Registry> = LazyLock::new(Registry::new);

/// The process-wide registry the hooks report into.
pub fn global() -> &'static Registry {
    &GLOBAL
}

// ------------------------------------------------------------------ hooks

/// Counts one POST /check answer: allowed, denied by a limit (and by which metric), or
/// refused for an inactive subscription. Other errors (bad input, store) are not
/// decisions and are not counted.
pub fn observe_check(result: &Result<CheckOutcome, Error>) {
    let r = global();
    match result {
        Ok(CheckOutcome::Allowed(_)) => r.add(&CHECKS, &["allowed"], 1),
        Ok(CheckOutcome::Denied(d)) => {
            r.add(&CHECKS, &["denied"], 1);
            r.add(&CHECK_DENIALS, &[&d.metric.to_string()], 1);
        }
        Err(Error::SubscriptionInactive { .. }) => r.add(&CHECKS, &["inactive"], 1),
        Err(_) => {}
    }
}

/// Counts the events of one accepted POST /usage batch by their outcome, and the recorded
/// ones without a price.
pub fn observe_ingest(result: &Result<IngestReport, Error>) {
    let Ok(report) = result else { return };
    let r = global();
    for event in &report.events {
        let status = event.status();
        let name = match status {
            EventStatus::Recorded => "recorded",
            EventStatus::Duplicate => "duplicate",
            EventStatus::Conflict => "conflict",
        };
        r.add(&EVENTS, &[name], 1);
        if status == EventStatus::Recorded && !event.priced() {
            r.add(&EVENTS_UNPRICED, &[], 1);
        }
    }
}

/// The outbox after a pass: unpublished alerts and invoices (each counted up to
/// [`BACKLOG_SCAN`]) and the age of the oldest, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backlog {
    pub alerts: usize,
    pub invoices: usize,
    pub oldest_age_seconds: u64,
}

/// Reads the outbox (the `outbox` index in DynamoDB; oldest first in both stores).
pub async fn outbox_backlog(
    store: &dyn Store,
    now: DateTime<Utc>,
) -> Result<Backlog, crate::store::StoreError> {
    let alerts = store.unpublished_alerts(BACKLOG_SCAN).await?;
    let invoices = store.unpublished_invoices(BACKLOG_SCAN).await?;
    let oldest = alerts
        .iter()
        .map(|a| a.created_at)
        .chain(invoices.iter().map(|i| i.created_at))
        .min();
    Ok(Backlog {
        alerts: alerts.len(),
        invoices: invoices.len(),
        oldest_age_seconds: oldest.map_or(0, |t| (now - t).num_seconds().max(0) as u64),
    })
}

/// Counts what an aggregation pass did and measures the outbox it left. A failed outbox
/// read is logged and leaves the gauges as they were.
pub async fn observe_aggregation(store: &dyn Store, report: &AggregateReport, now: DateTime<Utc>) {
    let r = global();
    r.add(&INVOICES_CREATED, &[], report.invoices_created as u64);
    r.add(&HOLDS_EXPIRED, &[], report.expired_reservations as u64);
    match outbox_backlog(store, now).await {
        Ok(b) => {
            r.set(&OUTBOX_BACKLOG, &["alert"], b.alerts as u64);
            r.set(&OUTBOX_BACKLOG, &["invoice"], b.invoices as u64);
            r.set(&OUTBOX_OLDEST_AGE, &[], b.oldest_age_seconds);
        }
        Err(e) => tracing::warn!(error = %e, "could not measure the outbox backlog"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_add_per_label_set_and_changes_are_taken_once() {
        let r = Registry::new();
        r.add(&CHECKS, &["allowed"], 2);
        r.add(&CHECKS, &["denied"], 1);
        r.add(&CHECKS, &["allowed"], 1);
        r.add(&EVENTS_UNPRICED, &[], 0);
        let snap = r.snapshot();
        assert_eq!(snap.len(), 2, "{snap:?}");
        assert_eq!(snap[0].labels, vec![("outcome", "allowed".to_owned())]);
        assert_eq!(snap[0].value, 3);
        assert_eq!(snap[1].value, 1);

        assert_eq!(r.take_changes().len(), 2);
        assert!(r.take_changes().is_empty(), "nothing changed since");
        r.add(&CHECKS, &["allowed"], 5);
        let changes = r.take_changes();
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].value, 5, "the increase, not the total");
        assert_eq!(r.snapshot()[0].value, 8, "totals are kept for Prometheus");
    }

    #[test]
    fn a_gauge_is_a_change_only_when_set_since_the_last_take() {
        let r = Registry::new();
        r.set(&OUTBOX_OLDEST_AGE, &[], 120);
        assert_eq!(r.take_changes()[0].value, 120);
        assert!(r.take_changes().is_empty());
        r.set(&OUTBOX_OLDEST_AGE, &[], 0);
        assert_eq!(r.take_changes()[0].value, 0, "a gauge set to 0 is reported");
    }

    #[test]
    fn families_have_unique_names_in_prometheus_form() {
        let mut names: Vec<&str> = FAMILIES.iter().map(|f| f.name).collect();
        for n in &names {
            assert!(n.starts_with("meter_"));
            assert!(n.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{n}");
        }
        for f in FAMILIES {
            assert_eq!(
                f.kind == Kind::Counter,
                f.name.ends_with("_total"),
                "{}",
                f.name
            );
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), FAMILIES.len());
    }
}
