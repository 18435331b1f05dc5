//! The reads behind a user's dashboard (`service::dashboard`, issue 23): the subscription,
//! the usage of the periods it implies, and the newest alerts with the unread count. An
//! adapter may take them at once (SQLite: one read transaction); they are as
//! [`SubscriptionStore::get_subscription`](super::SubscriptionStore::get_subscription),
//! [`UsageStore::get_period_usage`](super::UsageStore::get_period_usage) and
//! [`AlertStore::list_alerts`](super::AlertStore::list_alerts) read them.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreResult;
use crate::domain::{Alert, Subscription, TenantId, UserId};
use crate::usage::PeriodUsage;

/// The starts of the periods to read, from the subscription read (none stored: `None`).
pub type PeriodsPicker<'a> =
    &'a (dyn Fn(Option<&Subscription>) -> Vec<DateTime<Utc>> + Send + Sync);

/// What [`DashboardStore::dashboard_reads`] read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DashboardReads {
    pub subscription: Option<Subscription>,
    /// One per picked start, in its order, zero-filled.
    pub usages: Vec<PeriodUsage>,
    /// The newest alerts (at most the number asked for), newest first.
    pub alerts: Vec<Alert>,
    /// Every unread alert of the user, whatever `alerts` shows.
    pub unread: u64,
}

#[async_trait]
pub trait DashboardStore: Send + Sync {
    /// The user's subscription, the usage of the periods `periods` picks from it, and the
    /// newest `alerts` alerts with the unread count.
    async fn dashboard_reads(
        &self,
        tenant: &TenantId,
        user: &UserId,
        periods: PeriodsPicker<'_>,
        alerts: usize,
    ) -> StoreResult<DashboardReads>;
}
