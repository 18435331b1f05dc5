//! The embedded store: one SQLite file in WAL mode, used by `meter serve` and the fast tests.
//!
//! Blocking SQLite calls never run on the async runtime:
//! - **writes** go to one dedicated writer thread that owns the only writing connection,
//!   as boxed jobs over a channel, each answered through a tokio oneshot. Serialising the
//!   writes in one thread is what makes "check the guard, then hold" and "insert the event
//!   if new, then count it" atomic: nothing else writes in between. The thread commits in
//!   groups: it takes every job already queued (up to `MAX_BATCH`), runs them in one
//!   `BEGIN IMMEDIATE` transaction, each inside its own savepoint (a job that fails is
//!   rolled back alone, so every write stays all-or-nothing), commits once, and only then
//!   answers. A failed commit answers every job of the group with `Unavailable`, so
//!   nothing is acknowledged that is not durable.
//! - **reads** run on tokio's blocking pool with a small pool of read connections (WAL
//!   lets them read while the writer writes), at most `MAX_READERS` at once, each read in
//!   one read transaction (a consistent snapshot).
//!
//! Money is TEXT changed only in SQL through exact decimal functions (see `decimal`).
//!
//! The port's methods below hand their work to files named as in `store::dynamo`, one
//! per port trait (`tenants`, `catalog`, `subscriptions`, `usage`, `alerts`, `billing`,
//! `privacy`; the aggregation's reads, `list_users` and `unpriced_events`, and re-pricing
//! are in `billing`); beneath them `codec` (column values), `decimal` and `schema`.

mod alerts;
mod billing;
mod budget_alerts;
mod budget_counters;
mod budgets;
mod catalog;
mod check_view;
mod codec;
mod compact_events;
mod dashboard;
mod decimal;
mod directory;
mod event_row;
mod grant_upkeep;
mod late_draws;
mod open_reservations;
mod org_billing;
mod org_late_draws;
mod org_members;
mod org_wallets;
mod orgs;
mod period_draws;
mod prepaid;
mod privacy;
mod repricing;
mod schema;
mod subscriptions;
mod tenant_orgs;
mod tenants;
mod token_keys;
mod usage;
mod wallet_views;
mod wallets;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::Connection;
use tokio::sync::{oneshot, Semaphore};

use super::{
    AlertStore, BillingState, CatalogStore, CloseOutcome, DailyUsage, EraseProgress, Guard,
    InvoiceStore, Page, PeriodPicker, PrivacyStore, RecordOutcome, ReleaseOutcome, ReserveOutcome,
    StoreError, StoreResult, SubscriptionStore, TenantStore, UsageStore, UserRecords, UserRef,
    UserUsage,
};
use crate::domain::{
    Alert, ApiKeyRecord, EventId, Invoice, PlanName, Reservation, Subscription, TenantId,
    UsageEvent, UserId,
};
use crate::limits::Plan;
use crate::usage::PeriodUsage;
use writer::{writer_loop, Pending, WriteJob};

/// The schema version this build writes (`PRAGMA user_version` of a migrated file).
pub fn current_schema_version() -> i64 {
    i64::try_from(schema::MIGRATIONS.len()).unwrap_or(i64::MAX)
}

/// Most reads running at once (each holds a connection and a blocking thread).
const MAX_READERS: usize = 8;

/// The SQLite adapter of the storage port. Cheap to share behind an `Arc`; dropping it
/// stops the writer thread once the queued writes are done.
pub struct SqliteStore {
    writer: mpsc::Sender<Box<dyn WriteJob>>,
    readers: Arc<Readers>,
    read_permits: Semaphore,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.readers.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`: WAL, `synchronous = FULL`,
    /// foreign keys, a busy timeout, and the schema migrated to the current version.
    /// Blocks while it opens and migrates; call it at startup.
    pub fn open(path: &Path) -> StoreResult<SqliteStore> {
        let mut conn = Connection::open(path)?;
        schema::configure(&conn)?;
        schema::configure_writer(&conn)?;
        schema::migrate(&mut conn, schema::MIGRATIONS)?;
        let checkpoint_due = writer::checkpoint_between_groups(&mut conn)?;
        let (tx, rx) = mpsc::channel::<Box<dyn WriteJob>>();
        std::thread::Builder::new()
            .name("meter-sqlite-writer".to_owned())
            .spawn(move || writer_loop(&conn, &rx, &checkpoint_due))
            .map_err(|e| {
                StoreError::Unavailable(format!("cannot start the SQLite writer thread: {e}"))
            })?;
        Ok(SqliteStore {
            writer: tx,
            readers: Arc::new(Readers {
                path: path.to_owned(),
                idle: Mutex::new(Vec::new()),
            }),
            read_permits: Semaphore::new(MAX_READERS),
        })
    }

    /// The schema version of the file (`PRAGMA user_version`).
    pub async fn schema_version(&self) -> StoreResult<i64> {
        self.read(schema::version).await
    }

    /// Runs `f` on the writer connection, in its own savepoint of a write transaction;
    /// resolves once that transaction committed (or failed).
    async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Pending {
            work: Some(f),
            result: None,
            reply,
        };
        self.writer.send(Box::new(job)).map_err(|_| {
            StoreError::Unavailable("the SQLite writer thread has stopped".to_owned())
        })?;
        answer.await.map_err(|_| {
            StoreError::Unavailable("the SQLite writer dropped the request".to_owned())
        })?
    }

    /// Runs `f` on a read connection, in one read transaction, on the calling thread: for
    /// the check's few indexed lookups (microseconds), where the hop to the blocking pool
    /// and back costs more than the read itself (issue 23), and where `f` may borrow (the
    /// period picker). Long reads (exports, pages, scans) go through [`Self::read`].
    fn read_now<T>(&self, f: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        self.readers.run(f)
    }

    /// Runs `f` on a read connection, in one read transaction, on the blocking pool.
    async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let _permit =
            self.read_permits.acquire().await.map_err(|_| {
                StoreError::Unavailable("the SQLite read pool is closed".to_owned())
            })?;
        let readers = Arc::clone(&self.readers);
        tokio::task::spawn_blocking(move || readers.run(f))
            .await
            .map_err(|e| StoreError::Unavailable(format!("SQLite read task failed: {e}")))?
    }
}

/// Idle read connections, reused across reads.
struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    fn run<T>(&self, f: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        let pooled = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match pooled {
            Some(c) => c,
            None => self.connect()?,
        };
        // Cached statements, not `execute_batch`: that parses the SQL on every read
        // (issue 23: 4 % of a check's time).
        conn.prepare_cached("BEGIN DEFERRED")?.execute([])?;
        let result = f(&conn);
        // A connection whose transaction cannot be closed is not reused.
        let closed = conn
            .prepare_cached("COMMIT")
            .and_then(|mut commit| commit.execute([]));
        if closed.is_ok() {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            if idle.len() < MAX_READERS {
                idle.push(conn);
            }
        }
        result
    }

    fn connect(&self) -> StoreResult<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        schema::configure(&conn)?;
        conn.pragma_update(None, "query_only", true)?;
        Ok(conn)
    }
}

/// A user's usage as `UsageStore::get_user_usage` reads it, in the caller's read
/// transaction: the subscription, then the picked period's counters and fired alert keys.
fn user_usage(
    c: &Connection,
    tenant: &TenantId,
    user: &UserId,
    pick: PeriodPicker<'_>,
) -> StoreResult<UserUsage> {
    let subscription = subscriptions::get_subscription(c, tenant, user)?;
    let start = pick(subscription.as_ref());
    Ok(UserUsage {
        usage: usage::period_usage(c, tenant, user, &start)?,
        fired_alerts: usage::fired_alerts(c, tenant, user, &start)?,
        user_budgets: false,
        subscription,
        period_start: Some(start),
    })
}

/// A user's limits as a check reads them (`UsageStore::get_user_limits`), in the caller's
/// read transaction: the usage read with its limit counters only, and whether the user's
/// own scope holds budgets.
pub(super) fn user_limits(
    c: &Connection,
    tenant: &TenantId,
    user: &UserId,
    pick: PeriodPicker<'_>,
) -> StoreResult<UserUsage> {
    let mut read = user_usage(c, tenant, user, pick)?;
    read.usage = read.usage.limits_only();
    read.user_budgets = budget_counters::user_has_budgets(c, tenant, user)?;
    Ok(read)
}

#[async_trait]
impl TenantStore for SqliteStore {
    async fn create_tenant_if_absent(
        &self,
        tenant: &TenantId,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let tenant = tenant.clone();
        self.write(move |c| tenants::create_tenant_if_absent(c, &tenant, at))
            .await
    }

    async fn put_api_key(&self, key: &ApiKeyRecord) -> StoreResult<()> {
        let key = key.clone();
        self.write(move |c| tenants::put_api_key(c, &key)).await
    }

    async fn get_api_key(&self, hash: &str) -> StoreResult<Option<ApiKeyRecord>> {
        let hash = hash.to_owned();
        self.read(move |c| tenants::get_api_key(c, &hash)).await
    }

    async fn list_api_keys(&self, tenant: &TenantId) -> StoreResult<Vec<ApiKeyRecord>> {
        let tenant = tenant.clone();
        self.read(move |c| tenants::list_api_keys(c, &tenant)).await
    }

    async fn delete_api_key(&self, hash: &str) -> StoreResult<Option<ApiKeyRecord>> {
        let hash = hash.to_owned();
        self.write(move |c| tenants::delete_api_key(c, &hash)).await
    }

    async fn delete_api_key_by_id(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> StoreResult<Option<ApiKeyRecord>> {
        let (tenant, id) = (tenant.clone(), id.to_owned());
        self.write(move |c| tenants::delete_api_key_by_id(c, &tenant, &id))
            .await
    }
}

#[async_trait]
impl CatalogStore for SqliteStore {
    async fn put_plan(&self, tenant: &TenantId, plan: &Plan) -> StoreResult<()> {
        let (tenant, plan) = (tenant.clone(), plan.clone());
        self.write(move |c| catalog::put_plan(c, &tenant, &plan))
            .await
    }

    async fn get_plan(&self, tenant: &TenantId, name: &PlanName) -> StoreResult<Option<Plan>> {
        let (tenant, name) = (tenant.clone(), name.clone());
        self.read(move |c| catalog::get_plan(c, &tenant, &name))
            .await
    }

    async fn list_plans(&self, tenant: &TenantId) -> StoreResult<Vec<Plan>> {
        let tenant = tenant.clone();
        self.read(move |c| catalog::list_plans(c, &tenant)).await
    }

    async fn put_price_version(
        &self,
        scope: Option<&TenantId>,
        id: &str,
        json: &serde_json::Value,
    ) -> StoreResult<()> {
        let (scope, id, json) = (scope.cloned(), id.to_owned(), json.clone());
        self.write(move |c| catalog::put_price_version(c, scope.as_ref(), &id, &json))
            .await
    }

    async fn list_price_versions(
        &self,
        scope: Option<&TenantId>,
    ) -> StoreResult<Vec<serde_json::Value>> {
        let scope = scope.cloned();
        self.read(move |c| catalog::list_price_versions(c, scope.as_ref()))
            .await
    }
}

#[async_trait]
impl SubscriptionStore for SqliteStore {
    async fn get_subscription(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> StoreResult<Option<Subscription>> {
        let (tenant, user) = (tenant.clone(), user.clone());
        self.read(move |c| subscriptions::get_subscription(c, &tenant, &user))
            .await
    }

    async fn put_subscription(
        &self,
        sub: &Subscription,
        expected_version: Option<u64>,
    ) -> StoreResult<()> {
        let sub = sub.clone();
        self.write(move |c| subscriptions::put_subscription(c, &sub, expected_version))
            .await
    }

    async fn list_users(&self, cursor: Option<String>, limit: usize) -> StoreResult<Page<UserRef>> {
        self.read(move |c| billing::list_users(c, cursor.as_deref(), limit))
            .await
    }
}

#[async_trait]
impl UsageStore for SqliteStore {
    async fn get_user_usage(
        &self,
        tenant: &TenantId,
        user: &UserId,
        pick: PeriodPicker<'_>,
    ) -> StoreResult<UserUsage> {
        // One read transaction (one snapshot) on this thread, like the check's.
        self.read_now(|c| user_usage(c, tenant, user, pick))
    }

    async fn get_user_limits(
        &self,
        tenant: &TenantId,
        user: &UserId,
        pick: PeriodPicker<'_>,
    ) -> StoreResult<UserUsage> {
        // The check's read: one read transaction (one snapshot) on this thread.
        self.read_now(|c| user_limits(c, tenant, user, pick))
    }

    async fn get_period_usage(
        &self,
        tenant: &TenantId,
        user: &UserId,
        starts: &[DateTime<Utc>],
    ) -> StoreResult<Vec<PeriodUsage>> {
        let (tenant, user, starts) = (tenant.clone(), user.clone(), starts.to_vec());
        self.read(move |c| {
            starts
                .iter()
                .map(|s| usage::period_usage(c, &tenant, &user, s))
                .collect()
        })
        .await
    }

    async fn daily_usage(
        &self,
        tenant: &TenantId,
        user: &UserId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> StoreResult<Vec<DailyUsage>> {
        let (tenant, user) = (tenant.clone(), user.clone());
        self.read(move |c| usage::daily_usage(c, &tenant, &user, from, to))
            .await
    }

    async fn record_events(&self, events: &[UsageEvent]) -> StoreResult<Vec<RecordOutcome>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let events = events.to_vec();
        self.write(move |c| usage::record_events(c, &events)).await
    }

    async fn record_events_then_limits(
        &self,
        events: &[UsageEvent],
        period_start: DateTime<Utc>,
    ) -> StoreResult<(Vec<RecordOutcome>, StoreResult<UserUsage>)> {
        let Some(first) = events.first() else {
            return Ok((
                Vec::new(),
                Err(StoreError::Corrupt(
                    "no events, so no user to read".to_owned(),
                )),
            ));
        };
        let (tenant, user) = (first.tenant.clone(), first.user.clone());
        let events = events.to_vec();
        // Issue 23: the alerts' read in the write's transaction, on the writer, where the
        // pages it reads were just written: no read transaction (and no page reads) on the
        // request's thread after the commit. A failed read does not undo the write.
        self.write(move |c| {
            let outcomes = usage::record_events(c, &events)?;
            let state = user_limits(c, &tenant, &user, &|_| period_start);
            Ok((outcomes, state))
        })
        .await
    }

    async fn get_event(
        &self,
        tenant: &TenantId,
        event_id: &EventId,
    ) -> StoreResult<Option<UsageEvent>> {
        let (tenant, event_id) = (tenant.clone(), event_id.clone());
        self.read(move |c| usage::get_event(c, &tenant, &event_id))
            .await
    }

    async fn reserve(
        &self,
        reservation: &Reservation,
        guards: &[Guard],
    ) -> StoreResult<ReserveOutcome> {
        let (reservation, guards) = (reservation.clone(), guards.to_vec());
        self.write(move |c| usage::reserve(c, &reservation, &guards))
            .await
    }

    async fn get_reservation(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> StoreResult<Option<Reservation>> {
        let (tenant, id) = (tenant.clone(), id.to_owned());
        self.read(move |c| usage::get_reservation(c, &tenant, &id))
            .await
    }

    async fn release_reservation(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> StoreResult<ReleaseOutcome> {
        let (tenant, id) = (tenant.clone(), id.to_owned());
        self.write(move |c| usage::release_reservation(c, &tenant, &id))
            .await
    }

    async fn unpriced_events(
        &self,
        cursor: Option<String>,
        limit: usize,
    ) -> StoreResult<Page<UsageEvent>> {
        self.read(move |c| billing::unpriced_events(c, cursor.as_deref(), limit))
            .await
    }

    async fn price_event(
        &self,
        tenant: &TenantId,
        event_id: &EventId,
        cost: rust_decimal::Decimal,
        price_version: &str,
    ) -> StoreResult<bool> {
        let (tenant, event_id, version) =
            (tenant.clone(), event_id.clone(), price_version.to_owned());
        self.write(move |c| billing::price_event(c, &tenant, &event_id, cost, &version, &[]))
            .await
    }

    async fn expire_reservations(&self, now: DateTime<Utc>, limit: usize) -> StoreResult<usize> {
        self.write(move |c| usage::expire_reservations(c, now, limit))
            .await
    }
}

#[async_trait]
impl AlertStore for SqliteStore {
    async fn create_alert_once(&self, alert: &Alert) -> StoreResult<bool> {
        let alert = alert.clone();
        self.write(move |c| alerts::create_alert_once(c, &alert))
            .await
    }

    async fn list_alerts(
        &self,
        tenant: &TenantId,
        user: &UserId,
        unread_only: bool,
        limit: usize,
    ) -> StoreResult<(Vec<Alert>, u64)> {
        let (tenant, user) = (tenant.clone(), user.clone());
        self.read(move |c| alerts::list_alerts(c, &tenant, &user, unread_only, limit))
            .await
    }

    async fn mark_alert_read(&self, tenant: &TenantId, alert_id: &str) -> StoreResult<bool> {
        let (tenant, alert_id) = (tenant.clone(), alert_id.to_owned());
        self.write(move |c| alerts::mark_alert_read(c, &tenant, &alert_id))
            .await
    }

    async fn unpublished_alerts(&self, limit: usize) -> StoreResult<Vec<Alert>> {
        self.read(move |c| alerts::unpublished_alerts(c, limit))
            .await
    }

    async fn mark_alert_published(&self, tenant: &TenantId, alert_id: &str) -> StoreResult<()> {
        let (tenant, alert_id) = (tenant.clone(), alert_id.to_owned());
        self.write(move |c| alerts::mark_alert_published(c, &tenant, &alert_id))
            .await
    }

    async fn claim_alert(
        &self,
        tenant: &TenantId,
        alert_id: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let (tenant, alert_id) = (tenant.clone(), alert_id.to_owned());
        self.write(move |c| alerts::claim_alert(c, &tenant, &alert_id, &now, &until))
            .await
    }

    async fn release_alert_claim(
        &self,
        tenant: &TenantId,
        alert_id: &str,
        until: DateTime<Utc>,
    ) -> StoreResult<()> {
        let (tenant, alert_id) = (tenant.clone(), alert_id.to_owned());
        self.write(move |c| alerts::release_alert_claim(c, &tenant, &alert_id, &until))
            .await
    }

    async fn rearm_alerts(
        &self,
        tenant: &TenantId,
        user: &UserId,
        period_start: DateTime<Utc>,
        keys: &[String],
    ) -> StoreResult<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let (tenant, user, keys) = (tenant.clone(), user.clone(), keys.to_vec());
        self.write(move |c| alerts::rearm_alerts(c, &tenant, &user, &period_start, &keys))
            .await
    }
}

#[async_trait]
impl InvoiceStore for SqliteStore {
    async fn put_invoice_once(&self, invoice: &Invoice) -> StoreResult<bool> {
        let invoice = invoice.clone();
        self.write(move |c| billing::put_invoice_once(c, &invoice))
            .await
    }

    async fn list_invoices(&self, tenant: &TenantId, user: &UserId) -> StoreResult<Vec<Invoice>> {
        let (tenant, user) = (tenant.clone(), user.clone());
        self.read(move |c| billing::list_invoices(c, &tenant, &user))
            .await
    }

    async fn billing_state(
        &self,
        tenant: &TenantId,
        user: &UserId,
        period_start: DateTime<Utc>,
    ) -> StoreResult<BillingState> {
        let (tenant, user) = (tenant.clone(), user.clone());
        self.read(move |c| billing::billing_state(c, &tenant, &user, period_start))
            .await
    }

    async fn close_period(
        &self,
        invoice: &Invoice,
        state: &BillingState,
        billed_to: DateTime<Utc>,
    ) -> StoreResult<CloseOutcome> {
        let (invoice, state) = (invoice.clone(), state.clone());
        self.write(move |c| billing::close_period(c, &invoice, &state, billed_to))
            .await
    }

    async fn unpublished_invoices(&self, limit: usize) -> StoreResult<Vec<Invoice>> {
        self.read(move |c| billing::unpublished_invoices(c, limit))
            .await
    }

    async fn claim_invoice(
        &self,
        invoice: &Invoice,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let invoice = invoice.clone();
        self.write(move |c| billing::claim_invoice(c, &invoice, &now, &until))
            .await
    }

    async fn release_invoice_claim(
        &self,
        invoice: &Invoice,
        until: DateTime<Utc>,
    ) -> StoreResult<()> {
        let invoice = invoice.clone();
        self.write(move |c| billing::release_invoice_claim(c, &invoice, &until))
            .await
    }

    async fn mark_invoice_published(&self, invoice: &Invoice) -> StoreResult<()> {
        let invoice = invoice.clone();
        self.write(move |c| billing::mark_invoice_published(c, &invoice))
            .await
    }

    async fn get_job_cursor(&self, job: &str) -> StoreResult<Option<String>> {
        let job = job.to_owned();
        self.read(move |c| billing::get_job_cursor(c, &job)).await
    }

    async fn put_job_cursor(&self, job: &str, cursor: Option<&str>) -> StoreResult<()> {
        let (job, cursor) = (job.to_owned(), cursor.map(str::to_owned));
        self.write(move |c| billing::put_job_cursor(c, &job, cursor.as_deref()))
            .await
    }
}

#[async_trait]
impl PrivacyStore for SqliteStore {
    async fn user_records(&self, tenant: &TenantId, user: &UserId) -> StoreResult<UserRecords> {
        let (tenant, user) = (tenant.clone(), user.clone());
        self.read(move |c| privacy::user_records(c, &tenant, &user))
            .await
    }

    async fn erase_user(
        &self,
        tenant: &TenantId,
        user: &UserId,
        pseudonym: &UserId,
        limit: usize,
    ) -> StoreResult<EraseProgress> {
        let (tenant, user, pseudonym) = (tenant.clone(), user.clone(), pseudonym.clone());
        self.write(move |c| privacy::erase_user(c, &tenant, &user, &pseudonym, limit))
            .await
    }
}

#[cfg(test)]
mod tests;
