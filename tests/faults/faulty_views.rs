//! [`FaultyStore`](super::FaultyStore) delegates the views of wallets (issue 19: the user
//! export's draws, the tenant's wallets) through the same fault switch.

use meter_core::credits::Subscriber;
use meter_core::domain::{TenantId, UserId};
use meter_core::store::{EventDraws, Page, StoreResult, WalletSummary, WalletViewsStore};

use super::FaultyStore;

#[async_trait::async_trait]
impl WalletViewsStore for FaultyStore {
    async fn user_event_draws(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> StoreResult<Vec<EventDraws>> {
        self.call(
            "user_event_draws",
            self.inner.user_event_draws(tenant, user),
        )
        .await
    }

    async fn list_wallets(
        &self,
        tenant: &TenantId,
        after: Option<&Subscriber>,
        limit: usize,
    ) -> StoreResult<Page<WalletSummary>> {
        self.call(
            "list_wallets",
            self.inner.list_wallets(tenant, after, limit),
        )
        .await
    }
}
