//! Unpriced events draw from the wallet once re-priced (issue 19, docs/credits.md
//! "Re-priced events"). An event recorded while no price was in force has no cost and
//! draws nothing; when the aggregation's `reprice` step prices it, its payer — decided as
//! an ingest decides it (`org_wallets::event_payers`: the subscriber whose plan is in
//! force pays when that plan is prepaid; the subscriptions as they are at the pricing) —
//! pays its cost then, atomically with the pricing write and once
//! (`store::RepriceStore`). An event nobody pays for (postpaid) is priced as before.

use rust_decimal::Decimal;

use super::{Meter, Result};
use crate::domain::UsageEvent;

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
        let payer = if self.tenant_sells_prepaid(tenant).await? {
            let sub = self.store.get_subscription(tenant, &e.user).await?;
            let mut org_plans = super::orgs::OrgPlans::new();
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
        let Some(wallet) = payer else {
            return Ok(self
                .store
                .price_event(tenant, &e.event_id, cost, version)
                .await?);
        };
        let priced = {
            // The ingest's gate too: a pass and the user's traffic draw one at a time.
            let _gate = self.gate(tenant, &e.user).await;
            self.store
                .price_event_paying(tenant, &e.event_id, cost, version, &wallet)
                .await?
        };
        if priced && cost > Decimal::ZERO {
            if let Err(err) = self.observe_wallet_of(tenant, &wallet).await {
                tracing::warn!(error = %err, wallet = %wallet, "could not observe the wallet after pricing an event");
            }
        }
        Ok(priced)
    }
}
