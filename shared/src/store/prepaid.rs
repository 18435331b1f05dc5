//! Prepaid plans (§11, docs/credits.md): the wallet figures a check reads, a reservation
//! that holds credit, and events that draw their cost from grants.
//!
//! Promises every adapter keeps (the conformance suite checks them under concurrency):
//! - [`PrepaidStore::get_user_limits_with_credit`] reads the user's limits
//!   ([`super::UsageStore::get_user_limits`]) and the user's wallet figures
//!   ([`CreditState`]) in one request on DynamoDB (one `BatchGetItem`);
//! - [`PrepaidStore::reserve_with_credit`] holds the reservation on the plan's counters
//!   and its estimate on the wallet, atomically, only if every guard holds and the
//!   wallet's available credit at the hold's instant admits the estimate
//!   ([`crate::credits::credit_allows`]): of racing holds, only as many succeed as the
//!   credit covers together;
//! - closing a reservation that holds credit (release, settle, expiry) releases its credit
//!   atomically with the close, once;
//! - [`PrepaidStore::record_events_drawing`] records events as
//!   [`super::BudgetCounterStore::record_events_counted`] does and, atomically with each
//!   event recorded, draws its cost from its user's wallet ([`crate::credits::draw`] at
//!   the event's timestamp: priority, expiry, age), adds what the grants do not cover to
//!   the wallet's overdraft and keeps the draws with the event; exactly once per event id
//!   (a duplicate or conflict draws nothing);
//! - [`PrepaidStore::event_draws`] answers each event's draws (the export shows them).

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;

use super::{
    BillingState, CloseOutcome, Guard, PeriodPicker, RecordOutcome, StoreResult, UserUsage,
};
use crate::budgets::CounterWrite;
use crate::credits::{exact_add, exact_sub, CreditError, Draws, Grant, Subscriber};
use crate::domain::money::normalized;
use crate::domain::{EventId, Invoice, Reservation, TenantId, UsageEvent, UserId};
use crate::limits::Metric;

/// A wallet's figures as the check reads them: per expiry instant the credit of the
/// wallet's non-voided grants (`None`: never expires), the overdraft and the credit held
/// by open reservations. On DynamoDB this is the wallet's head item.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreditState {
    pub buckets: BTreeMap<Option<DateTime<Utc>>, Decimal>,
    pub overdrawn_usd: Decimal,
    pub held_usd: Decimal,
    /// Issue 19 (alarms after a hold): the wallet's `low_balance_usd` and its alarms as
    /// stored (`None`: never observed), read with the figures at no extra cost, so that a
    /// reservation can tell from its own read whether its hold crosses a level
    /// (`service::hold_alarms`).
    pub low_balance_usd: Option<Decimal>,
    pub alarms: Option<crate::credits::WalletAlarms>,
}

impl CreditState {
    /// The buckets that count at `at` (no expiry, or `expires_at > at`).
    pub fn live(
        &self,
        at: DateTime<Utc>,
    ) -> impl Iterator<Item = (Option<DateTime<Utc>>, Decimal)> + '_ {
        self.buckets
            .iter()
            .filter(move |(e, _)| e.is_none_or(|e| e > at))
            .map(|(e, v)| (*e, *v))
    }

    /// `Σ live buckets − overdrawn`, exactly.
    pub fn balance(&self, at: DateTime<Utc>) -> Result<Decimal, CreditError> {
        let grants = self
            .live(at)
            .try_fold(Decimal::ZERO, |acc, (_, v)| exact_add(acc, v))?;
        exact_sub(grants, self.overdrawn_usd)
    }

    /// `balance − held`, exactly: what a check may still admit.
    pub fn available(&self, at: DateTime<Utc>) -> Result<Decimal, CreditError> {
        exact_sub(self.balance(at)?, self.held_usd)
    }
}

/// The credit a reservation holds on its user's wallet, with what the check read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditHold {
    /// The wallet that holds it: the user's, or an org's on a prepaid org plan (issue 19,
    /// `store::OrgWalletStore`).
    pub wallet: Subscriber,
    /// The estimated cost (`None`: the call has no estimate; nothing is held, but the
    /// wallet must still have credit).
    pub estimate: Option<Decimal>,
    /// The wallet as the check read it (DynamoDB conditions the hold on it still
    /// admitting the estimate).
    pub read: CreditState,
    /// The instant the check decided at (grants expiring by then do not count).
    pub at: DateTime<Utc>,
}

impl CreditHold {
    /// What is held: the estimate, 0 without one.
    pub fn amount(&self) -> Decimal {
        self.estimate.unwrap_or(Decimal::ZERO)
    }
}

/// What [`PrepaidStore::reserve_with_credit`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreditReserve {
    /// Held on the plan's counters and on the wallet.
    Reserved,
    /// A plan guard failed at write time; nothing was held.
    Denied { metric: Metric },
    /// The wallet did not admit the estimate at write time (or changed since the read in
    /// a way the write could not rule out: read it again); nothing was held.
    NoCredit,
}

/// One event's draws as kept with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventDraws {
    pub event_id: EventId,
    pub wallet: Subscriber,
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub draws: Draws,
    /// The event's whole cost (`Σ draws + shortfall`).
    #[serde(serialize_with = "normalized")]
    pub cost_usd: Decimal,
}

impl EventDraws {
    /// The draws of one event, amounts normalised (`"0.6"`, not `"0.600000"`) as
    /// answers show money.
    pub fn new(
        event_id: EventId,
        wallet: Subscriber,
        at: DateTime<Utc>,
        mut draws: Draws,
        cost_usd: Decimal,
    ) -> Self {
        for d in &mut draws.draws {
            d.amount_usd = d.amount_usd.normalize();
        }
        draws.shortfall_usd = draws.shortfall_usd.normalize();
        Self {
            event_id,
            wallet,
            at,
            draws,
            cost_usd,
        }
    }
}

#[async_trait]
pub trait PrepaidStore: Send + Sync {
    /// The user's limits (as `get_user_limits`) and the user's wallet figures, together.
    async fn get_user_limits_with_credit(
        &self,
        tenant: &TenantId,
        user: &UserId,
        pick: PeriodPicker<'_>,
    ) -> StoreResult<(UserUsage, CreditState)>;

    /// The wallet's figures alone (a check that lost a race reads them again).
    async fn get_credit_state(
        &self,
        tenant: &TenantId,
        wallet: &Subscriber,
    ) -> StoreResult<CreditState>;

    /// Holds `reservation.held` on its period's counters if every guard holds, applies
    /// `writes` to budget counters as
    /// [`BudgetCounterStore::reserve_counted`](super::BudgetCounterStore::reserve_counted)
    /// does (empty when no budget applies), and holds its credit on its user's wallet if
    /// the wallet admits it: all or nothing.
    async fn reserve_with_credit(
        &self,
        reservation: &Reservation,
        guards: &[Guard],
        writes: &[CounterWrite],
        hold: &CreditHold,
        now: DateTime<Utc>,
    ) -> StoreResult<CreditReserve>;

    /// Records `events` (as `record_events_counted` with `writes`, which may be empty)
    /// and draws each recorded event's cost from its user's wallet.
    async fn record_events_drawing(
        &self,
        events: &[UsageEvent],
        writes: &[Vec<CounterWrite>],
    ) -> StoreResult<Vec<RecordOutcome>>;

    /// The draws of the user's events (timestamped at or after `since`, when given),
    /// oldest first.
    async fn event_draws(
        &self,
        tenant: &TenantId,
        user: &UserId,
        since: Option<DateTime<Utc>>,
    ) -> StoreResult<Vec<EventDraws>>;

    /// Closes a period as [`super::InvoiceStore::close_period`] does and, in the same
    /// write, takes `charge` from the wallet: each draw off its grant (which must still
    /// count and hold it) and `overdraft_settled` off the overdraft (which must still be
    /// that large). Otherwise nothing is written and the answer is
    /// [`CloseOutcome::Changed`]: read the wallet again. Once per invoice: a period
    /// already invoiced takes nothing.
    /// Stores the wallet's alarms if they were stored `seq_read` times (0: never);
    /// `false` (nothing written) when another observer stored them meanwhile.
    async fn put_wallet_alarms(
        &self,
        tenant: &TenantId,
        wallet: &Subscriber,
        seq_read: u64,
        alarms: crate::credits::WalletAlarms,
    ) -> StoreResult<bool>;

    async fn close_period_charging(
        &self,
        invoice: &Invoice,
        state: &BillingState,
        billed_to: DateTime<Utc>,
        charge: &InvoiceCharge,
    ) -> StoreResult<CloseOutcome>;
}

/// What an invoice takes from its subscriber's wallet (issue 19): the postpaid
/// `credits_applied` drawn from the grants, and the overdraft a prepaid invoice bills.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InvoiceCharge {
    pub wallet: Option<Subscriber>,
    /// The wallet's grants as read (their expiry places each draw on DynamoDB).
    pub grants: Vec<Grant>,
    /// Taken off the grants (no shortfall).
    pub draws: Draws,
    /// Taken off the overdraft: what this invoice bills of it.
    pub overdraft_settled: Decimal,
}
