//! Pricing an unpriced event that a prepaid wallet pays for, on SQLite (see
//! [`crate::store::RepriceStore`]): the pricing and the draw in the writer's one
//! transaction; the pricing's `cost IS NULL` read makes it once.

use async_trait::async_trait;
use rust_decimal::Decimal;

use super::SqliteStore;
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
        let (tenant, event_id) = (tenant.clone(), event_id.clone());
        let (version, wallet) = (price_version.to_owned(), payer.to_string());
        self.write(move |c| {
            if !super::billing::price_event(c, &tenant, &event_id, cost, &version)? {
                return Ok(false);
            }
            let priced = super::usage::get_event(c, &tenant, &event_id)?.ok_or_else(|| {
                StoreError::Corrupt("an event priced in this transaction vanished".to_owned())
            })?;
            super::prepaid::draw_event(c, &priced, &wallet)?;
            Ok(true)
        })
        .await
    }
}
