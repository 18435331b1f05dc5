//! Raising alerts after usage is recorded, and delivering the outbox.
//!
//! Alerts and invoices are stored before they are published (the outbox) and published by
//! whoever stored them and, if that failed, by the next aggregation passes. Several
//! processes deliver the same outbox (each `meter serve --table` runs a pass a minute), so
//! a publisher first claims the record for [`CLAIM_TTL`] with a conditional store write;
//! only the claimer publishes, then marks it published. A publisher that did not deliver
//! (the publish or the mark failed, or the claim's answer was lost) gives the claim back,
//! so the next pass retries at once; a crashed publisher's claim ends by itself. Delivery
//! stays at-least-once — a publish that went out but was not marked goes out again — so
//! subscribers de-duplicate by id.

use chrono::{DateTime, Duration, Utc};

use super::{Meter, Result};
use crate::alerts::{self, OutboxMessage};
use crate::domain::{Alert, TenantId, UserId};

/// How long a publisher's claim on an outbox record lasts: far longer than a publish takes
/// (SNS answers in well under a second, the SDK's retries take seconds), short enough that
/// the records of a publisher that crashed go out a few passes later.
pub const CLAIM_TTL: Duration = Duration::minutes(5);

impl Meter {
    /// Stores (once) and publishes every alert the user's usage in the period starting at
    /// `period_start` now calls for.
    pub async fn raise_alerts(
        &self,
        tenant: &TenantId,
        user: &UserId,
        period_start: DateTime<Utc>,
    ) -> Result<usize> {
        let state = self
            .store
            .get_user_limits(tenant, user, &|_| period_start)
            .await?;
        self.raise_alerts_of(tenant, user, period_start, &state)
            .await
    }

    /// [`Meter::raise_alerts`] on the user's state as read by the caller with the period
    /// starting at `period_start` (issue 18: ingest reads it with the budget counters).
    pub(super) async fn raise_alerts_of(
        &self,
        tenant: &TenantId,
        user: &UserId,
        period_start: DateTime<Utc>,
        state: &crate::store::UserUsage,
    ) -> Result<usize> {
        let now = self.now();
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

    /// Publishes a stored alert if this process claims it first (another process's pass or
    /// request may be publishing it); on success marks it published, on failure gives the
    /// claim back and leaves it in the outbox for the aggregation to retry.
    pub async fn deliver(&self, alert: &Alert) -> bool {
        let now = self.now();
        let until = now + CLAIM_TTL;
        match self
            .store
            .claim_alert(&alert.tenant, &alert.id, now, until)
            .await
        {
            Ok(true) => {}
            // Published already, or another publisher holds it.
            Ok(false) => return false,
            Err(e) => {
                // The claim may have been taken all the same (the answer was lost).
                tracing::warn!(error = %e, alert = %alert.id, "alert not claimed; left in the outbox for retry");
                self.release_alert(alert, until).await;
                return false;
            }
        }
        match self.publisher.publish(&OutboxMessage::from(alert)).await {
            Ok(()) => match self
                .store
                .mark_alert_published(&alert.tenant, &alert.id)
                .await
            {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(error = %e, alert = %alert.id, "published but not marked; the next pass delivers it again");
                    self.release_alert(alert, until).await;
                    false
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, alert = %alert.id, "alert left in the outbox for retry");
                self.release_alert(alert, until).await;
                false
            }
        }
    }

    /// Gives back this process's claim on an alert it did not deliver, so that the next
    /// pass retries it at once; if that fails too, the claim ends by itself at `until`.
    async fn release_alert(&self, alert: &Alert, until: DateTime<Utc>) {
        if let Err(e) = self
            .store
            .release_alert_claim(&alert.tenant, &alert.id, until)
            .await
        {
            tracing::warn!(error = %e, alert = %alert.id, claimed_until = %until, "claim not released; the alert is retried once it ends");
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
