//! Unpriced events draw from the wallet once re-priced (issue 19, docs/credits.md
//! "Re-priced events"). An event recorded while no price was in force has no cost and
//! draws nothing; when the aggregation's `reprice` step prices it, its payer — decided as
//! an ingest decides it (`org_wallets::event_payers`: the subscriber whose plan is in
//! force pays when that plan is prepaid; the subscriptions as they are at the pricing) —
//! pays its cost then, atomically with the pricing write and once
//! (`store::RepriceStore`). An event nobody pays for (postpaid) is priced as before.
//!
//! Issue 18: the cost also goes to every budget and org counter the event's ingest wrote
//! (computed as an ingest computes them, `Meter::event_counter_writes`, with the budgets
//! and the org's plan as they are at the pricing; cost only: its calls and tokens were
//! counted when it was recorded) in the same write: an org's pooled `period` counter (what
//! the org's invoice bills), the member's and team's counters of the org reads, the cost
//! budgets of the event's windows; and, when the org already invoiced the event's period,
//! that period's pending org adjustment (billed on the org's next invoice).

use rust_decimal::Decimal;

use super::{Meter, Result};
use crate::budgets::{CounterWrite, Scope};
use crate::domain::UsageEvent;
use crate::usage::Tally;

impl Meter {
    /// Prices the unpriced event `e` at `cost` (`version`: the price version) and, when a
    /// prepaid wallet pays for it, draws the cost from that wallet in the same write, then
    /// observes that wallet's alarms. `true` if this call priced it.
    pub(super) async fn price_unpriced(
        &self,
        e: &UsageEvent,
        cost: Decimal,
        version: &str,
    ) -> Result<bool> {
        let tenant = &e.tenant;
        // Issue 18: the budgets of the user's own scope, listed once (an event naming no
        // org, of a user without budgets, counts on no budget counter: no more reads).
        let mut listed = super::enforce::ListedBudgets::new();
        let own = Scope::User {
            user_id: e.user.clone(),
        };
        let own_budgets = self.store.list_budgets(tenant, &own).await?;
        let counted = !cost.is_zero() && (e.org_id.is_some() || !own_budgets.is_empty());
        listed.insert(own, own_budgets);
        let prepaid = self.tenant_sells_prepaid(tenant).await?;
        let sub = match counted || prepaid {
            true => self.store.get_subscription(tenant, &e.user).await?,
            false => None,
        };
        let mut org_plans = super::orgs::OrgPlans::new();
        let writes = match counted {
            true => {
                self.repriced_writes(e, cost, sub.as_ref(), &mut org_plans, &mut listed)
                    .await?
            }
            false => Vec::new(),
        };
        let payer = if prepaid {
            self.event_payers(
                tenant,
                &e.user,
                sub.as_ref(),
                std::slice::from_ref(e),
                &mut org_plans,
            )
            .await?
            .pop()
            .flatten()
        } else {
            None
        };
        let priced = match &payer {
            None if writes.is_empty() => {
                self.store
                    .price_event(tenant, &e.event_id, cost, version)
                    .await?
            }
            None => {
                self.store
                    .price_event_counted(tenant, &e.event_id, cost, version, None, &writes)
                    .await?
            }
            Some(wallet) => {
                // The ingest's gate too: a pass and the user's traffic draw one at a time.
                let _gate = self.gate(tenant, &e.user).await;
                self.store
                    .price_event_counted(tenant, &e.event_id, cost, version, Some(wallet), &writes)
                    .await?
            }
        };
        // Issue 18: the budget thresholds the cost crossed (service::repriced_alerts).
        if priced && !writes.is_empty() {
            self.alert_repriced_budgets(e, cost, sub.as_ref(), &mut org_plans, &mut listed)
                .await;
        }
        // Issue 18: the plan thresholds the cost crossed (service::repriced_alerts).
        if priced && cost > Decimal::ZERO {
            self.alert_repriced_plan(e, &mut org_plans).await;
        }
        if let Some(wallet) = payer.filter(|_| priced && cost > Decimal::ZERO) {
            if let Err(err) = self.observe_wallet_of(tenant, &wallet).await {
                tracing::warn!(error = %err, wallet = %wallet, "could not observe the wallet after pricing an event");
            }
        }
        Ok(priced)
    }

    /// What pricing `e` at `cost` adds to its budget and org counters: the counters its
    /// ingest writes, each by the cost alone.
    async fn repriced_writes(
        &self,
        e: &UsageEvent,
        cost: Decimal,
        sub: Option<&crate::domain::Subscription>,
        org_plans: &mut super::orgs::OrgPlans,
        listed: &mut super::enforce::ListedBudgets,
    ) -> Result<Vec<CounterWrite>> {
        let priced = UsageEvent {
            cost_usd: Some(cost),
            ..e.clone()
        };
        // Every scope's budgets are listed (the user's own already): none, no counter.
        let (writes, _) = self
            .event_counter_writes(&e.tenant, &priced, sub, true, org_plans, listed)
            .await?;
        Ok(writes
            .into_iter()
            .map(|w| CounterWrite {
                add: Tally {
                    cost_usd: cost,
                    ..Tally::default()
                },
                ..w
            })
            .collect())
    }
}
