//! Plans (`PLAN#<name>` items of the tenant's partition) and price versions (one item
//! per version in `PRICES#<tenant>` or, for the shared catalog, `PRICES#*`).

use async_trait::async_trait;

use super::codec::{from_item, get_s, s, to_item};
use super::layout;
use super::requests::key;
use super::DynamoStore;
use crate::domain::{PlanName, TenantId};
use crate::limits::Plan;
use crate::store::{CatalogStore, StoreError, StoreResult};

#[async_trait]
impl CatalogStore for DynamoStore {
    async fn put_plan(&self, tenant: &TenantId, plan: &Plan) -> StoreResult<()> {
        let mut item = to_item(plan)?;
        item.extend(key(
            layout::tenant_pk(tenant),
            layout::plan_sk(plan.name.as_str()),
        ));
        self.put(item).await
    }

    async fn get_plan(&self, tenant: &TenantId, name: &PlanName) -> StoreResult<Option<Plan>> {
        let item = self
            .get_item(
                layout::tenant_pk(tenant),
                &layout::plan_sk(name.as_str()),
                &[],
            )
            .await?;
        item.as_ref().map(from_item).transpose()
    }

    async fn list_plans(&self, tenant: &TenantId) -> StoreResult<Vec<Plan>> {
        let items = self
            .query_prefix(layout::tenant_pk(tenant), layout::PLAN_PREFIX, true)
            .await?;
        items.iter().map(from_item).collect()
    }

    async fn put_price_version(
        &self,
        scope: Option<&TenantId>,
        id: &str,
        json: &serde_json::Value,
    ) -> StoreResult<()> {
        let mut item = key(layout::prices_pk(scope), id);
        item.insert("doc".into(), s(json.to_string()));
        self.put(item).await
    }

    async fn list_price_versions(
        &self,
        scope: Option<&TenantId>,
    ) -> StoreResult<Vec<serde_json::Value>> {
        let items = self
            .query_prefix(layout::prices_pk(scope), "", true)
            .await?;
        items
            .iter()
            .map(|item| {
                let doc = get_s(item, "doc")
                    .ok_or_else(|| StoreError::Corrupt("price version without doc".into()))?;
                serde_json::from_str(doc).map_err(|e| StoreError::Corrupt(e.to_string()))
            })
            .collect()
    }
}
