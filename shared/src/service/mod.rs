//! The application service: the hot path (check, reservations, usage ingest, alerts), the
//! reads, the admin writes and the aggregation, over the storage and alert ports.
//!
//! It speaks its own language: inputs are the service's types (validated by the http
//! layer or the CLI), results are typed and `Serialize`, failures are one [`Error`]. It
//! knows no HTTP and no AWS: `http/` turns results into JSON answers, `config` wires the
//! adapters.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Utc};

use crate::alerts::AlertPublisher;
use crate::domain::{ApiKeyRecord, PlanName, Role, Subscription, TenantId, UserId};
use crate::limits::Plan;
use crate::periods::Period;
use crate::pricing::{Catalog, PriceVersion};
use crate::store::Store;

pub mod aggregate;
pub mod alert_resolved;
pub mod bootstrap;
pub mod budget_alerts;
pub mod budgets;
pub mod check;
mod check_view;
mod credit_resolved;
pub mod dashboard;
mod enforce;
mod erasure_holds;
pub mod error;
mod grant_upkeep;
// Issue 19: wallet alarms after a check's hold.
mod hold_alarms;
mod holds;
pub mod ingest;
mod ingest_view;
mod late_draws;
pub mod org_alerts;
pub mod org_billing;
mod org_cancelled;
pub mod org_reads;
mod org_wallets;
pub mod orgs;
pub mod outbox;
pub mod prepaid;
pub mod privacy;
pub mod reads;
// Issue 18: budget alerts of a re-priced cost.
mod repriced_alerts;
// Issue 19: unpriced events draw from their payer's wallet once re-priced.
mod repricing;
pub mod subscriptions;
pub mod tenant;
pub mod tenant_orgs;
pub mod tokens;
pub mod wallet_views;
pub mod wallets;

pub use crate::subscriptions::{schedule_of, SubscriptionChange};
pub use check::{CheckAllowed, CheckOutcome, CheckRequest, Denial, Units};
pub use error::{Error, EventErrors, FieldError, Result};
pub use ingest::{IngestReport, NewEvent};

/// The current time; replaceable in tests and for `meter aggregate --at`.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// How long cached keys, plans and catalogs are trusted. A plan or price change made
/// through this process is seen at once; other processes see it within this time.
pub const CACHE_TTL: StdDuration = StdDuration::from_secs(30);

/// How long an unknown key is remembered as unknown: a burst of requests with the same
/// well-formed fake key costs one store read, and a key created meanwhile works after at
/// most this long.
pub const FAILED_KEY_TTL: StdDuration = StdDuration::from_secs(5);

/// How long this process remembers whether a user's own scope holds budgets (issue 18,
/// service::check_view): a check or an event batch naming no org reads the state alone
/// for a user remembered without, and the user's budgets with the state (one request)
/// for any other. Only a cost hint: what is read decides.
pub const BUDGET_USERS_TTL: StdDuration = StdDuration::from_secs(3600);

/// Most entries of one cache; past it, expired entries are dropped, and if that is not
/// enough, all of them (a flood of distinct keys cannot grow memory).
const CACHE_ENTRIES: usize = 10_000;

/// Who is calling: the tenant and role of a valid API key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub tenant: TenantId,
    pub role: Role,
    /// The key's public id (`key_…`, see [`crate::auth::key_id`]), for logs.
    pub key_id: String,
}

impl Caller {
    pub fn require(&self, role: Role) -> Result<()> {
        if self.role.allows(role) {
            Ok(())
        } else {
            Err(Error::Forbidden)
        }
    }
}

struct Cached<T> {
    at: Instant,
    value: Arc<T>,
}

/// A small time-bounded, size-bounded cache.
struct TtlCache<K, V> {
    ttl: StdDuration,
    entries: Mutex<HashMap<K, Cached<V>>>,
}

impl<K: std::hash::Hash + Eq + Clone, V> TtlCache<K, V> {
    fn new(ttl: StdDuration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, key: &K) -> Option<Arc<V>> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(key)
            .filter(|c| c.at.elapsed() < self.ttl)
            .map(|c| c.value.clone())
    }

    fn put(&self, key: K, value: V) -> Arc<V> {
        let value = Arc::new(value);
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= CACHE_ENTRIES {
            entries.retain(|_, c| c.at.elapsed() < self.ttl);
            if entries.len() >= CACHE_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(
            key,
            Cached {
                at: Instant::now(),
                value: value.clone(),
            },
        );
        value
    }

    fn forget(&self, key: &K) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }

    fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

/// Serializes this process's writes for one user (striped by a hash of tenant and user).
///
/// Correctness never depends on it: every limit comparison and every once-only rule is
/// enforced inside the store's own atomic write, so a fleet of processes is safe. The gate
/// only keeps one process's concurrent writes for the same user from racing each other in
/// the store (fewer DynamoDB transaction conflicts and retries on the user's hot item), and
/// it keeps a single server correct on an emulator whose writes are not atomic.
struct UserGates {
    stripes: Vec<tokio::sync::Mutex<()>>,
}

impl UserGates {
    fn new(n: usize) -> Self {
        Self {
            stripes: (0..n).map(|_| tokio::sync::Mutex::new(())).collect(),
        }
    }

    async fn lock(&self, tenant: &TenantId, user: &UserId) -> tokio::sync::MutexGuard<'_, ()> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (tenant, user).hash(&mut h);
        let i = (h.finish() % self.stripes.len() as u64) as usize;
        self.stripes[i].lock().await
    }
}

/// The service: ports, caches and the clock.
pub struct Meter {
    pub store: Arc<dyn Store>,
    pub publisher: Arc<dyn AlertPublisher>,
    clock: Clock,
    keys: TtlCache<String, ApiKeyRecord>,
    /// Hashes of keys the store did not know, remembered for [`FAILED_KEY_TTL`].
    failed_keys: TtlCache<String, ()>,
    plans: TtlCache<TenantId, Vec<Plan>>,
    catalogs: TtlCache<Option<TenantId>, Catalog>,
    token_keys: TtlCache<TenantId, crate::tokens::TokenKeys>,
    gates: UserGates,
    /// Issue 18: whether a user's own scope was seen holding budgets, by a check or an
    /// event batch (service::check_view).
    own_budgets: TtlCache<(TenantId, UserId), bool>,
}

impl Meter {
    pub fn new(store: Arc<dyn Store>, publisher: Arc<dyn AlertPublisher>) -> Self {
        Self::with_clock(store, publisher, Arc::new(Utc::now))
    }

    pub fn with_clock(
        store: Arc<dyn Store>,
        publisher: Arc<dyn AlertPublisher>,
        clock: Clock,
    ) -> Self {
        Self {
            store,
            publisher,
            clock,
            keys: TtlCache::new(CACHE_TTL),
            failed_keys: TtlCache::new(FAILED_KEY_TTL),
            plans: TtlCache::new(CACHE_TTL),
            catalogs: TtlCache::new(CACHE_TTL),
            token_keys: TtlCache::new(CACHE_TTL),
            gates: UserGates::new(256),
            own_budgets: TtlCache::new(BUDGET_USERS_TTL),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    /// Holds this process's write gate for one user (see [`UserGates`]).
    pub(crate) async fn gate(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> tokio::sync::MutexGuard<'_, ()> {
        self.gates.lock(tenant, user).await
    }

    /// The caller a bearer key belongs to, or 401.
    pub async fn authenticate(&self, secret: &str) -> Result<Caller> {
        if !crate::auth::plausible_key(secret) {
            return Err(Error::Unauthorized);
        }
        let hash = crate::auth::hash_key(secret);
        let record = match self.keys.get(&hash) {
            Some(r) => r,
            None if self.failed_keys.get(&hash).is_some() => return Err(Error::Unauthorized),
            None => match self.store.get_api_key(&hash).await? {
                Some(r) => self.keys.put(hash, r),
                None => {
                    self.failed_keys.put(hash, ());
                    return Err(Error::Unauthorized);
                }
            },
        };
        Ok(Caller {
            tenant: record.tenant.clone(),
            role: record.role,
            key_id: record.id(),
        })
    }

    /// Forgets every key remembered as unknown (after creating keys in this process).
    pub fn forget_failed_keys(&self) {
        self.failed_keys.clear();
    }

    /// The tenant's plans (cached).
    pub async fn plans(&self, tenant: &TenantId) -> Result<Arc<Vec<Plan>>> {
        if let Some(p) = self.plans.get(tenant) {
            return Ok(p);
        }
        let plans = self.store.list_plans(tenant).await?;
        Ok(self.plans.put(tenant.clone(), plans))
    }

    /// Drops cached plans of a tenant after a change made through this process.
    pub fn forget_plans(&self, tenant: &TenantId) {
        self.plans.forget(tenant);
    }

    /// The plan a user is on: the subscription's, or the tenant's `free` plan.
    pub async fn plan_of(&self, tenant: &TenantId, sub: Option<&Subscription>) -> Result<Plan> {
        let name = sub.map_or_else(PlanName::free, |s| s.plan.clone());
        let plans = self.plans(tenant).await?;
        plans
            .iter()
            .find(|p| p.name == name)
            .cloned()
            .ok_or_else(|| {
                tracing::error!(tenant = %tenant, plan = %name, "the user's plan does not exist");
                Error::NotFound("plan")
            })
    }

    async fn stored_catalog(&self, scope: Option<&TenantId>) -> Result<Arc<Catalog>> {
        let key = scope.cloned();
        if let Some(c) = self.catalogs.get(&key) {
            return Ok(c);
        }
        let raw = self.store.list_price_versions(scope).await?;
        let mut versions = Vec::with_capacity(raw.len());
        for v in raw {
            match serde_json::from_value::<PriceVersion>(v) {
                Ok(v) => versions.push(v),
                Err(e) => {
                    tracing::error!(error = %e, "skipping a stored price version that does not parse")
                }
            }
        }
        let catalog = Catalog::from_versions(versions).map_err(|e| {
            tracing::error!(error = %e, "stored price catalog is inconsistent");
            Error::Internal
        })?;
        Ok(self.catalogs.put(key, catalog))
    }

    /// The catalog that prices a tenant's events: its own versions over the shared ones.
    pub async fn catalog(&self, tenant: &TenantId) -> Result<Arc<Catalog>> {
        let shared = self.stored_catalog(None).await?;
        let own = self.stored_catalog(Some(tenant)).await?;
        if own.is_empty() {
            return Ok(shared);
        }
        own.merged_over(&shared).map(Arc::new).map_err(|e| {
            tracing::error!(error = %e, "tenant catalog does not merge");
            Error::Internal
        })
    }

    /// Drops cached catalogs after a price change made through this process.
    pub fn forget_catalog(&self, tenant: Option<&TenantId>) {
        self.catalogs.forget(&tenant.cloned());
    }
}

/// The limit period containing `at` for a user.
pub fn period_at(sub: Option<&Subscription>, at: DateTime<Utc>) -> Result<Period> {
    schedule_of(sub)
        .period_containing(at)
        .map_err(|e| Error::invalid("timestamp", "out_of_range", e.to_string()))
}

/// The start of the period containing `at`, for store reads that pick a period
/// (an instant outside the calendar's range falls back to `at` itself and reads zeros).
pub fn period_start_at(sub: Option<&Subscription>, at: DateTime<Utc>) -> DateTime<Utc> {
    schedule_of(sub)
        .period_containing(at)
        .map_or(at, |p| p.start)
}
