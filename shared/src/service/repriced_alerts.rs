//! Alerts of a re-priced event (issue 18, SPEC §7 and §10): when the aggregation prices
//! an event recorded without a price (`service::repricing`), its cost goes to the user's
//! period usage and to the cost budgets of the event's windows. A threshold that cost
//! takes a budget over is alerted as an ingest alerts it (`service::budget_alerts`: once
//! per (budget, window, metric, threshold), judged on the counter as it is after the
//! pricing write), and so is a threshold of the user's plan (`cost_usd` of the event's
//! period, judged on the user's state read after the write): stored once by key and
//! published through the outbox.

use rust_decimal::Decimal;

use super::{Meter, Result};
use crate::domain::{Subscription, UsageEvent};

impl Meter {
    /// Raises the budget alerts pricing `e` at `cost` calls for (`e` was just priced by
    /// this pass, its counters written). Best effort: the event stays priced; an error
    /// is logged and the threshold is alerted by the next usage that counts there.
    pub(super) async fn alert_repriced_budgets(
        &self,
        e: &UsageEvent,
        cost: Decimal,
        sub: Option<&Subscription>,
        org_plans: &mut super::orgs::OrgPlans,
        listed: &mut super::enforce::ListedBudgets,
    ) {
        let priced = UsageEvent {
            cost_usd: Some(cost),
            ..e.clone()
        };
        let raised = async {
            // The user's own budgets are listed (`listed`): `true` lets them count.
            let due = self
                .budget_alerts_due(
                    &e.tenant,
                    sub,
                    true,
                    std::slice::from_ref(&priced),
                    org_plans,
                    listed,
                )
                .await?;
            self.raise_due_budget_alerts(&e.tenant, due, Default::default())
                .await
        }
        .await;
        if let Err(err) = raised {
            tracing::warn!(error = %err, tenant = %e.tenant, event_id = %e.event_id, "could not evaluate budget alerts after pricing an event");
        }
    }

    /// Raises the plan alerts pricing `e` calls for: the cost is on the user's usage of
    /// the event's period now, so a threshold of the plan it crossed is raised by this
    /// pass rather than by the user's next event. Not when the user has no subscription
    /// and the event names an org with an active one (the org stands in for Free: no
    /// plan alerts, as at ingest). Best effort, as the budget alerts above.
    pub(super) async fn alert_repriced_plan(
        &self,
        e: &UsageEvent,
        org_plans: &mut super::orgs::OrgPlans,
    ) {
        if let Err(err) = self.raise_repriced_plan_alerts(e, org_plans).await {
            tracing::warn!(error = %err, tenant = %e.tenant, event_id = %e.event_id, "could not evaluate plan alerts after pricing an event");
        }
    }

    async fn raise_repriced_plan_alerts(
        &self,
        e: &UsageEvent,
        org_plans: &mut super::orgs::OrgPlans,
    ) -> Result<()> {
        let (tenant, period) = (&e.tenant, e.period_start);
        let state = self
            .store
            .get_user_limits(tenant, &e.user, &|_| period)
            .await?;
        let sub = state.subscription.as_ref();
        if self
            .org_stands_in(tenant, sub, std::slice::from_ref(e), org_plans)
            .await
        {
            return Ok(());
        }
        self.raise_alerts_of(tenant, &e.user, period, &state)
            .await
            .map(drop)
    }
}
