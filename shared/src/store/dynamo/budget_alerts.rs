//! Budget alerts' once-only write: one `TransactWriteItems` of the alert item under
//! `attribute_not_exists(PK)` (its id is derived from the user and the once-only key, so
//! racing writers collide on it) and `ADD alerts_unread 1` on the user's state item. No
//! fired key is kept on the state item (budget windows are too many for it).

use async_trait::async_trait;

use super::codec::n;
use super::expressions::Update;
use super::items;
use super::requests::first_condition_failed;
use super::{layout, DynamoStore};
use crate::domain::{Alert, OrgId, TenantId};
use crate::store::{org_subscriber, BudgetAlertStore, StoreResult};

#[async_trait]
impl BudgetAlertStore for DynamoStore {
    async fn create_budget_alert_once(&self, alert: &Alert) -> StoreResult<bool> {
        let pk = layout::user_pk(&alert.tenant, &alert.owner_key());
        let mut unread = Update::new();
        unread.add(layout::ALERTS_UNREAD, n(u8::from(!alert.read)));
        let res = self
            .transact_until_decided("creating a budget alert", || {
                Ok(vec![
                    self.tx_put(items::alert_item(alert)?, true)?,
                    self.tx_update(pk.clone(), layout::STATE_SK, &unread)?,
                ])
            })
            .await?;
        match res {
            Ok(()) => Ok(true),
            Err(reasons) if first_condition_failed(&reasons) => Ok(false),
            // Only the alert item has a condition.
            Err(_) => Ok(false),
        }
    }
    async fn list_org_alerts(
        &self,
        tenant: &TenantId,
        org: &OrgId,
        unread_only: bool,
        limit: usize,
    ) -> StoreResult<(Vec<Alert>, u64)> {
        self.list_owner_alerts(tenant, &org_subscriber(org), unread_only, limit)
            .await
    }
}
