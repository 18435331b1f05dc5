//! Budget alerts' once-only write: an `alerts` row like any other (its id and its
//! `(tenant, user, period_start, key)` are both unique).

use async_trait::async_trait;

use super::SqliteStore;
use crate::domain::{Alert, OrgId, TenantId};
use crate::store::{org_subscriber, BudgetAlertStore, StoreResult};

#[async_trait]
impl BudgetAlertStore for SqliteStore {
    async fn create_budget_alert_once(&self, alert: &Alert) -> StoreResult<bool> {
        let alert = alert.clone();
        self.write(move |c| super::alerts::create_alert_once(c, &alert))
            .await
    }
    async fn list_org_alerts(
        &self,
        tenant: &TenantId,
        org: &OrgId,
        unread_only: bool,
        limit: usize,
    ) -> StoreResult<(Vec<Alert>, u64)> {
        let (tenant, owner) = (tenant.clone(), org_subscriber(org));
        self.read(move |c| super::alerts::list_owner_alerts(c, &tenant, &owner, unread_only, limit))
            .await
    }
}
