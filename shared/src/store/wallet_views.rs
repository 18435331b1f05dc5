//! Reads for the views of wallets (issue 19): the draws of a user's events whichever
//! wallet paid for them (the user export), and a page of the tenant's wallets (the admin
//! view).
//!
//! Promises every adapter keeps (the conformance suite checks them):
//! - [`WalletViewsStore::user_event_draws`] answers the draws of every event of the user
//!   that drew from a wallet — the user's own or an org's (the event's `org_id`) — each
//!   naming that wallet, oldest first; never another user's events;
//! - [`WalletViewsStore::list_wallets`] pages the tenant's wallets that hold or held
//!   grants, in wallet order (users before orgs, then by id), each with its figures as
//!   [`CreditState`] and its low-balance level; a page reads at most `limit` wallets, so
//!   the read does not grow with the tenant.

use async_trait::async_trait;
use rust_decimal::Decimal;

use super::{CreditState, EventDraws, Page, StoreResult};
use crate::credits::Subscriber;
use crate::domain::{TenantId, UserId};

/// One wallet of a tenant as the admin view lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletSummary {
    pub wallet: Subscriber,
    pub credit: CreditState,
    pub low_balance_usd: Option<Decimal>,
}

#[async_trait]
pub trait WalletViewsStore: Send + Sync {
    /// The draws of the user's events, from whichever wallet paid, oldest first.
    async fn user_event_draws(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> StoreResult<Vec<EventDraws>>;

    /// Up to `limit` of the tenant's wallets that hold or held grants, after `after` in
    /// wallet order; `next` is the cursor of the next page (the last wallet's
    /// `<user|org>/<id>`), `None` after the last.
    async fn list_wallets(
        &self,
        tenant: &TenantId,
        after: Option<&Subscriber>,
        limit: usize,
    ) -> StoreResult<Page<WalletSummary>>;
}
