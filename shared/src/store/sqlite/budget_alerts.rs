//! Budget alerts' once-only write: an `alerts` row like any other (its id and its
//! `(tenant, user, period_start, key)` are both unique).

use async_trait::async_trait;

use super::SqliteStore;
use crate::domain::Alert;
use crate::store::{BudgetAlertStore, StoreResult};

#[async_trait]
impl BudgetAlertStore for SqliteStore {
    async fn create_budget_alert_once(&self, alert: &Alert) -> StoreResult<bool> {
        let alert = alert.clone();
        self.write(move |c| super::alerts::create_alert_once(c, &alert))
            .await
    }
}
