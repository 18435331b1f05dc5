//! The dashboard's reads in one read transaction, on the calling thread (issue 23): one
//! snapshot, and no hop to the blocking pool per read.

use async_trait::async_trait;

use super::{alerts, subscriptions, usage, SqliteStore};
use crate::domain::{TenantId, UserId};
use crate::store::{DashboardReads, DashboardStore, PeriodsPicker, StoreResult};

#[async_trait]
impl DashboardStore for SqliteStore {
    async fn dashboard_reads(
        &self,
        tenant: &TenantId,
        user: &UserId,
        periods: PeriodsPicker<'_>,
        limit: usize,
    ) -> StoreResult<DashboardReads> {
        self.read_now(|c| {
            let subscription = subscriptions::get_subscription(c, tenant, user)?;
            let usages = periods(subscription.as_ref())
                .iter()
                .map(|start| usage::period_usage(c, tenant, user, start))
                .collect::<StoreResult<_>>()?;
            let (alerts, unread) = alerts::list_alerts(c, tenant, user, false, limit)?;
            Ok(DashboardReads {
                subscription,
                usages,
                alerts,
                unread,
            })
        })
    }
}
