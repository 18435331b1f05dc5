//! Organisation subscriptions (SPEC §10) and the invoices that close their periods.
//!
//! An org subscribes like a user: the record is a [`Subscription`] whose `user` field holds
//! the org id (same charset). Its invoices sit in the invoice store beside the users',
//! under the subscriber key [`org_subscriber`] (`org#<org_id>`), which no user id can
//! equal (`#` is not an id character): the invoice outbox, claims and publishing work on
//! them unchanged.
//!
//! Promises every adapter keeps (the conformance suite checks them under concurrency):
//! - a write succeeds only on the version it read (`None`: none stored), else
//!   `VersionConflict`, as for users;
//! - [`OrgStore::close_org_period`] stores the invoice (unpublished, in the outbox) and
//!   replaces the subscription by its next state in one atomic write, only if the
//!   subscription still has the version read and no invoice exists for that
//!   (tenant, org, period): a period is invoiced once however many passes race.

use async_trait::async_trait;

use super::{Page, StoreResult};
use crate::domain::{Invoice, OrgId, Subscription, TenantId};

/// The subscriber key of an org's invoices (`Invoice::user`): `org#<org_id>`.
pub fn org_subscriber(org: &OrgId) -> String {
    format!("org#{org}")
}

/// The org of a subscriber key made by [`org_subscriber`].
pub fn org_of_subscriber(subscriber: &str) -> Option<OrgId> {
    OrgId::parse(subscriber.strip_prefix("org#")?).ok()
}

/// An org subscription the aggregation visits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgRef {
    pub tenant: TenantId,
    pub org: OrgId,
    pub subscription: Subscription,
}

/// What closing an org period did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrgClose {
    /// The invoice is stored and the subscription moved on.
    Closed,
    /// The subscription changed since it was read, or the period is invoiced already:
    /// nothing changed.
    Changed,
}

#[async_trait]
pub trait OrgStore: Send + Sync {
    async fn get_org_subscription(
        &self,
        tenant: &TenantId,
        org: &OrgId,
    ) -> StoreResult<Option<Subscription>>;

    /// Writes `sub` for `org` if the stored version is `expected_version` (`None`: must not
    /// exist); otherwise `VersionConflict`.
    async fn put_org_subscription(
        &self,
        org: &OrgId,
        sub: &Subscription,
        expected_version: Option<u64>,
    ) -> StoreResult<()>;

    /// Every org subscription of every tenant, in pages of at most `limit`; stable order.
    async fn list_org_subscriptions(
        &self,
        cursor: Option<String>,
        limit: usize,
    ) -> StoreResult<Page<OrgRef>>;

    /// Stores `invoice` (its `user` is [`org_subscriber`]) and writes `next` in place of
    /// the subscription of version `expected_version`, atomically (see the module).
    async fn close_org_period(
        &self,
        org: &OrgId,
        invoice: &Invoice,
        next: &Subscription,
        expected_version: u64,
    ) -> StoreResult<OrgClose>;

    /// The org's invoices, newest period first.
    async fn list_org_invoices(&self, tenant: &TenantId, org: &OrgId) -> StoreResult<Vec<Invoice>>;
}
