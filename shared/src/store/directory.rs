//! Tenant-wide reads for the admin's web view: the tenant's users with their
//! period usage, the tenant's latest alerts, and one alert by id (to check whose it is).

use async_trait::async_trait;

use super::{Page, PeriodPicker, StoreResult, UserUsage};
use crate::domain::{Alert, TenantId, UserId};

/// One user of a tenant as the admin listing reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantUser {
    pub user: UserId,
    /// The subscription and the usage (recorded and held) of the period the picker chose.
    pub usage: UserUsage,
    /// Unread alerts of the user (all periods).
    pub unread_alerts: u64,
}

#[async_trait]
pub trait DirectoryStore: Send + Sync {
    /// One tenant's users — everyone with a subscription or recorded usage, as
    /// [`super::SubscriptionStore::list_users`] lists them — in user-id order (bytes),
    /// at most `limit` of them after the user `after` (the last one of the previous page);
    /// each with its subscription, what limits read of the period `pick` chooses from it
    /// (as [`super::UsageStore::get_user_limits`]: no display-only counts), and its
    /// unread alert count. `next` is the last user listed when more may follow. May lag a
    /// write by a moment (DynamoDB reads the list from an index).
    async fn list_tenant_users(
        &self,
        tenant: &TenantId,
        after: Option<&UserId>,
        limit: usize,
        pick: PeriodPicker<'_>,
    ) -> StoreResult<Page<TenantUser>>;

    /// The tenant's newest alerts, of every user, newest first, at most `limit`.
    async fn tenant_alerts(&self, tenant: &TenantId, limit: usize) -> StoreResult<Vec<Alert>>;

    /// One alert of the tenant; `None` if the tenant has no alert with this id.
    async fn get_alert(&self, tenant: &TenantId, alert_id: &str) -> StoreResult<Option<Alert>>;
}
