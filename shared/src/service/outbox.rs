//! Raising alerts after usage is recorded, and delivering the outbox.

use chrono::{DateTime, Utc};

use super::{Meter, Result};
use crate::alerts::{self, OutboxMessage};
use crate::domain::{Alert, TenantId, UserId};

impl Meter {
    /// Stores (once) and publishes every alert the user's usage in the period starting at
    /// `period_start` now calls for.
    pub async fn raise_alerts(
        &self,
        tenant: &TenantId,
        user: &UserId,
        period_start: DateTime<Utc>,
    ) -> Result<usize> {
        let now = self.now();
        let state = self
            .store
            .get_user_usage(tenant, user, &|_| period_start)
            .await?;
        let plan = self.plan_of(tenant, state.subscription.as_ref()).await?;
        let period = super::period_at(state.subscription.as_ref(), period_start)?;
        let scope = alerts::AlertScope {
            tenant,
            user,
            period_start: period.start,
            now,
        };
        let due = alerts::due_alerts(scope, &plan, &state.usage, &state.fired_alerts, &period);
        let mut raised = 0;
        for alert in due {
            if self.store.create_alert_once(&alert).await? {
                raised += 1;
                self.deliver(&alert).await;
            }
        }
        Ok(raised)
    }

    /// Publishes a stored alert; on success marks it published, on failure leaves it in
    /// the outbox for the aggregation to retry.
    pub async fn deliver(&self, alert: &Alert) -> bool {
        match self.publisher.publish(&OutboxMessage::from(alert)).await {
            Ok(()) => match self
                .store
                .mark_alert_published(&alert.tenant, &alert.id)
                .await
            {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(error = %e, alert = %alert.id, "published but not marked; it may be delivered again");
                    false
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, alert = %alert.id, "alert left in the outbox for retry");
                false
            }
        }
    }

    /// Retries up to `limit` unpublished alerts; returns how many were delivered.
    pub async fn retry_outbox(&self, limit: usize) -> Result<usize> {
        let pending = self.store.unpublished_alerts(limit).await?;
        let mut delivered = 0;
        for alert in pending {
            if self.deliver(&alert).await {
                delivered += 1;
            }
        }
        Ok(delivered)
    }
}
