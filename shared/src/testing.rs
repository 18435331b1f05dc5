//! Fixtures shared by the tests (cargo feature `testing`; always built for meter-core's own
//! unit tests): ids, instants and decimals written as literals, one gemini user's March
//! 2025 as sample records, a clock a test sets by hand, and fresh SQLite stores in
//! temporary directories, empty or bootstrapped like a first start of `meter serve`.
//!
//! The samples are deliberately plain: a test changes what it is about with struct update
//! syntax (`UsageEvent { estimated: true, ..event(…) }`) so the difference is visible.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, TimeZone, Utc};
use rust_decimal::Decimal;

use crate::domain::{
    Alert, EventId, ModelId, PlanName, ProviderId, Reservation, ReservationStatus, Role, Severity,
    Subscription, SubscriptionStatus, TenantId, UsageEvent, UserId,
};
use crate::periods::{Anchor, BillingCycle, Period};
use crate::service::Clock;
use crate::store::Store;
use crate::usage::{Tally, UsageCounts};

// ---- ids, instants, amounts ------------------------------------------------------------

/// The tenant of store-level tests.
pub fn tenant() -> TenantId {
    TenantId::parse("acme").unwrap()
}

/// The tenant a first start bootstraps (`meter serve`, the CLI's `--tenant` default).
pub fn default_tenant() -> TenantId {
    TenantId::parse("default").unwrap()
}

pub fn user(name: &str) -> UserId {
    UserId::parse(name).unwrap()
}

pub fn provider(name: &str) -> ProviderId {
    ProviderId::parse(name).unwrap()
}

pub fn model(name: &str) -> ModelId {
    ModelId::parse(name).unwrap()
}

/// `y-m-d h:00:00` UTC.
pub fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
}

/// An RFC 3339 instant, e.g. `"2025-03-20T12:00:00Z"`.
pub fn instant(rfc3339: &str) -> DateTime<Utc> {
    rfc3339.parse().unwrap()
}

/// The exact decimal written in `s`, plain or scientific (`"2.5e-6"`), never through a float.
pub fn dec(s: &str) -> Decimal {
    s.parse().or_else(|_| Decimal::from_scientific(s)).unwrap()
}

/// The period start of the samples: 2025-03-01.
pub fn march() -> DateTime<Utc> {
    at(2025, 3, 1, 0)
}

/// The token counts of one call: `input` prompt tokens of which `cached` are cache reads
/// and `cache_write` cache writes, `output` completion tokens of which `reasoning` are
/// reasoning tokens.
pub fn counts(
    input: u64,
    cached: u64,
    cache_write: u64,
    output: u64,
    reasoning: u64,
) -> UsageCounts {
    UsageCounts {
        input_tokens: input,
        cached_input_tokens: cached,
        cache_write_tokens: cache_write,
        output_tokens: output,
        reasoning_tokens: reasoning,
        ..UsageCounts::default()
    }
}

// ---- sample records ----------------------------------------------------------------------

/// A priced gemini-2.5-flash call of `user` on 2025-03-10 12:00 (period March), with
/// `tokens` input tokens costing `cost` dollars; status 200, no latency, no reservation.
pub fn event(tenant: &TenantId, user: &UserId, id: &str, tokens: u64, cost: &str) -> UsageEvent {
    UsageEvent {
        tenant: tenant.clone(),
        user: user.clone(),
        event_id: EventId::parse(id).unwrap(),
        fingerprint: format!("fp-{id}-{tokens}-{cost}"),
        provider: provider("gemini"),
        model: Some(model("gemini-2.5-flash")),
        timestamp: at(2025, 3, 10, 12),
        period_start: march(),
        counts: UsageCounts {
            input_tokens: tokens,
            ..UsageCounts::default()
        },
        cost_usd: Some(dec(cost)),
        price_version: Some("gemini/gemini-2.5-flash@2025-01-01".into()),
        estimated: false,
        endpoint: None,
        status_code: Some(200),
        latency_ms: None,
        reservation_id: None,
        metadata: None,
        recorded_at: at(2025, 3, 10, 12),
        org_id: None,
        team_id: None,
        payer: None,
    }
}

/// A held reservation of one gemini call with `tokens` tokens and `cost` dollars in
/// March, made 2025-03-10 12:00, expiring at `expires`.
pub fn reservation(
    tenant: &TenantId,
    user: &UserId,
    tokens: u64,
    cost: &str,
    expires: DateTime<Utc>,
) -> Reservation {
    Reservation {
        id: Reservation::new_id(user),
        tenant: tenant.clone(),
        user: user.clone(),
        provider: provider("gemini"),
        period_start: march(),
        held: Tally {
            calls: 1,
            tokens,
            cost_usd: dec(cost),
        },
        status: ReservationStatus::Held,
        created_at: at(2025, 3, 10, 12),
        expires_at: expires,
        budget_holds: Vec::new(),
    }
}

/// An unread, unpublished 80 % alert of March for `key`, created `minute` minutes after
/// 2025-03-10 12:00, with a fresh id.
pub fn alert(tenant: &TenantId, user: &UserId, key: &str, minute: i64) -> Alert {
    Alert {
        id: uuid::Uuid::new_v4().to_string(),
        tenant: tenant.clone(),
        user: user.clone(),
        period_start: march(),
        key: key.into(),
        metric: Some("calls:gemini".into()),
        threshold: Some(80),
        severity: Severity::Info,
        title: "API usage notice - gemini".into(),
        message: "You have used 80 of 100 gemini calls".into(),
        created_at: at(2025, 3, 10, 12) + Duration::minutes(minute),
        read: false,
        published: false,
        org: None,
        budget: None,
    }
}

/// An active, auto-renewing monthly `pro` subscription (version 1) started 2025-01-`anchor_day`
/// on its anniversary, in its March period.
pub fn subscription(tenant: &TenantId, user: &UserId, anchor_day: u32) -> Subscription {
    Subscription {
        tenant: tenant.clone(),
        user: user.clone(),
        plan: PlanName::parse("pro").unwrap(),
        cycle: BillingCycle::Monthly,
        anchor: Anchor::Anniversary,
        started_at: at(2025, 1, anchor_day, 0),
        current_period: Period {
            start: at(2025, 3, anchor_day, 0),
            end: at(2025, 4, anchor_day, 0),
        },
        status: SubscriptionStatus::Active,
        auto_renew: true,
        pending_plan: None,
        prorations: Vec::new(),
        history: Vec::new(),
        version: 1,
        updated_at: at(2025, 1, anchor_day, 0),
    }
}

// ---- a clock -------------------------------------------------------------------------------

/// A clock the test moves by hand; [`TestClock::clock`] is the service's [`Clock`] reading it.
#[derive(Clone)]
pub struct TestClock(Arc<Mutex<DateTime<Utc>>>);

impl TestClock {
    pub fn new(now: DateTime<Utc>) -> Self {
        Self(Arc::new(Mutex::new(now)))
    }

    /// A clock standing at the RFC 3339 instant `now`.
    pub fn at(now: &str) -> Self {
        Self::new(instant(now))
    }

    pub fn set(&self, now: DateTime<Utc>) {
        *self.0.lock().unwrap() = now;
    }

    pub fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }

    /// The service clock: every read answers the instant set last.
    pub fn clock(&self) -> Clock {
        let this = self.clone();
        Arc::new(move || this.now())
    }
}

// ---- stores ----------------------------------------------------------------------------

/// The keys of a bootstrapped test store.
#[derive(Debug, Clone)]
pub struct Keys {
    pub tenant: TenantId,
    pub admin: String,
    pub service: String,
}

impl Keys {
    /// Fresh random keys of the [`default_tenant`].
    pub fn generate() -> Self {
        let (tenant, now) = (default_tenant(), Utc::now());
        Self {
            admin: crate::auth::generate_key(&tenant, Role::Admin, now).secret,
            service: crate::auth::generate_key(&tenant, Role::Service, now).secret,
            tenant,
        }
    }
}

/// What a first start does (the tenant with the default plans, the shipped catalog,
/// `keys.admin` as its admin key), plus `keys.service` as a service key.
pub async fn bootstrap(store: &dyn Store, keys: &Keys) {
    let now = Utc::now();
    crate::service::bootstrap::bootstrap(store, &keys.tenant, Some(&keys.admin), now)
        .await
        .expect("bootstrap");
    store
        .put_api_key(&crate::auth::record_for(
            &keys.service,
            &keys.tenant,
            Role::Service,
            now,
        ))
        .await
        .expect("store the service key");
}

/// A fresh, empty SQLite store in its own temporary directory (removed when the
/// directory is dropped; drop the store first).
#[cfg(feature = "sqlite")]
pub fn sqlite_store() -> (tempfile::TempDir, crate::store::sqlite::SqliteStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store =
        crate::store::sqlite::SqliteStore::open(&dir.path().join("meter.db")).expect("open");
    (dir, store)
}

/// A fresh SQLite store bootstrapped with `keys` (see [`bootstrap`]).
#[cfg(feature = "sqlite")]
pub async fn bootstrapped_sqlite_store(keys: &Keys) -> (tempfile::TempDir, Arc<dyn Store>) {
    let (dir, store) = sqlite_store();
    let store: Arc<dyn Store> = Arc::new(store);
    bootstrap(store.as_ref(), keys).await;
    (dir, store)
}
