//! The dashboard's reads: the subscription (it picks the periods), then the periods' usage
//! and the alerts at the same time — as before the port had them together.

use async_trait::async_trait;

use super::DynamoStore;
use crate::domain::{TenantId, UserId};
use crate::store::{
    AlertStore, DashboardReads, DashboardStore, PeriodsPicker, StoreResult, SubscriptionStore,
    UsageStore,
};

#[async_trait]
impl DashboardStore for DynamoStore {
    async fn dashboard_reads(
        &self,
        tenant: &TenantId,
        user: &UserId,
        periods: PeriodsPicker<'_>,
        limit: usize,
    ) -> StoreResult<DashboardReads> {
        let usage = async {
            let subscription = self.get_subscription(tenant, user).await?;
            let starts = periods(subscription.as_ref());
            let usages = self.get_period_usage(tenant, user, &starts).await?;
            Ok((subscription, usages))
        };
        let ((subscription, usages), (alerts, unread)) =
            tokio::try_join!(usage, self.list_alerts(tenant, user, false, limit))?;
        Ok(DashboardReads {
            subscription,
            usages,
            alerts,
            unread,
        })
    }
}
