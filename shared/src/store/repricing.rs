//! Pricing an unpriced event that a prepaid wallet pays for (issue 19, docs/credits.md
//! "Re-priced events"): an event recorded while no price was in force draws nothing; when
//! the aggregation prices it later, its cost is drawn from its payer's wallet then.
//!
//! Promise every adapter keeps (the conformance suite checks it under concurrency):
//! [`RepriceStore::price_event_paying`] does what [`super::UsageStore::price_event`] does
//! and, in the same atomic write, draws the event's cost from `payer`'s grants at the
//! event's timestamp ([`crate::credits::draw`]: priority, expiry, age), adds what they do
//! not cover to the wallet's overdraft and keeps the draws with the event, exactly as an
//! ingest's draw is kept (SQLite: a `wallet_draws` row; DynamoDB: the event item's draws,
//! an org's ledger item and a user's `DRAWN#<period>` sums). The event's "unpriced"
//! condition makes it once: of racing or repeated calls one prices and draws, the others
//! change nothing and answer `false`.
//!
//! Issue 18: [`RepriceStore::price_event_counted`] also adds the event's cost to the budget
//! and org counters its ingest wrote (`writes`, cost only: its calls and tokens were
//! counted when it was recorded), in the same write and under the same once, exactly as
//! recording adds them: a write to an org's pooled `period` counter of a period the org
//! has invoiced also adds to that period's pending org adjustment
//! ([`super::OrgBillingStore`]; DynamoDB: under the `OB` guard of the org's counter item).

use async_trait::async_trait;
use rust_decimal::Decimal;

use super::StoreResult;
use crate::budgets::CounterWrite;
use crate::credits::Subscriber;
use crate::domain::{EventId, TenantId};

/// Whether the user's invoice bills the re-priced event `e`, so that a period already
/// invoiced takes its cost as the user's adjustment: unless `writes` (the cost on the
/// event's counters) count it as billed by the org, or, without writes, the payer kept
/// with the event is the org (docs/billing.md, "One payer per call"). Decided on the
/// writes first, so that an event whose org is no longer subscribed (no org counter to
/// bill it) is billed to its user.
pub fn user_pays(e: &crate::domain::UsageEvent, writes: &[CounterWrite]) -> bool {
    if writes.is_empty() {
        return e.user_pays();
    }
    let user = crate::budgets::Scope::User {
        user_id: e.user.clone(),
    };
    !crate::budgets::billed_elsewhere(writes, &user)
}

#[async_trait]
pub trait RepriceStore: Send + Sync {
    /// Prices the unpriced event as `price_event` does and draws `cost` from `payer`'s
    /// wallet in the same write. `false` (nothing changed, nothing drawn) if the event does
    /// not exist or is already priced.
    async fn price_event_paying(
        &self,
        tenant: &TenantId,
        event_id: &EventId,
        cost: Decimal,
        price_version: &str,
        payer: &Subscriber,
    ) -> StoreResult<bool>;

    /// Prices the unpriced event as `price_event` does, draws `cost` from `payer`'s wallet
    /// when one pays (as `price_event_paying`) and applies `writes` (the cost on the
    /// event's budget and org counters, without guards), all in one atomic write. `false`
    /// (nothing changed) if the event does not exist or is already priced.
    async fn price_event_counted(
        &self,
        tenant: &TenantId,
        event_id: &EventId,
        cost: Decimal,
        price_version: &str,
        payer: Option<&Subscriber>,
        writes: &[CounterWrite],
    ) -> StoreResult<bool>;
}
