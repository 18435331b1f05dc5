//! The storage port: everything the service keeps, behind small `Send + Sync` traits,
//! with two adapters that pass one conformance suite (`tests/conformance`):
//! [`sqlite`] (embedded, `meter serve`) and [`dynamo`] (production, single table).
//!
//! Promises every adapter keeps (the conformance suite checks each under real concurrency):
//! - counters change atomically in the store, never read-modify-written by the caller;
//! - an event is recorded at most once per (tenant, `event_id`): the same id with the same
//!   fingerprint is a `Duplicate` with no effect, with another fingerprint a `Conflict`;
//! - recording an event updates its raw record, the period counters, the daily rollup and
//!   (when it settles a reservation) the reservation, all or nothing;
//! - a reservation only succeeds if every guard holds at the moment of the write;
//! - at most one alert per (tenant, user, period, key) and one invoice per (tenant, user, period);
//! - publishing claims: an unpublished alert or invoice is claimed by one publisher at a
//!   time (a conditional write: unpublished, and no claim or one that has ended), so
//!   overlapping aggregation passes and the request that raised it publish it once in the
//!   normal case; a claim ends at the time its taker set (a crashed publisher's claim
//!   expires) or when released. Delivery stays at-least-once: a publish that went out but
//!   was not marked goes out again after the claim ends.

#[cfg(feature = "sqlite")]
pub mod sqlite;

mod budget_alerts;
mod budget_counters;
mod budgets;
mod check_view;
mod dashboard;
mod directory;
mod grant_upkeep;
mod open_reservations;
mod org_billing;
mod org_members;
mod org_wallets;
mod orgs;
mod period_draws;
mod prepaid;
// Issue 19: unpriced events draw from their payer's wallet once re-priced.
mod repricing;
mod tenant_orgs;
mod token_keys;
mod wallet_views;
mod wallets;

pub use budget_alerts::{BudgetAlertStore, DeniedLimit};
pub use budget_counters::{BudgetCounterStore, COUNTER_GRACE};
pub use budgets::{BudgetPut, BudgetStore, MAX_BUDGETS_PER_SCOPE};
pub use check_view::{CallDefinitions, CheckView, CheckViewStore, CounterPicker, ViewPart};
pub use dashboard::{DashboardReads, DashboardStore, PeriodsPicker};
pub use directory::{DirectoryStore, TenantUser};
pub use grant_upkeep::{
    due_at, is_finished, with_expiry_recorded, DueGrant, GrantUpkeepStore, FINISHED_GRANT_KEPT,
};
pub use open_reservations::OpenReservationsStore;
pub use org_billing::{billed_org_period, org_period_counter, OrgBillingState, OrgBillingStore};
pub use org_members::{OrgMembers, OrgMembersStore};
pub use org_wallets::OrgWalletStore;
pub use orgs::{org_of_subscriber, org_subscriber, OrgClose, OrgRef, OrgStore};
pub use period_draws::{PeriodDraws, PeriodDrawsStore};
pub use prepaid::{
    CreditHold, CreditReserve, CreditState, EventDraws, InvoiceCharge, PrepaidStore,
};
pub use repricing::{user_pays, RepriceStore};
pub use tenant_orgs::{TenantOrg, TenantOrgsStore};
pub use token_keys::TokenKeyStore;
pub use wallet_views::{WalletSummary, WalletViewsStore};
pub use wallets::{GrantInsert, GrantVoid, WalletRecord, WalletStore, MAX_GRANTS_PER_WALLET};

use std::collections::BTreeSet;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;

pub use crate::domain::Adjustment;
use crate::domain::{
    Alert, ApiKeyRecord, Invoice, PlanName, Reservation, ReservationStatus, Subscription, TenantId,
    UsageEvent, UserId,
};
pub use crate::limits::Guard;
use crate::limits::{Metric, Plan};
use crate::usage::{PeriodUsage, Tally};

/// Why a store operation failed. Expected outcomes (duplicate, denied, not found) are
/// values, not errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backing store could not be reached or kept refusing (throttling after retries).
    /// Nothing was half-written; the caller may retry the same request.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// An optimistic-concurrency precondition failed (the record changed meanwhile).
    #[error("the record was changed concurrently")]
    VersionConflict,
    /// Stored data could not be read back into the domain (a bug or manual edit).
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// A counter would leave its range (e.g. > 10^28 USD).
    #[error("counter overflow: {0}")]
    Overflow(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReserveOutcome {
    Reserved,
    /// A guard failed at write time; nothing was held.
    Denied {
        metric: Metric,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordOutcome {
    Recorded,
    Duplicate,
    Conflict,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseOutcome {
    Released,
    /// Already settled, released or expired: nothing changed.
    AlreadyClosed(ReservationStatus),
    NotFound,
}

/// A user's subscription and the usage of one of their periods, read together
/// (one item in DynamoDB).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserUsage {
    pub subscription: Option<Subscription>,
    pub period_start: Option<DateTime<Utc>>,
    pub usage: PeriodUsage,
    /// Once-only keys of the alerts already stored for this period.
    pub fired_alerts: BTreeSet<String>,
    /// Whether the user's own scope holds budgets (filled by `get_user_limits`, which the
    /// check calls: it reads the user's budgets only then).
    pub user_budgets: bool,
}

/// One day of a user's usage, per provider (recorded usage only).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DailyUsage {
    pub day: NaiveDate,
    pub by_provider: std::collections::BTreeMap<crate::domain::ProviderId, Tally>,
}

/// A page of results and the opaque cursor of the next one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// A user the aggregation visits: everyone with a subscription or recorded usage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRef {
    pub tenant: TenantId,
    pub user: UserId,
    pub subscription: Option<Subscription>,
}

/// What closing one period of a user depends on, read together.
///
/// The billing rule every adapter keeps: every period starting before `billed_to` is closed
/// (invoiced, or had nothing to bill); the aggregation moves it on as it closes periods in
/// order (usually to the end of the period it invoiced). A write that adds recorded usage
/// or cost to a period starting before `billed_to` (a late event, a re-priced event) also
/// adds it to `adjustments` of that period, atomically with the counters, so the next
/// invoice bills it; the invoice of a closed period is never rewritten.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillingState {
    pub tenant: TenantId,
    pub user: UserId,
    pub billed_to: Option<DateTime<Utc>>,
    /// The period being closed and its usage (recorded and held, as `get_period_usage`).
    pub period_start: DateTime<Utc>,
    pub usage: PeriodUsage,
    /// Pending adjustments by the start of the period they belong to.
    pub adjustments: std::collections::BTreeMap<DateTime<Utc>, Adjustment>,
    /// Starts of the user's periods with recorded usage that are not closed yet (starting
    /// at or after `billed_to`), oldest first.
    pub pending_periods: Vec<DateTime<Utc>>,
    /// Opaque: changes whenever `billed_to`, the period's recorded usage or the
    /// adjustments change. [`InvoiceStore::close_period`] only succeeds on the same version.
    pub version: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseOutcome {
    /// The invoice is stored, `billed_to` moved on, the adjustments it carries consumed.
    Closed,
    /// An invoice for that (tenant, user, period) already exists: nothing changed.
    AlreadyInvoiced,
    /// The billing state changed since it was read (a concurrent event or pass): nothing
    /// changed; read it again.
    Changed,
}

/// The records of one user that only an export or an erasure reads (the rest — the
/// subscription, alerts, invoices — comes from the other port methods).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserRecords {
    /// Raw events, oldest first.
    pub events: Vec<UsageEvent>,
    /// Every period with counters, by start.
    pub periods: std::collections::BTreeMap<DateTime<Utc>, PeriodUsage>,
    /// Every daily rollup, oldest first.
    pub daily: Vec<DailyUsage>,
    /// Open and closed reservations.
    pub reservations: Vec<Reservation>,
}

/// How far an erasure got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EraseProgress {
    /// Records deleted or pseudonymised by this call.
    pub changed: usize,
    /// Nothing of the user is left (but the pseudonymised invoices).
    pub done: bool,
}

/// Picks the period a read is about, once the subscription is known.
pub type PeriodPicker<'a> = &'a (dyn Fn(Option<&Subscription>) -> DateTime<Utc> + Send + Sync);

#[async_trait]
pub trait TenantStore: Send + Sync {
    /// Records the tenant; `true` if it did not exist (the caller then bootstraps its plans).
    async fn create_tenant_if_absent(
        &self,
        tenant: &TenantId,
        at: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// Stores a key's record (its hash, never the key) and lists it under its tenant.
    async fn put_api_key(&self, key: &ApiKeyRecord) -> StoreResult<()>;
    async fn get_api_key(&self, hash: &str) -> StoreResult<Option<ApiKeyRecord>>;
    /// The tenant's keys, oldest first.
    async fn list_api_keys(&self, tenant: &TenantId) -> StoreResult<Vec<ApiKeyRecord>>;
    /// Deletes the key with this hash at once; the record deleted, `None` if there was none.
    async fn delete_api_key(&self, hash: &str) -> StoreResult<Option<ApiKeyRecord>>;
    /// Deletes the tenant's key with this id (`key_…`, see [`crate::auth::key_id`]) at
    /// once; the record deleted, `None` if the tenant has no such key.
    async fn delete_api_key_by_id(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> StoreResult<Option<ApiKeyRecord>>;
}

#[async_trait]
pub trait CatalogStore: Send + Sync {
    async fn put_plan(&self, tenant: &TenantId, plan: &Plan) -> StoreResult<()>;
    async fn get_plan(&self, tenant: &TenantId, name: &PlanName) -> StoreResult<Option<Plan>>;
    async fn list_plans(&self, tenant: &TenantId) -> StoreResult<Vec<Plan>>;
    /// Adds a price version (its JSON form, keyed by its id); `scope` None = the shared
    /// catalog, Some = one tenant's own versions. Re-putting the same id replaces it.
    async fn put_price_version(
        &self,
        scope: Option<&TenantId>,
        id: &str,
        json: &serde_json::Value,
    ) -> StoreResult<()>;
    async fn list_price_versions(
        &self,
        scope: Option<&TenantId>,
    ) -> StoreResult<Vec<serde_json::Value>>;
}

#[async_trait]
pub trait SubscriptionStore: Send + Sync {
    async fn get_subscription(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> StoreResult<Option<Subscription>>;
    /// Writes `sub` if the stored version is `expected_version` (`None`: must not exist);
    /// otherwise `VersionConflict`. The stored version becomes `sub.version`.
    async fn put_subscription(
        &self,
        sub: &Subscription,
        expected_version: Option<u64>,
    ) -> StoreResult<()>;
    /// Every user with a subscription or recorded usage, with their subscription, in
    /// pages of at most `limit` (for the aggregation pass); stable order.
    async fn list_users(&self, cursor: Option<String>, limit: usize) -> StoreResult<Page<UserRef>>;
}

#[async_trait]
pub trait UsageStore: Send + Sync {
    /// The user's subscription and the usage of the period `pick` chooses from it.
    async fn get_user_usage(
        &self,
        tenant: &TenantId,
        user: &UserId,
        pick: PeriodPicker<'_>,
    ) -> StoreResult<UserUsage>;
    /// What a check reads: [`UsageStore::get_user_usage`] with the usage's display-only
    /// counts left out ([`PeriodUsage::limits_only`]: recorded, held and unpriced only).
    /// On DynamoDB one read of the user's state item, while the period is open.
    async fn get_user_limits(
        &self,
        tenant: &TenantId,
        user: &UserId,
        pick: PeriodPicker<'_>,
    ) -> StoreResult<UserUsage>;
    /// Usage of the given periods (by start), in the same order; zeros where nothing was recorded.
    async fn get_period_usage(
        &self,
        tenant: &TenantId,
        user: &UserId,
        starts: &[DateTime<Utc>],
    ) -> StoreResult<Vec<PeriodUsage>>;
    /// Daily rollups of `[from, to]` (inclusive), only days with usage, oldest first.
    async fn daily_usage(
        &self,
        tenant: &TenantId,
        user: &UserId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> StoreResult<Vec<DailyUsage>>;
    /// Records events of one (tenant, user): each all-or-nothing, idempotent by `event_id`.
    /// Outcomes are in input order.
    async fn record_events(&self, events: &[UsageEvent]) -> StoreResult<Vec<RecordOutcome>>;
    /// [`UsageStore::record_events`], then the user's state in the period starting at
    /// `period_start` as [`UsageStore::get_user_limits`] reads it after the write: what
    /// ingest judges the plan alerts on. The state is read after the events are recorded
    /// (it includes them); a failed read leaves them recorded (`Ok((outcomes, Err(_)))`).
    /// SQLite reads it inside the write's transaction, on the writer (no read transaction
    /// of its own); by default, and on DynamoDB, it is a second request.
    async fn record_events_then_limits(
        &self,
        events: &[UsageEvent],
        period_start: DateTime<Utc>,
    ) -> StoreResult<(Vec<RecordOutcome>, StoreResult<UserUsage>)> {
        let outcomes = self.record_events(events).await?;
        let state = match events.first() {
            Some(e) => {
                self.get_user_limits(&e.tenant, &e.user, &|_| period_start)
                    .await
            }
            None => Err(StoreError::Corrupt(
                "no events, so no user to read".to_owned(),
            )),
        };
        Ok((outcomes, state))
    }
    async fn get_event(
        &self,
        tenant: &TenantId,
        event_id: &crate::domain::EventId,
    ) -> StoreResult<Option<UsageEvent>>;
    /// Holds `reservation.held` in its period's counters if every guard holds.
    async fn reserve(
        &self,
        reservation: &Reservation,
        guards: &[Guard],
    ) -> StoreResult<ReserveOutcome>;
    async fn get_reservation(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> StoreResult<Option<Reservation>>;
    /// Returns a held reservation's usage to its counters. Idempotent.
    async fn release_reservation(&self, tenant: &TenantId, id: &str)
        -> StoreResult<ReleaseOutcome>;
    /// Unpriced events of every tenant, in pages of at most `limit`.
    async fn unpriced_events(
        &self,
        cursor: Option<String>,
        limit: usize,
    ) -> StoreResult<Page<UsageEvent>>;
    /// Prices an unpriced event, all or nothing: the event gets `cost` and `price_version`;
    /// its period's counters (cost +`cost`, unpriced −1) and its day's rollup move by
    /// exactly `cost`; if its period starts before `billed_to`, the change is also added to
    /// that period's pending adjustment (see [`BillingState`]). `false` (no change) if the
    /// event does not exist or is already priced.
    async fn price_event(
        &self,
        tenant: &TenantId,
        event_id: &crate::domain::EventId,
        cost: Decimal,
        price_version: &str,
    ) -> StoreResult<bool>;
    /// Expires up to `limit` held reservations whose `expires_at <= now`, returning their
    /// holds; returns how many it expired.
    async fn expire_reservations(&self, now: DateTime<Utc>, limit: usize) -> StoreResult<usize>;
}

#[async_trait]
pub trait AlertStore: Send + Sync {
    /// Stores the alert unless one with the same (tenant, user, period, key) exists;
    /// `true` if this call stored it.
    async fn create_alert_once(&self, alert: &Alert) -> StoreResult<bool>;
    /// Newest first, at most `limit`; and the number of all unread alerts of the user.
    async fn list_alerts(
        &self,
        tenant: &TenantId,
        user: &UserId,
        unread_only: bool,
        limit: usize,
    ) -> StoreResult<(Vec<Alert>, u64)>;
    /// `false` if no such alert belongs to the tenant. Idempotent.
    async fn mark_alert_read(&self, tenant: &TenantId, alert_id: &str) -> StoreResult<bool>;
    /// Alerts not yet accepted by the alert port (the outbox), oldest first.
    async fn unpublished_alerts(&self, limit: usize) -> StoreResult<Vec<Alert>>;
    /// Takes the publishing claim of an unpublished alert until `until`, if no claim holds
    /// at `now` (none, or one that ended by `now`). `true`: the caller alone publishes it,
    /// then marks it published or releases the claim. `false`: published, claimed by
    /// another publisher, or no such alert. See the module's promises.
    async fn claim_alert(
        &self,
        tenant: &TenantId,
        alert_id: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// Gives back the claim taken until `until` (publishing failed), so that the next pass
    /// retries at once; no change if another claim replaced it.
    async fn release_alert_claim(
        &self,
        tenant: &TenantId,
        alert_id: &str,
        until: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Marks the alert published (and drops its claim): it leaves the outbox for good.
    async fn mark_alert_published(&self, tenant: &TenantId, alert_id: &str) -> StoreResult<()>;
    /// Forgets the once-only `keys` fired in (tenant, user, period), so that each may fire
    /// again (an upgrade put the usage back below its threshold). The alerts themselves
    /// stay listed. Keys that were not fired are ignored; idempotent.
    async fn rearm_alerts(
        &self,
        tenant: &TenantId,
        user: &UserId,
        period_start: DateTime<Utc>,
        keys: &[String],
    ) -> StoreResult<()>;
}

#[async_trait]
pub trait InvoiceStore: Send + Sync {
    /// Stores the invoice unless one exists for (tenant, user, period start); `true` if
    /// stored. A raw write that does not close the period (imports, tests): billing goes
    /// through [`InvoiceStore::close_period`].
    async fn put_invoice_once(&self, invoice: &Invoice) -> StoreResult<bool>;
    /// The billing state of a user for closing the period starting at `period_start`.
    async fn billing_state(
        &self,
        tenant: &TenantId,
        user: &UserId,
        period_start: DateTime<Utc>,
    ) -> StoreResult<BillingState>;
    /// Closes `invoice.period` of its user, atomically: stores the invoice (unpublished),
    /// sets `billed_to` to `billed_to` and subtracts exactly the adjustments of `state`
    /// (the ones the invoice bills) — only if the billing state still has `state.version`
    /// and no invoice exists for that period.
    async fn close_period(
        &self,
        invoice: &Invoice,
        state: &BillingState,
        billed_to: DateTime<Utc>,
    ) -> StoreResult<CloseOutcome>;
    /// Invoices not yet accepted by the alert port (the outbox), oldest first.
    async fn unpublished_invoices(&self, limit: usize) -> StoreResult<Vec<Invoice>>;
    /// [`AlertStore::claim_alert`] for a stored invoice (found by tenant, user, period
    /// and id).
    async fn claim_invoice(
        &self,
        invoice: &Invoice,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// [`AlertStore::release_alert_claim`] for a stored invoice.
    async fn release_invoice_claim(
        &self,
        invoice: &Invoice,
        until: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Marks the invoice published (and drops its claim).
    async fn mark_invoice_published(&self, invoice: &Invoice) -> StoreResult<()>;
    /// A named position of a long job (the aggregation's page cursor); `None` = start.
    async fn get_job_cursor(&self, job: &str) -> StoreResult<Option<String>>;
    async fn put_job_cursor(&self, job: &str, cursor: Option<&str>) -> StoreResult<()>;
    /// The user's invoices, newest period first.
    async fn list_invoices(&self, tenant: &TenantId, user: &UserId) -> StoreResult<Vec<Invoice>>;
}

/// Data portability and erasure: export a user's records, erase them in bounded steps.
#[async_trait]
pub trait PrivacyStore: Send + Sync {
    /// Events, counters, rollups and reservations of a user.
    async fn user_records(&self, tenant: &TenantId, user: &UserId) -> StoreResult<UserRecords>;
    /// Erases the user in bounded steps: deletes up to about `limit` of its records per
    /// call — events, counters, rollups, reservations, alerts, billing state and the
    /// subscription — and moves its invoices to `pseudonym` (amounts kept). Idempotent and
    /// safe under concurrent traffic; call until `done`.
    async fn erase_user(
        &self,
        tenant: &TenantId,
        user: &UserId,
        pseudonym: &UserId,
        limit: usize,
    ) -> StoreResult<EraseProgress>;
}

/// Everything the service needs from storage.
pub trait Store:
    TenantStore
    + CatalogStore
    + SubscriptionStore
    + UsageStore
    + AlertStore
    + InvoiceStore
    + PrivacyStore
    + DirectoryStore
    + TokenKeyStore
    + BudgetStore
    + WalletStore
    + BudgetCounterStore
    + OrgStore
    + OrgMembersStore
    + BudgetAlertStore
    + PrepaidStore
    + CheckViewStore
    + DashboardStore
    + GrantUpkeepStore
    + OpenReservationsStore
    + PeriodDrawsStore
    + OrgWalletStore
    + RepriceStore
    + OrgBillingStore
    + WalletViewsStore
    + TenantOrgsStore
{
}

impl<
        T: TenantStore
            + CatalogStore
            + SubscriptionStore
            + UsageStore
            + AlertStore
            + InvoiceStore
            + PrivacyStore
            + DirectoryStore
            + TokenKeyStore
            + BudgetStore
            + WalletStore
            + BudgetCounterStore
            + OrgStore
            + OrgMembersStore
            + BudgetAlertStore
            + PrepaidStore
            + DashboardStore
            + GrantUpkeepStore
            + OpenReservationsStore
            + PeriodDrawsStore
            + OrgWalletStore
            + RepriceStore
            + OrgBillingStore
            + CheckViewStore
            + WalletViewsStore
            + TenantOrgsStore,
    > Store for T
{
}

#[cfg(feature = "dynamo")]
pub mod dynamo;
