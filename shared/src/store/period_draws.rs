//! What a user's prepaid events drew in one billing period (issue 19), read strongly
//! consistent for the period's invoice (`service::prepaid::invoice_credits`):
//!
//! - SQLite: the sum of the period's rows of `wallet_draws` (written in each event's
//!   transaction; every read sees every committed write);
//! - DynamoDB: one item per (wallet, period) in the wallet's partition,
//!   `SK = DRAWN#<period id>`, `drawn_usd` and `shortfall_usd` (N, exact) and `events`,
//!   added to (`ADD`) in each drawing event's own transaction, read with one consistent
//!   `GetItem`. (The events' `draws` are also on the event items, listed through the
//!   eventually consistent `by_user` index: right for the export and the burn, not for an
//!   invoice closed right after the period's last events.)

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::StoreResult;
use crate::domain::{TenantId, UserId};
use crate::periods::Period;

/// The draws of a period's events, summed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeriodDraws {
    /// Σ what the events drew from grants.
    pub drawn_usd: Decimal,
    /// Σ what the grants could not cover (added to the overdraft).
    pub shortfall_usd: Decimal,
    /// How many events drew.
    pub events: u64,
}

#[async_trait]
pub trait PeriodDrawsStore: Send + Sync {
    /// The draws of `user`'s events of `period` from the user's wallet.
    async fn period_draws(
        &self,
        tenant: &TenantId,
        user: &UserId,
        period: &Period,
    ) -> StoreResult<PeriodDraws>;

    /// The draws of `user`'s *late* events (docs/credits.md, "Late events on prepaid
    /// plans"): events recorded or re-priced while their own period was already closed
    /// and the user's `billed_to` was `billed_to`. They are not in their period's sums:
    /// they belong to the invoice that bills their adjustment, the close that reads the
    /// billing state with this `billed_to` (and moves it on). Same consistency as
    /// [`Self::period_draws`].
    async fn late_draws(
        &self,
        tenant: &TenantId,
        user: &UserId,
        billed_to: DateTime<Utc>,
    ) -> StoreResult<PeriodDraws>;
}
