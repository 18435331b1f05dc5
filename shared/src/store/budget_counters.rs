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
//! - counters do not outlive their window for long: DynamoDB items carry a `ttl` a day
//!   after the window's end, SQLite rows are pruned a day after it.

use async_trait::async_trait;

use super::{RecordOutcome, StoreResult};
use crate::budgets::{CounterKey, CounterWrite};
use crate::domain::{TenantId, UsageEvent};
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
    async fn record_events_counted(
        &self,
        events: &[UsageEvent],
        writes: &[Vec<CounterWrite>],
    ) -> StoreResult<Vec<RecordOutcome>>;
}
