//! [`FaultyStore`](super::FaultyStore) delegates the admin's list of a tenant's orgs
//! (SPEC §14, `GET /admin/orgs`) through the same fault switch.

use meter_core::domain::{OrgId, TenantId};
use meter_core::store::{Page, StoreResult, TenantOrg, TenantOrgsStore};

use super::FaultyStore;

#[async_trait::async_trait]
impl TenantOrgsStore for FaultyStore {
    async fn list_tenant_orgs(
        &self,
        tenant: &TenantId,
        after: Option<&OrgId>,
        limit: usize,
    ) -> StoreResult<Page<TenantOrg>> {
        self.call(
            "list_tenant_orgs",
            self.inner.list_tenant_orgs(tenant, after, limit),
        )
        .await
    }
}
