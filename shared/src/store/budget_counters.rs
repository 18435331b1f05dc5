//! Budget counters (see [`crate::budgets::counting`]): per budget counter key (scope,
//! window start, and the member for `each_member` budgets), the usage counted in the
//! window, per provider.
//!
//! Promises every adapter keeps (the conformance suite checks them under concurrency):
//! - a counter no one wrote reads as zero; a new window is a new counter (its key holds
//!   the window start), so a window starts from zero without any reset;
//! - [`BudgetCounterStore::add_to_budget_counters`] writes every counter of its list or
//!   none: each guard is checked against the counter's usage at the write, atomically
//!   with every other counter's guards and increments;
//! - [`BudgetCounterStore::record_events_counted`] records events exactly as
//!   [`UsageStore::record_events`](super::UsageStore::record_events) and adds each
//!   recorded event's writes atomically with it, exactly once per event id (a duplicate
//!   or a conflict adds nothing);
//! - [`BudgetCounterStore::reserve_counted`] holds a reservation on the plan counters and
//!   every budget counter at once (all or none, every guard checked at the write); the
//!   reservation's `budget_holds` go back exactly once when it is released, settled by
//!   its event or expired, atomically with its plan hold;
//! - counters do not outlive their window for long: DynamoDB items carry a `ttl` a day
//!   after the window's end, SQLite rows are pruned a day after it.

use async_trait::async_trait;

use super::{Guard, RecordOutcome, ReserveOutcome, StoreResult};
use crate::budgets::{CounterKey, CounterWrite};
use crate::domain::{Reservation, TenantId, UsageEvent};
use crate::usage::PeriodUsage;

/// How long a counter is kept after its window ended (then dropped).
pub const COUNTER_GRACE: chrono::Duration = chrono::Duration::days(1);

#[async_trait]
pub trait BudgetCounterStore: Send + Sync {
    /// The usage counted on each counter (in `recorded`; zero when never written), in the
    /// order of `counters`.
    async fn get_budget_counters(
        &self,
        tenant: &TenantId,
        counters: &[CounterKey],
    ) -> StoreResult<Vec<PeriodUsage>>;

    /// Applies every write or none: `true` when written, `false` when a guard did not
    /// pass (nothing written). `now` is the service's clock (what pruning measures from).
    async fn add_to_budget_counters(
        &self,
        tenant: &TenantId,
        writes: &[CounterWrite],
        now: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<bool>;

    /// Records `events` as `record_events` does and, atomically with each event recorded,
    /// applies its writes (`writes[i]` for `events[i]`, without guards).
    /// Holds `reservation` as [`UsageStore::reserve`](super::UsageStore::reserve) does
    /// (guarded by `guards` on the user's plan counters) and applies `writes` to budget
    /// counters (each guarded by its own guards), all in one atomic write: every guard
    /// passes and everything is written, or nothing is (`Denied` with a failing metric).
    /// `reservation.budget_holds` lists what `writes` hold, so that closing the
    /// reservation (release, settlement, expiry) returns it exactly once.
    async fn reserve_counted(
        &self,
        reservation: &Reservation,
        guards: &[Guard],
        writes: &[CounterWrite],
        now: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<ReserveOutcome>;

    async fn record_events_counted(
        &self,
        events: &[UsageEvent],
        writes: &[Vec<CounterWrite>],
    ) -> StoreResult<Vec<RecordOutcome>>;
}
