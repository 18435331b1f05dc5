//! Pricing an unpriced event, with what it draws and counts, on SQLite (see
//! [`crate::store::RepriceStore`]): the pricing, the draw and (issue 18) the cost on the
//! event's budget and org counters — with the org's late adjustment, as recording adds
//! it (`budget_counters::add_event`) — in the writer's one transaction; the pricing's
//! `cost IS NULL` read makes it once.

use async_trait::async_trait;
use rust_decimal::Decimal;

use super::SqliteStore;
use crate::budgets::CounterWrite;
use crate::credits::Subscriber;
use crate::domain::{EventId, TenantId};
use crate::store::{RepriceStore, StoreError, StoreResult};

#[async_trait]
impl RepriceStore for SqliteStore {
    async fn price_event_paying(
        &self,
        tenant: &TenantId,
        event_id: &EventId,
        cost: Decimal,
        price_version: &str,
        payer: &Subscriber,
    ) -> StoreResult<bool> {
        self.price_event_counted(tenant, event_id, cost, price_version, Some(payer), &[])
            .await
    }

    async fn price_event_counted(
        &self,
        tenant: &TenantId,
        event_id: &EventId,
        cost: Decimal,
        price_version: &str,
        payer: Option<&Subscriber>,
        writes: &[CounterWrite],
    ) -> StoreResult<bool> {
        let (tenant, event_id) = (tenant.clone(), event_id.clone());
        let (version, wallet) = (price_version.to_owned(), payer.map(ToString::to_string));
        let writes = writes.to_vec();
        self.write(move |c| {
            if !super::billing::price_event(c, &tenant, &event_id, cost, &version, &writes)? {
                return Ok(false);
            }
            if let Some(wallet) = &wallet {
                let priced = super::usage::get_event(c, &tenant, &event_id)?.ok_or_else(|| {
                    StoreError::Corrupt("an event priced in this transaction vanished".to_owned())
                })?;
                super::prepaid::draw_event(c, &priced, wallet)?;
                // A late org event's draw goes with its adjustment (org_late_draws).
                super::org_late_draws::mark_recorded(c, &priced, wallet)?;
            }
            super::budget_counters::add_event(c, tenant.as_str(), &writes)?;
            Ok(true)
        })
        .await
    }
}
