//! Budget alerts of a re-priced event (issue 18, SPEC §10): when the aggregation prices an
//! event recorded without a price (`service::repricing`), its cost goes to the cost
//! budgets of the event's windows; a threshold that cost takes a budget over is alerted
//! as an ingest alerts it (`service::budget_alerts`: once per (budget, window, metric,
//! threshold), judged on the counter as it is after the pricing write, stored once and
//! published through the outbox).

use rust_decimal::Decimal;

use super::Meter;
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
}
