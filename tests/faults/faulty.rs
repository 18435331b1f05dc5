//! Fault injection around the storage and alert ports (test-only).
//!
//! [`FaultyStore`] wraps any [`Store`] and delegates every port method, except that a
//! [`Fault`] makes chosen calls fail with `StoreError::Unavailable`:
//! - [`Timing::Before`]: the call fails without reaching the store (nothing written);
//! - [`Timing::After`]: the call reaches the store, which does its work, and then the
//!   caller gets the error anyway (a timeout after commit: written, answer lost).
//!
//! A fault picks the n-th matching call (once), a seeded random fraction of the matching
//! calls, or every one (an outage); `on(&[…])` limits it to some port methods. [`FaultyPublisher`] does the
//! same for the alert port and keeps what it accepted.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use meter_core::alerts::{AlertPublisher, OutboxMessage, PublishError};
use meter_core::domain::{
    Alert, ApiKeyRecord, EventId, Invoice, PlanName, Reservation, Subscription, TenantId,
    UsageEvent, UserId,
};
use meter_core::limits::Plan;
use meter_core::store::{
    AlertStore, BillingState, CatalogStore, CloseOutcome, DailyUsage, DirectoryStore,
    EraseProgress, Guard, InvoiceStore, Page, PeriodPicker, PrivacyStore, RecordOutcome,
    ReleaseOutcome, ReserveOutcome, Store, StoreError, StoreResult, SubscriptionStore, TenantStore,
    TenantUser, TokenKeyStore, UsageStore, UserRecords, UserRef, UserUsage,
};
use meter_core::tokens::TokenKeys;
use meter_core::usage::PeriodUsage;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use rust_decimal::Decimal;

/// When an injected failure strikes, relative to the real call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timing {
    /// The call fails without reaching the store.
    Before,
    /// The store does the work; the caller still gets the error.
    After,
}

#[derive(Debug, Clone)]
enum Pick {
    /// The `n`-th matching call (1-based, counted from when the fault is set), once.
    Nth(usize, Timing),
    /// Each matching call with this probability, Before or After at even odds.
    Fraction(f64),
    /// Every matching call (an outage).
    Every(Timing),
}

/// Which calls fail, and how.
#[derive(Debug, Clone)]
pub struct Fault {
    pick: Pick,
    only: Option<BTreeSet<&'static str>>,
    seed: u64,
}

impl Fault {
    /// Fails the `n`-th call (1-based) from now on, once.
    pub fn nth(n: usize, timing: Timing) -> Self {
        Self {
            pick: Pick::Nth(n, timing),
            only: None,
            seed: 0,
        }
    }

    /// Fails each call with probability `fraction`, drawn from a generator seeded with `seed`.
    pub fn fraction(fraction: f64, seed: u64) -> Self {
        Self {
            pick: Pick::Fraction(fraction),
            only: None,
            seed,
        }
    }

    /// Fails every call until healed (an outage).
    pub fn every(timing: Timing) -> Self {
        Self {
            pick: Pick::Every(timing),
            only: None,
            seed: 0,
        }
    }

    /// Only calls of these port methods count and fail.
    pub fn on(mut self, ops: &[&'static str]) -> Self {
        self.only = Some(ops.iter().copied().collect());
        self
    }
}

/// One failure that was injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Injected {
    pub op: &'static str,
    pub timing: Timing,
}

#[derive(Debug)]
struct State {
    fault: Option<Fault>,
    matched: usize,
    rng: StdRng,
    calls: Vec<&'static str>,
    injected: Vec<Injected>,
    delays: std::collections::BTreeMap<&'static str, std::time::Duration>,
}

/// The decisions shared by both wrappers: which call fails, and a log of calls and faults.
#[derive(Debug)]
pub struct Faults {
    state: Mutex<State>,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                fault: None,
                matched: 0,
                rng: StdRng::seed_from_u64(0),
                calls: Vec::new(),
                injected: Vec::new(),
                delays: std::collections::BTreeMap::new(),
            }),
        }
    }
}

impl Faults {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Arms `fault` (replacing any other); the log of calls and injections starts afresh.
    pub fn inject(&self, fault: Fault) {
        let mut s = self.lock();
        s.rng = StdRng::seed_from_u64(fault.seed);
        s.fault = Some(fault);
        s.matched = 0;
        s.calls.clear();
        s.injected.clear();
    }

    /// No more failures.
    pub fn heal(&self) {
        self.lock().fault = None;
    }

    /// Makes every call of `op` take `delay` longer (a slow store).
    pub fn slow(&self, op: &'static str, delay: std::time::Duration) {
        self.lock().delays.insert(op, delay);
    }

    fn delay_of(&self, op: &'static str) -> Option<std::time::Duration> {
        self.lock().delays.get(op).copied()
    }

    /// Every call since the last `inject` or `take_calls`, in order.
    pub fn take_calls(&self) -> Vec<&'static str> {
        std::mem::take(&mut self.lock().calls)
    }

    /// The failures injected since the last `inject`.
    pub fn injected(&self) -> Vec<Injected> {
        self.lock().injected.clone()
    }

    /// Whether the call `op` fails, and when.
    fn decide(&self, op: &'static str) -> Option<Timing> {
        let mut guard = self.lock();
        let s = &mut *guard;
        s.calls.push(op);
        let fault = s.fault.as_ref()?;
        if fault.only.as_ref().is_some_and(|only| !only.contains(op)) {
            return None;
        }
        s.matched += 1;
        let timing = match fault.pick {
            Pick::Nth(n, timing) if s.matched == n => {
                s.fault = None;
                timing
            }
            Pick::Nth(..) => return None,
            Pick::Fraction(p) if s.rng.random_bool(p) => {
                if s.rng.random_bool(0.5) {
                    Timing::Before
                } else {
                    Timing::After
                }
            }
            Pick::Fraction(_) => return None,
            Pick::Every(timing) => timing,
        };
        s.injected.push(Injected { op, timing });
        Some(timing)
    }
}

/// A store that fails the calls its [`Faults`] pick.
pub struct FaultyStore {
    inner: Arc<dyn Store>,
    pub faults: Faults,
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn Store>) -> Self {
        Self {
            inner,
            faults: Faults::default(),
        }
    }

    /// Runs `work` (a not yet started call of the inner store) unless a fault says otherwise.
    async fn call<T>(
        &self,
        op: &'static str,
        work: impl Future<Output = StoreResult<T>>,
    ) -> StoreResult<T> {
        if let Some(delay) = self.faults.delay_of(op) {
            tokio::time::sleep(delay).await;
        }
        match self.faults.decide(op) {
            None => work.await,
            Some(Timing::Before) => Err(injected(op, Timing::Before)),
            Some(Timing::After) => {
                // The store does the work; only the answer is lost.
                let _ = work.await;
                Err(injected(op, Timing::After))
            }
        }
    }
}

fn injected(op: &str, timing: Timing) -> StoreError {
    StoreError::Unavailable(format!("injected fault: {op} ({timing:?})"))
}

/// An alert port that fails the publishes its [`Faults`] pick (as `publish` calls) and
/// keeps every message it accepted, in order.
#[derive(Debug, Default)]
pub struct FaultyPublisher {
    pub faults: Faults,
    accepted: Mutex<Vec<OutboxMessage>>,
}

impl FaultyPublisher {
    /// The ids of the accepted messages of `kind` (`alert`, `invoice.created`), in order.
    pub fn accepted(&self, kind: &str) -> Vec<String> {
        self.accepted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .filter(|m| m.kind == kind)
            .map(|m| m.id.clone())
            .collect()
    }
}

#[async_trait]
impl AlertPublisher for FaultyPublisher {
    async fn publish(&self, message: &OutboxMessage) -> Result<(), PublishError> {
        // `faults.slow("publish", d)`: a slow alert port (SNS under load).
        if let Some(delay) = self.faults.delay_of("publish") {
            tokio::time::sleep(delay).await;
        }
        // A publish either reaches subscribers or not: After means it went out but the
        // port answered with an error (the message will be published again).
        let timing = self.faults.decide("publish");
        if timing != Some(Timing::Before) {
            self.accepted
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(message.clone());
        }
        match timing {
            None => Ok(()),
            Some(t) => Err(PublishError(format!("injected fault: publish ({t:?})"))),
        }
    }
}

#[async_trait]
impl TenantStore for FaultyStore {
    async fn create_tenant_if_absent(
        &self,
        tenant: &TenantId,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        self.call(
            "create_tenant_if_absent",
            self.inner.create_tenant_if_absent(tenant, at),
        )
        .await
    }
    async fn put_api_key(&self, key: &ApiKeyRecord) -> StoreResult<()> {
        self.call("put_api_key", self.inner.put_api_key(key)).await
    }
    async fn list_api_keys(&self, tenant: &TenantId) -> StoreResult<Vec<ApiKeyRecord>> {
        self.call("list_api_keys", self.inner.list_api_keys(tenant))
            .await
    }
    async fn delete_api_key_by_id(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> StoreResult<Option<ApiKeyRecord>> {
        self.call(
            "delete_api_key_by_id",
            self.inner.delete_api_key_by_id(tenant, id),
        )
        .await
    }
    async fn delete_api_key(&self, hash: &str) -> StoreResult<Option<ApiKeyRecord>> {
        self.call("delete_api_key", self.inner.delete_api_key(hash))
            .await
    }
    async fn get_api_key(&self, hash: &str) -> StoreResult<Option<ApiKeyRecord>> {
        self.call("get_api_key", self.inner.get_api_key(hash)).await
    }
}

#[async_trait]
impl CatalogStore for FaultyStore {
    async fn put_plan(&self, tenant: &TenantId, plan: &Plan) -> StoreResult<()> {
        self.call("put_plan", self.inner.put_plan(tenant, plan))
            .await
    }
    async fn get_plan(&self, tenant: &TenantId, name: &PlanName) -> StoreResult<Option<Plan>> {
        self.call("get_plan", self.inner.get_plan(tenant, name))
            .await
    }
    async fn list_plans(&self, tenant: &TenantId) -> StoreResult<Vec<Plan>> {
        self.call("list_plans", self.inner.list_plans(tenant)).await
    }
    async fn put_price_version(
        &self,
        scope: Option<&TenantId>,
        id: &str,
        json: &serde_json::Value,
    ) -> StoreResult<()> {
        self.call(
            "put_price_version",
            self.inner.put_price_version(scope, id, json),
        )
        .await
    }
    async fn list_price_versions(
        &self,
        scope: Option<&TenantId>,
    ) -> StoreResult<Vec<serde_json::Value>> {
        self.call("list_price_versions", self.inner.list_price_versions(scope))
            .await
    }
}

#[async_trait]
impl SubscriptionStore for FaultyStore {
    async fn get_subscription(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> StoreResult<Option<Subscription>> {
        self.call(
            "get_subscription",
            self.inner.get_subscription(tenant, user),
        )
        .await
    }
    async fn put_subscription(
        &self,
        sub: &Subscription,
        expected_version: Option<u64>,
    ) -> StoreResult<()> {
        self.call(
            "put_subscription",
            self.inner.put_subscription(sub, expected_version),
        )
        .await
    }
    async fn list_users(&self, cursor: Option<String>, limit: usize) -> StoreResult<Page<UserRef>> {
        self.call("list_users", self.inner.list_users(cursor, limit))
            .await
    }
}

#[async_trait]
impl UsageStore for FaultyStore {
    async fn get_user_usage(
        &self,
        tenant: &TenantId,
        user: &UserId,
        pick: PeriodPicker<'_>,
    ) -> StoreResult<UserUsage> {
        self.call(
            "get_user_usage",
            self.inner.get_user_usage(tenant, user, pick),
        )
        .await
    }
    async fn get_user_limits(
        &self,
        tenant: &TenantId,
        user: &UserId,
        pick: PeriodPicker<'_>,
    ) -> StoreResult<UserUsage> {
        self.call(
            "get_user_limits",
            self.inner.get_user_limits(tenant, user, pick),
        )
        .await
    }
    async fn get_period_usage(
        &self,
        tenant: &TenantId,
        user: &UserId,
        starts: &[DateTime<Utc>],
    ) -> StoreResult<Vec<PeriodUsage>> {
        self.call(
            "get_period_usage",
            self.inner.get_period_usage(tenant, user, starts),
        )
        .await
    }
    async fn daily_usage(
        &self,
        tenant: &TenantId,
        user: &UserId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> StoreResult<Vec<DailyUsage>> {
        self.call(
            "daily_usage",
            self.inner.daily_usage(tenant, user, from, to),
        )
        .await
    }
    async fn record_events(&self, events: &[UsageEvent]) -> StoreResult<Vec<RecordOutcome>> {
        self.call("record_events", self.inner.record_events(events))
            .await
    }
    async fn get_event(
        &self,
        tenant: &TenantId,
        event_id: &EventId,
    ) -> StoreResult<Option<UsageEvent>> {
        self.call("get_event", self.inner.get_event(tenant, event_id))
            .await
    }
    async fn reserve(
        &self,
        reservation: &Reservation,
        guards: &[Guard],
    ) -> StoreResult<ReserveOutcome> {
        self.call("reserve", self.inner.reserve(reservation, guards))
            .await
    }
    async fn get_reservation(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> StoreResult<Option<Reservation>> {
        self.call("get_reservation", self.inner.get_reservation(tenant, id))
            .await
    }
    async fn release_reservation(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> StoreResult<ReleaseOutcome> {
        self.call(
            "release_reservation",
            self.inner.release_reservation(tenant, id),
        )
        .await
    }
    async fn unpriced_events(
        &self,
        cursor: Option<String>,
        limit: usize,
    ) -> StoreResult<Page<UsageEvent>> {
        self.call("unpriced_events", self.inner.unpriced_events(cursor, limit))
            .await
    }
    async fn price_event(
        &self,
        tenant: &TenantId,
        event_id: &EventId,
        cost: Decimal,
        price_version: &str,
    ) -> StoreResult<bool> {
        self.call(
            "price_event",
            self.inner
                .price_event(tenant, event_id, cost, price_version),
        )
        .await
    }
    async fn expire_reservations(&self, now: DateTime<Utc>, limit: usize) -> StoreResult<usize> {
        self.call(
            "expire_reservations",
            self.inner.expire_reservations(now, limit),
        )
        .await
    }
}

#[async_trait]
impl AlertStore for FaultyStore {
    async fn create_alert_once(&self, alert: &Alert) -> StoreResult<bool> {
        self.call("create_alert_once", self.inner.create_alert_once(alert))
            .await
    }
    async fn list_alerts(
        &self,
        tenant: &TenantId,
        user: &UserId,
        unread_only: bool,
        limit: usize,
    ) -> StoreResult<(Vec<Alert>, u64)> {
        self.call(
            "list_alerts",
            self.inner.list_alerts(tenant, user, unread_only, limit),
        )
        .await
    }
    async fn mark_alert_read(&self, tenant: &TenantId, alert_id: &str) -> StoreResult<bool> {
        self.call(
            "mark_alert_read",
            self.inner.mark_alert_read(tenant, alert_id),
        )
        .await
    }
    async fn unpublished_alerts(&self, limit: usize) -> StoreResult<Vec<Alert>> {
        self.call("unpublished_alerts", self.inner.unpublished_alerts(limit))
            .await
    }
    async fn mark_alert_published(&self, tenant: &TenantId, alert_id: &str) -> StoreResult<()> {
        self.call(
            "mark_alert_published",
            self.inner.mark_alert_published(tenant, alert_id),
        )
        .await
    }
    async fn claim_alert(
        &self,
        tenant: &TenantId,
        alert_id: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> StoreResult<bool> {
        self.call(
            "claim_alert",
            self.inner.claim_alert(tenant, alert_id, now, until),
        )
        .await
    }
    async fn release_alert_claim(
        &self,
        tenant: &TenantId,
        alert_id: &str,
        until: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.call(
            "release_alert_claim",
            self.inner.release_alert_claim(tenant, alert_id, until),
        )
        .await
    }
    async fn rearm_alerts(
        &self,
        tenant: &TenantId,
        user: &UserId,
        period_start: DateTime<Utc>,
        keys: &[String],
    ) -> StoreResult<()> {
        self.call(
            "rearm_alerts",
            self.inner.rearm_alerts(tenant, user, period_start, keys),
        )
        .await
    }
}

#[async_trait]
impl InvoiceStore for FaultyStore {
    async fn put_invoice_once(&self, invoice: &Invoice) -> StoreResult<bool> {
        self.call("put_invoice_once", self.inner.put_invoice_once(invoice))
            .await
    }
    async fn billing_state(
        &self,
        tenant: &TenantId,
        user: &UserId,
        period_start: DateTime<Utc>,
    ) -> StoreResult<BillingState> {
        self.call(
            "billing_state",
            self.inner.billing_state(tenant, user, period_start),
        )
        .await
    }
    async fn close_period(
        &self,
        invoice: &Invoice,
        state: &BillingState,
        billed_to: DateTime<Utc>,
    ) -> StoreResult<CloseOutcome> {
        self.call(
            "close_period",
            self.inner.close_period(invoice, state, billed_to),
        )
        .await
    }
    async fn unpublished_invoices(&self, limit: usize) -> StoreResult<Vec<Invoice>> {
        self.call(
            "unpublished_invoices",
            self.inner.unpublished_invoices(limit),
        )
        .await
    }
    async fn claim_invoice(
        &self,
        invoice: &Invoice,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> StoreResult<bool> {
        self.call(
            "claim_invoice",
            self.inner.claim_invoice(invoice, now, until),
        )
        .await
    }
    async fn release_invoice_claim(
        &self,
        invoice: &Invoice,
        until: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.call(
            "release_invoice_claim",
            self.inner.release_invoice_claim(invoice, until),
        )
        .await
    }
    async fn mark_invoice_published(&self, invoice: &Invoice) -> StoreResult<()> {
        self.call(
            "mark_invoice_published",
            self.inner.mark_invoice_published(invoice),
        )
        .await
    }
    async fn get_job_cursor(&self, job: &str) -> StoreResult<Option<String>> {
        self.call("get_job_cursor", self.inner.get_job_cursor(job))
            .await
    }
    async fn put_job_cursor(&self, job: &str, cursor: Option<&str>) -> StoreResult<()> {
        self.call("put_job_cursor", self.inner.put_job_cursor(job, cursor))
            .await
    }
    async fn list_invoices(&self, tenant: &TenantId, user: &UserId) -> StoreResult<Vec<Invoice>> {
        self.call("list_invoices", self.inner.list_invoices(tenant, user))
            .await
    }
}

#[async_trait]
impl PrivacyStore for FaultyStore {
    async fn user_records(&self, tenant: &TenantId, user: &UserId) -> StoreResult<UserRecords> {
        self.call("user_records", self.inner.user_records(tenant, user))
            .await
    }
    async fn erase_user(
        &self,
        tenant: &TenantId,
        user: &UserId,
        pseudonym: &UserId,
        limit: usize,
    ) -> StoreResult<EraseProgress> {
        self.call(
            "erase_user",
            self.inner.erase_user(tenant, user, pseudonym, limit),
        )
        .await
    }
}

#[async_trait]
impl DirectoryStore for FaultyStore {
    async fn list_tenant_users(
        &self,
        tenant: &TenantId,
        after: Option<&UserId>,
        limit: usize,
        pick: PeriodPicker<'_>,
    ) -> StoreResult<Page<TenantUser>> {
        self.call(
            "list_tenant_users",
            self.inner.list_tenant_users(tenant, after, limit, pick),
        )
        .await
    }
    async fn tenant_alerts(&self, tenant: &TenantId, limit: usize) -> StoreResult<Vec<Alert>> {
        self.call("tenant_alerts", self.inner.tenant_alerts(tenant, limit))
            .await
    }
    async fn get_alert(&self, tenant: &TenantId, alert_id: &str) -> StoreResult<Option<Alert>> {
        self.call("get_alert", self.inner.get_alert(tenant, alert_id))
            .await
    }
}

#[async_trait]
impl TokenKeyStore for FaultyStore {
    async fn get_token_keys(&self, tenant: &TenantId) -> StoreResult<Option<TokenKeys>> {
        self.call("get_token_keys", self.inner.get_token_keys(tenant))
            .await
    }
    async fn create_token_keys(&self, keys: &TokenKeys) -> StoreResult<TokenKeys> {
        self.call("create_token_keys", self.inner.create_token_keys(keys))
            .await
    }
    async fn replace_token_keys(&self, keys: &TokenKeys, expected_version: u64) -> StoreResult<()> {
        self.call(
            "replace_token_keys",
            self.inner.replace_token_keys(keys, expected_version),
        )
        .await
    }
}

#[async_trait]
impl meter_core::store::BudgetStore for FaultyStore {
    async fn put_budget(
        &self,
        tenant: &TenantId,
        budget: &meter_core::budgets::Budget,
    ) -> StoreResult<meter_core::store::BudgetPut> {
        self.call("put_budget", self.inner.put_budget(tenant, budget))
            .await
    }
    async fn get_budget(
        &self,
        tenant: &TenantId,
        id: &meter_core::domain::BudgetId,
    ) -> StoreResult<Option<meter_core::budgets::Budget>> {
        self.call("get_budget", self.inner.get_budget(tenant, id))
            .await
    }
    async fn delete_budget(
        &self,
        tenant: &TenantId,
        id: &meter_core::domain::BudgetId,
    ) -> StoreResult<Option<meter_core::budgets::Budget>> {
        self.call("delete_budget", self.inner.delete_budget(tenant, id))
            .await
    }
    async fn list_budgets(
        &self,
        tenant: &TenantId,
        scope: &meter_core::budgets::Scope,
    ) -> StoreResult<Vec<meter_core::budgets::Budget>> {
        self.call("list_budgets", self.inner.list_budgets(tenant, scope))
            .await
    }
}

#[async_trait]
impl meter_core::store::WalletStore for FaultyStore {
    async fn insert_grant(
        &self,
        tenant: &TenantId,
        wallet: &meter_core::credits::Subscriber,
        grant: &meter_core::credits::Grant,
    ) -> StoreResult<meter_core::store::GrantInsert> {
        self.call(
            "insert_grant",
            self.inner.insert_grant(tenant, wallet, grant),
        )
        .await
    }
    async fn get_grant(
        &self,
        tenant: &TenantId,
        wallet: &meter_core::credits::Subscriber,
        id: &meter_core::domain::GrantId,
    ) -> StoreResult<Option<meter_core::credits::Grant>> {
        self.call("get_grant", self.inner.get_grant(tenant, wallet, id))
            .await
    }
    async fn void_grant(
        &self,
        tenant: &TenantId,
        wallet: &meter_core::credits::Subscriber,
        id: &meter_core::domain::GrantId,
        at: DateTime<Utc>,
    ) -> StoreResult<meter_core::store::GrantVoid> {
        self.call("void_grant", self.inner.void_grant(tenant, wallet, id, at))
            .await
    }
    async fn get_wallet(
        &self,
        tenant: &TenantId,
        wallet: &meter_core::credits::Subscriber,
    ) -> StoreResult<meter_core::store::WalletRecord> {
        self.call("get_wallet", self.inner.get_wallet(tenant, wallet))
            .await
    }
    async fn set_low_balance(
        &self,
        tenant: &TenantId,
        wallet: &meter_core::credits::Subscriber,
        low_balance_usd: Option<Decimal>,
    ) -> StoreResult<()> {
        self.call(
            "set_low_balance",
            self.inner.set_low_balance(tenant, wallet, low_balance_usd),
        )
        .await
    }
}

#[async_trait]
impl meter_core::store::BudgetCounterStore for FaultyStore {
    async fn get_budget_counters(
        &self,
        tenant: &TenantId,
        counters: &[meter_core::budgets::CounterKey],
    ) -> StoreResult<Vec<PeriodUsage>> {
        self.call(
            "get_budget_counters",
            self.inner.get_budget_counters(tenant, counters),
        )
        .await
    }
    async fn add_to_budget_counters(
        &self,
        tenant: &TenantId,
        writes: &[meter_core::budgets::CounterWrite],
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        self.call(
            "add_to_budget_counters",
            self.inner.add_to_budget_counters(tenant, writes, now),
        )
        .await
    }
    async fn reserve_counted(
        &self,
        reservation: &Reservation,
        guards: &[Guard],
        writes: &[meter_core::budgets::CounterWrite],
        now: DateTime<Utc>,
    ) -> StoreResult<ReserveOutcome> {
        self.call(
            "reserve_counted",
            self.inner.reserve_counted(reservation, guards, writes, now),
        )
        .await
    }
    async fn record_events_counted(
        &self,
        events: &[UsageEvent],
        writes: &[Vec<meter_core::budgets::CounterWrite>],
    ) -> StoreResult<Vec<RecordOutcome>> {
        self.call(
            "record_events_counted",
            self.inner.record_events_counted(events, writes),
        )
        .await
    }
}

#[async_trait]
impl meter_core::store::OrgStore for FaultyStore {
    async fn get_org_subscription(
        &self,
        tenant: &TenantId,
        org: &meter_core::domain::OrgId,
    ) -> StoreResult<Option<meter_core::domain::Subscription>> {
        self.call(
            "get_org_subscription",
            self.inner.get_org_subscription(tenant, org),
        )
        .await
    }
    async fn put_org_subscription(
        &self,
        org: &meter_core::domain::OrgId,
        sub: &meter_core::domain::Subscription,
        expected_version: Option<u64>,
    ) -> StoreResult<()> {
        self.call(
            "put_org_subscription",
            self.inner.put_org_subscription(org, sub, expected_version),
        )
        .await
    }
    async fn list_org_subscriptions(
        &self,
        cursor: Option<String>,
        limit: usize,
    ) -> StoreResult<meter_core::store::Page<meter_core::store::OrgRef>> {
        self.call(
            "list_org_subscriptions",
            self.inner.list_org_subscriptions(cursor, limit),
        )
        .await
    }
    async fn close_org_period(
        &self,
        org: &meter_core::domain::OrgId,
        invoice: &meter_core::domain::Invoice,
        next: &meter_core::domain::Subscription,
        expected_version: u64,
    ) -> StoreResult<meter_core::store::OrgClose> {
        self.call(
            "close_org_period",
            self.inner
                .close_org_period(org, invoice, next, expected_version),
        )
        .await
    }
    async fn list_org_invoices(
        &self,
        tenant: &TenantId,
        org: &meter_core::domain::OrgId,
    ) -> StoreResult<Vec<meter_core::domain::Invoice>> {
        self.call(
            "list_org_invoices",
            self.inner.list_org_invoices(tenant, org),
        )
        .await
    }
}

#[async_trait]
impl meter_core::store::OrgMembersStore for FaultyStore {
    async fn note_org_members(
        &self,
        tenant: &TenantId,
        org: &meter_core::domain::OrgId,
        period: &meter_core::periods::Period,
        users: &[UserId],
        teams: &[meter_core::domain::TeamId],
    ) -> StoreResult<()> {
        self.call(
            "note_org_members",
            self.inner
                .note_org_members(tenant, org, period, users, teams),
        )
        .await
    }
    async fn org_members(
        &self,
        tenant: &TenantId,
        org: &meter_core::domain::OrgId,
        period_start: DateTime<Utc>,
    ) -> StoreResult<meter_core::store::OrgMembers> {
        self.call(
            "org_members",
            self.inner.org_members(tenant, org, period_start),
        )
        .await
    }
}

#[async_trait]
impl meter_core::store::BudgetAlertStore for FaultyStore {
    async fn create_budget_alert_once(
        &self,
        alert: &meter_core::domain::Alert,
    ) -> StoreResult<bool> {
        self.call(
            "create_budget_alert_once",
            self.inner.create_budget_alert_once(alert),
        )
        .await
    }

    async fn list_org_alerts(
        &self,
        tenant: &TenantId,
        org: &meter_core::domain::OrgId,
        unread_only: bool,
        limit: usize,
    ) -> StoreResult<(Vec<meter_core::domain::Alert>, u64)> {
        self.call(
            "list_org_alerts",
            self.inner.list_org_alerts(tenant, org, unread_only, limit),
        )
        .await
    }

    async fn expired_alerts(
        &self,
        now: chrono::DateTime<chrono::Utc>,
        limit: usize,
    ) -> StoreResult<Vec<meter_core::domain::Alert>> {
        self.call("expired_alerts", self.inner.expired_alerts(now, limit))
            .await
    }

    async fn delete_expired_alert(&self, alert: &meter_core::domain::Alert) -> StoreResult<bool> {
        self.call(
            "delete_expired_alert",
            self.inner.delete_expired_alert(alert),
        )
        .await
    }

    async fn note_denied_limit(
        &self,
        denied: &meter_core::store::DeniedLimit,
    ) -> StoreResult<bool> {
        self.call("note_denied_limit", self.inner.note_denied_limit(denied))
            .await
    }

    async fn denied_limits(
        &self,
        after: Option<&meter_core::store::DeniedLimit>,
        limit: usize,
    ) -> StoreResult<Vec<meter_core::store::DeniedLimit>> {
        self.call("denied_limits", self.inner.denied_limits(after, limit))
            .await
    }

    async fn resolve_denied_limit(
        &self,
        denied: &meter_core::store::DeniedLimit,
        resolved: &meter_core::domain::Alert,
    ) -> StoreResult<bool> {
        self.call(
            "resolve_denied_limit",
            self.inner.resolve_denied_limit(denied, resolved),
        )
        .await
    }
}

// Issue 19: prepaid plans.
#[async_trait]
impl meter_core::store::PrepaidStore for FaultyStore {
    async fn get_user_limits_with_credit(
        &self,
        tenant: &TenantId,
        user: &UserId,
        pick: meter_core::store::PeriodPicker<'_>,
    ) -> StoreResult<(UserUsage, meter_core::store::CreditState)> {
        self.call(
            "get_user_limits_with_credit",
            self.inner.get_user_limits_with_credit(tenant, user, pick),
        )
        .await
    }
    async fn get_credit_state(
        &self,
        tenant: &TenantId,
        wallet: &meter_core::credits::Subscriber,
    ) -> StoreResult<meter_core::store::CreditState> {
        self.call(
            "get_credit_state",
            self.inner.get_credit_state(tenant, wallet),
        )
        .await
    }
    async fn reserve_with_credit(
        &self,
        reservation: &Reservation,
        guards: &[meter_core::store::Guard],
        writes: &[meter_core::budgets::CounterWrite],
        hold: &meter_core::store::CreditHold,
        now: DateTime<Utc>,
    ) -> StoreResult<meter_core::store::CreditReserve> {
        self.call(
            "reserve_with_credit",
            self.inner
                .reserve_with_credit(reservation, guards, writes, hold, now),
        )
        .await
    }
    async fn record_events_drawing(
        &self,
        events: &[UsageEvent],
        writes: &[Vec<meter_core::budgets::CounterWrite>],
    ) -> StoreResult<Vec<RecordOutcome>> {
        self.call(
            "record_events_drawing",
            self.inner.record_events_drawing(events, writes),
        )
        .await
    }
    async fn event_draws(
        &self,
        tenant: &TenantId,
        user: &UserId,
        since: Option<DateTime<Utc>>,
    ) -> StoreResult<Vec<meter_core::store::EventDraws>> {
        self.call("event_draws", self.inner.event_draws(tenant, user, since))
            .await
    }
    async fn put_wallet_alarms(
        &self,
        tenant: &TenantId,
        wallet: &meter_core::credits::Subscriber,
        seq_read: u64,
        alarms: meter_core::credits::WalletAlarms,
    ) -> StoreResult<bool> {
        self.call(
            "put_wallet_alarms",
            self.inner
                .put_wallet_alarms(tenant, wallet, seq_read, alarms),
        )
        .await
    }
    async fn close_period_charging(
        &self,
        invoice: &Invoice,
        state: &meter_core::store::BillingState,
        billed_to: DateTime<Utc>,
        charge: &meter_core::store::InvoiceCharge,
    ) -> StoreResult<meter_core::store::CloseOutcome> {
        self.call(
            "close_period_charging",
            self.inner
                .close_period_charging(invoice, state, billed_to, charge),
        )
        .await
    }
}

// Issue 18: the check's one read (store::CheckViewStore).
#[async_trait]
impl meter_core::store::CheckViewStore for FaultyStore {
    async fn read_check_view(
        &self,
        tenant: &TenantId,
        call: &meter_core::budgets::CallScopes,
        with_credit: bool,
        pick: meter_core::store::PeriodPicker<'_>,
        counters: meter_core::store::CounterPicker<'_>,
    ) -> StoreResult<meter_core::store::CheckView> {
        self.call(
            "read_check_view",
            self.inner
                .read_check_view(tenant, call, with_credit, pick, counters),
        )
        .await
    }
}

#[async_trait]
impl meter_core::store::DashboardStore for FaultyStore {
    async fn dashboard_reads(
        &self,
        tenant: &TenantId,
        user: &UserId,
        periods: meter_core::store::PeriodsPicker<'_>,
        alerts: usize,
    ) -> StoreResult<meter_core::store::DashboardReads> {
        self.call(
            "dashboard_reads",
            self.inner.dashboard_reads(tenant, user, periods, alerts),
        )
        .await
    }
}
// Issue 19: the credit ports (grant upkeep, open reservations, period draws).
#[path = "faulty_credits.rs"]
mod credits;
// Issue 18: late org events (store::OrgBillingStore).
#[path = "faulty_org_billing.rs"]
mod faulty_org_billing;
// Issue 19: the views of wallets (export draws, the tenant's wallets).
#[path = "faulty_views.rs"]
mod views;
// SPEC §14: the admin's list of a tenant's orgs.
#[path = "faulty_tenant_orgs.rs"]
mod tenant_orgs;

// Issue 19: org wallets.
#[async_trait]
impl meter_core::store::OrgWalletStore for FaultyStore {
    async fn get_user_limits_with_wallets(
        &self,
        tenant: &TenantId,
        user: &UserId,
        org: Option<&meter_core::domain::OrgId>,
        pick: meter_core::store::PeriodPicker<'_>,
    ) -> StoreResult<(
        UserUsage,
        meter_core::store::CreditState,
        Option<meter_core::store::CreditState>,
    )> {
        self.call(
            "get_user_limits_with_wallets",
            self.inner
                .get_user_limits_with_wallets(tenant, user, org, pick),
        )
        .await
    }
    async fn record_events_paying(
        &self,
        events: &[UsageEvent],
        writes: &[Vec<meter_core::budgets::CounterWrite>],
        payers: &[Option<meter_core::credits::Subscriber>],
    ) -> StoreResult<Vec<RecordOutcome>> {
        self.call(
            "record_events_paying",
            self.inner.record_events_paying(events, writes, payers),
        )
        .await
    }
    async fn wallet_draws(
        &self,
        tenant: &TenantId,
        wallet: &meter_core::credits::Subscriber,
        since: Option<DateTime<Utc>>,
    ) -> StoreResult<Vec<meter_core::store::EventDraws>> {
        self.call(
            "wallet_draws",
            self.inner.wallet_draws(tenant, wallet, since),
        )
        .await
    }
    async fn close_org_period_charging(
        &self,
        org: &meter_core::domain::OrgId,
        invoice: &Invoice,
        next: &Subscription,
        expected_version: u64,
        charge: &meter_core::store::InvoiceCharge,
    ) -> StoreResult<meter_core::store::OrgClose> {
        self.call(
            "close_org_period_charging",
            self.inner
                .close_org_period_charging(org, invoice, next, expected_version, charge),
        )
        .await
    }
}
