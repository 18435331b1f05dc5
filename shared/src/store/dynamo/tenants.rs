//! Tenants and their API keys: the `TENANT` item of the tenant's partition and one
//! `KEY#<hash>` item per key (the record, never the key).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::codec::{from_item, s, to_item};
use super::layout;
use super::requests::key;
use super::DynamoStore;
use crate::domain::{ApiKeyRecord, TenantId};
use crate::store::{StoreResult, TenantStore};

#[async_trait]
impl TenantStore for DynamoStore {
    async fn create_tenant_if_absent(
        &self,
        tenant: &TenantId,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut item = key(layout::tenant_pk(tenant), layout::TENANT_SK);
        item.insert("tenant".into(), s(tenant.as_str()));
        item.insert("created_at".into(), s(at.to_rfc3339()));
        self.put_new(item).await
    }

    async fn put_api_key(&self, k: &ApiKeyRecord) -> StoreResult<()> {
        let mut item = to_item(k)?;
        item.extend(key(layout::api_key_pk(&k.hash), layout::API_KEY_SK));
        self.put(item).await
    }

    async fn get_api_key(&self, hash: &str) -> StoreResult<Option<ApiKeyRecord>> {
        let item = self
            .get_item(layout::api_key_pk(hash), layout::API_KEY_SK, &[])
            .await?;
        item.as_ref().map(from_item).transpose()
    }

    async fn delete_api_key(&self, hash: &str) -> StoreResult<Option<ApiKeyRecord>> {
        let old = self
            .delete(layout::api_key_pk(hash), layout::API_KEY_SK)
            .await?;
        old.as_ref().map(from_item).transpose()
    }
}
