//! [`FaultyStore`](super::FaultyStore) delegates the issue-19 credit ports too (grant
//! upkeep, open reservations, period draws), through the same fault switch.

use chrono::{DateTime, Utc};
use meter_core::credits::{Grant, Subscriber};
use meter_core::domain::{Reservation, TenantId, UserId};
use meter_core::periods::Period;
use meter_core::store::{
    DueGrant, GrantUpkeepStore, OpenReservationsStore, PeriodDraws, PeriodDrawsStore, StoreResult,
};

use super::FaultyStore;

#[async_trait::async_trait]
impl GrantUpkeepStore for FaultyStore {
    async fn due_grants(&self, now: DateTime<Utc>, limit: usize) -> StoreResult<Vec<DueGrant>> {
        self.call("due_grants", self.inner.due_grants(now, limit))
            .await
    }
    async fn record_grant_expiry(
        &self,
        tenant: &TenantId,
        wallet: &Subscriber,
        read: &Grant,
    ) -> StoreResult<bool> {
        self.call(
            "record_grant_expiry",
            self.inner.record_grant_expiry(tenant, wallet, read),
        )
        .await
    }
    async fn archive_grant(
        &self,
        tenant: &TenantId,
        wallet: &Subscriber,
        read: &Grant,
    ) -> StoreResult<bool> {
        self.call(
            "archive_grant",
            self.inner.archive_grant(tenant, wallet, read),
        )
        .await
    }
}

#[async_trait::async_trait]
impl OpenReservationsStore for FaultyStore {
    async fn open_reservations(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> StoreResult<Vec<Reservation>> {
        self.call(
            "open_reservations",
            self.inner.open_reservations(tenant, user),
        )
        .await
    }
}

#[async_trait::async_trait]
impl PeriodDrawsStore for FaultyStore {
    async fn period_draws(
        &self,
        tenant: &TenantId,
        user: &UserId,
        period: &Period,
    ) -> StoreResult<PeriodDraws> {
        self.call(
            "period_draws",
            self.inner.period_draws(tenant, user, period),
        )
        .await
    }

    async fn late_draws(
        &self,
        tenant: &TenantId,
        user: &UserId,
        billed_to: DateTime<Utc>,
    ) -> StoreResult<PeriodDraws> {
        self.call("late_draws", self.inner.late_draws(tenant, user, billed_to))
            .await
    }
}

#[async_trait::async_trait]
impl meter_core::store::RepriceStore for FaultyStore {
    async fn price_event_paying(
        &self,
        tenant: &TenantId,
        event_id: &meter_core::domain::EventId,
        cost: rust_decimal::Decimal,
        price_version: &str,
        payer: &Subscriber,
    ) -> StoreResult<bool> {
        self.call(
            "price_event_paying",
            self.inner
                .price_event_paying(tenant, event_id, cost, price_version, payer),
        )
        .await
    }

    async fn price_event_counted(
        &self,
        tenant: &TenantId,
        event_id: &meter_core::domain::EventId,
        cost: rust_decimal::Decimal,
        price_version: &str,
        payer: Option<&Subscriber>,
        writes: &[meter_core::budgets::CounterWrite],
    ) -> StoreResult<bool> {
        self.call(
            "price_event_counted",
            self.inner
                .price_event_counted(tenant, event_id, cost, price_version, payer, writes),
        )
        .await
    }
}
