//! Raising alerts after usage is recorded, and delivering the outbox.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::Meter;
use crate::alerts::{self, OutboxMessage};
use crate::domain::{Alert, TenantId, UserId};
use crate::http::ApiError;
use crate::limits::Metric;
use crate::periods::Period;
use crate::usage::PeriodUsage;

/// Recorded usage (holds excluded) of `metric`.
pub fn recorded_amount(metric: &Metric, usage: &PeriodUsage) -> Decimal {
    let mut total = Decimal::ZERO;
    for (p, u) in &usage.by_provider {
        let v = match metric {
            Metric::Calls(Some(q)) if q != p => continue,
            Metric::Tokens(Some(q)) if q != p => continue,
            Metric::Calls(_) => Decimal::from(u.recorded.calls),
            Metric::Tokens(_) => Decimal::from(u.recorded.tokens),
            Metric::CostUsd => u.recorded.cost_usd,
        };
        total = total.checked_add(v).unwrap_or(total);
    }
    total
}

/// The projection of a period's cost from its elapsed fraction (in seconds), once at
/// least an hour has passed; `None` before.
pub fn projected_cost(cost: Decimal, period: &Period, now: DateTime<Utc>) -> Option<Decimal> {
    let elapsed = (now.min(period.end) - period.start).num_seconds();
    let total = (period.end - period.start).num_seconds();
    if elapsed < 3600 || total <= 0 {
        return None;
    }
    cost.checked_mul(Decimal::from(total))?
        .checked_div(Decimal::from(elapsed))
}

impl Meter {
    /// Stores (once) and publishes every alert the user's usage in the period starting at
    /// `period_start` now calls for.
    pub async fn raise_alerts(
        &self,
        tenant: &TenantId,
        user: &UserId,
        period_start: DateTime<Utc>,
    ) -> Result<usize, ApiError> {
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
        let mut due: Vec<Alert> = Vec::new();
        for (metric, limit) in &plan.limits.0 {
            if *limit <= Decimal::ZERO {
                continue;
            }
            let used = recorded_amount(metric, &state.usage);
            for &t in &plan.alert_thresholds {
                let key = alerts::threshold_key(metric, t);
                if state.fired_alerts.contains(&key) {
                    continue;
                }
                if used * Decimal::ONE_HUNDRED >= limit * Decimal::from(t) {
                    due.push(alerts::threshold_alert(scope, metric, t, used, *limit));
                }
            }
        }
        let unpriced: u64 = state
            .usage
            .by_provider
            .values()
            .map(|u| u.unpriced_calls)
            .sum();
        if unpriced > 0 && !state.fired_alerts.contains(alerts::UNPRICED_KEY) {
            due.push(alerts::unpriced_alert(scope, unpriced));
        }
        if let Some(cap) = plan
            .limits
            .0
            .get(&Metric::CostUsd)
            .filter(|c| **c > Decimal::ZERO)
        {
            let cost = recorded_amount(&Metric::CostUsd, &state.usage);
            if let Some(projected) = projected_cost(cost, &period, now) {
                if projected > *cap && !state.fired_alerts.contains(alerts::PROJECTION_KEY) {
                    due.push(alerts::projection_alert(scope, projected, *cap));
                }
            }
        }
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
    pub async fn retry_outbox(&self, limit: usize) -> Result<usize, ApiError> {
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
