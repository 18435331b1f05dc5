//! Org wallets on prepaid org plans (issue 19, docs/credits.md "Who pays"): the check reads
//! the org's wallet figures with the user's, and each event draws from the wallet of the
//! subscriber that pays for it (the user's, an org's, or none).
//!
//! Promises every adapter keeps (the conformance suite checks them under concurrency):
//! - [`OrgWalletStore::get_user_limits_with_wallets`] reads the user's limits, the user's
//!   wallet figures and, when an org is named, the org's, in one request on DynamoDB (one
//!   `BatchGetItem`: the org's wallet head is one more key of it);
//! - [`OrgWalletStore::record_events_paying`] records events as
//!   [`super::PrepaidStore::record_events_drawing`] does, but draws each recorded event's
//!   cost from the wallet `payers[i]` names (none: no draw), atomically with the event,
//!   exactly once per event id; on DynamoDB a batch is one `TransactWriteItems` per at most
//!   100 items (the draws of several events on one grant are one conditional update of
//!   their sum) and, without contention, at most 2 reads per user and wallet;
//! - [`OrgWalletStore::wallet_draws`] answers the draws events made from one wallet (an
//!   org's: what its invoices and burn read);
//! - [`OrgWalletStore::close_org_period_charging`] closes an org's period as
//!   [`super::OrgStore::close_org_period`] does and takes the invoice's credit from the
//!   org's wallet in the same write (one SQLite transaction, one `TransactWriteItems`),
//!   once per invoice, as [`super::PrepaidStore::close_period_charging`] does for a user.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{
    CreditState, EventDraws, InvoiceCharge, OrgClose, PeriodPicker, RecordOutcome, StoreResult,
    UserUsage,
};
use crate::budgets::CounterWrite;
use crate::credits::Subscriber;
use crate::domain::{Invoice, OrgId, Subscription, TenantId, UsageEvent, UserId};

#[async_trait]
pub trait OrgWalletStore: Send + Sync {
    /// The user's limits, the user's wallet figures and, when `org` is given, the org's
    /// wallet figures, together.
    async fn get_user_limits_with_wallets(
        &self,
        tenant: &TenantId,
        user: &UserId,
        org: Option<&OrgId>,
        pick: PeriodPicker<'_>,
    ) -> StoreResult<(UserUsage, CreditState, Option<CreditState>)>;

    /// Records `events` (as `record_events_counted` with `writes`, which may be empty) and
    /// draws each recorded event's cost from the wallet of `payers[i]` (`None`: no draw).
    /// `payers` has one entry per event.
    async fn record_events_paying(
        &self,
        events: &[UsageEvent],
        writes: &[Vec<CounterWrite>],
        payers: &[Option<Subscriber>],
    ) -> StoreResult<Vec<RecordOutcome>>;

    /// The draws of the events that drew from `wallet` (timestamped at or after `since`,
    /// when given), oldest first.
    async fn wallet_draws(
        &self,
        tenant: &TenantId,
        wallet: &Subscriber,
        since: Option<DateTime<Utc>>,
    ) -> StoreResult<Vec<EventDraws>>;

    /// Closes the org's period (`invoice`, the subscription rolled to `next` if it is still
    /// at `expected_version`) and, in the same write, takes `charge` from the org's wallet:
    /// each draw off its grant (which must still count and hold it), `overdraft_settled`
    /// off the overdraft (which must still be that large). Otherwise nothing is written
    /// and the answer is [`OrgClose::Changed`].
    async fn close_org_period_charging(
        &self,
        org: &OrgId,
        invoice: &Invoice,
        next: &Subscription,
        expected_version: u64,
        charge: &InvoiceCharge,
    ) -> StoreResult<OrgClose>;
}
