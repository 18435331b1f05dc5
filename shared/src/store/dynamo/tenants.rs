//! Tenants and their API keys: the `TENANT` item of the tenant's partition, one
//! `KEY#<hash>` item per key (the record, never the key nor a piece of it) for the look-up
//! by hash, and one listing item `KEY#<key id>` per key in the tenant's partition for
//! listing and revoking by id — written and deleted together with the key item, in one
//! transaction. Key items written before key ids existed are upgraded by
//! [`DynamoStore::upgrade_api_keys`] (`meter doctor --table T --upgrade-keys`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::codec::{from_item, s, to_item, Item};
use super::errors::sdk_err;
use super::expressions::Update;
use super::layout;
use super::requests::{first_condition_failed, key};
use super::DynamoStore;
use crate::domain::{ApiKeyRecord, TenantId};
use crate::store::{StoreResult, TenantStore};

/// The attribute in which key items written before key ids kept the key's first 10
/// characters.
const OLD_PREFIX: &str = "prefix";

/// What [`DynamoStore::upgrade_api_keys`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyUpgrade {
    /// Key items still holding a piece of their key.
    pub found: usize,
    /// Of those, rewritten (the others were revoked meanwhile).
    pub upgraded: usize,
}

fn key_item(k: &ApiKeyRecord) -> StoreResult<Item> {
    let mut item = to_item(k)?;
    item.extend(key(layout::api_key_pk(&k.hash), layout::API_KEY_SK));
    Ok(item)
}

fn listing_item(k: &ApiKeyRecord) -> StoreResult<Item> {
    let mut item = to_item(k)?;
    item.extend(key(
        layout::tenant_pk(&k.tenant),
        layout::api_key_listing_sk(&k.id()),
    ));
    Ok(item)
}

impl DynamoStore {
    /// Deletes a key's item and its listing item in one transaction; `None` if the key
    /// item was deleted meanwhile (by another revocation).
    async fn delete_key(&self, record: ApiKeyRecord) -> StoreResult<Option<ApiKeyRecord>> {
        let deleted = self
            .conditional_transact("revoking a key", first_condition_failed, || {
                Ok(vec![
                    self.tx_delete(layout::api_key_pk(&record.hash), layout::API_KEY_SK, true)?,
                    self.tx_delete(
                        layout::tenant_pk(&record.tenant),
                        &layout::api_key_listing_sk(&record.id()),
                        false,
                    )?,
                ])
            })
            .await?;
        Ok(deleted.then_some(record))
    }

    /// Rewrites every key item stored before key ids: removes the piece of the key it
    /// kept (`prefix`) and adds its listing item, one transaction per key. A `Scan` of the
    /// whole table (the key items have no index), read once after an upgrade; idempotent.
    pub async fn upgrade_api_keys(&self) -> StoreResult<KeyUpgrade> {
        let mut done = KeyUpgrade::default();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("begins_with(#pk, :key) AND attribute_exists(#prefix)")
                .expression_attribute_names("#pk", layout::PK)
                .expression_attribute_names("#prefix", OLD_PREFIX)
                .expression_attribute_values(":key", s("KEY#"))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| sdk_err("Scan", e))?;
            for item in page.items() {
                let record: ApiKeyRecord = from_item(item)?;
                done.found += 1;
                let mut scrub = Update::new();
                scrub.remove(OLD_PREFIX);
                scrub.condition(|x| format!("attribute_exists({})", x.name(layout::PK)));
                let upgraded = self
                    .conditional_transact("upgrading a key", first_condition_failed, || {
                        Ok(vec![
                            self.tx_update(
                                layout::api_key_pk(&record.hash),
                                layout::API_KEY_SK,
                                &scrub,
                            )?,
                            self.tx_put(listing_item(&record)?, false)?,
                        ])
                    })
                    .await?;
                done.upgraded += usize::from(upgraded);
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(done),
            }
        }
    }
}

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
        self.conditional_transact(
            "storing a key",
            |_| false,
            || {
                Ok(vec![
                    self.tx_put(key_item(k)?, false)?,
                    self.tx_put(listing_item(k)?, false)?,
                ])
            },
        )
        .await?;
        Ok(())
    }

    async fn get_api_key(&self, hash: &str) -> StoreResult<Option<ApiKeyRecord>> {
        let item = self
            .get_item(layout::api_key_pk(hash), layout::API_KEY_SK, &[])
            .await?;
        item.as_ref().map(from_item).transpose()
    }

    async fn list_api_keys(&self, tenant: &TenantId) -> StoreResult<Vec<ApiKeyRecord>> {
        let items = self
            .query_prefix(
                layout::tenant_pk(tenant),
                layout::API_KEY_LISTING_PREFIX,
                true,
            )
            .await?;
        let mut keys = items
            .iter()
            .map(from_item)
            .collect::<StoreResult<Vec<ApiKeyRecord>>>()?;
        keys.sort_by(|a, b| (a.created_at, &a.hash).cmp(&(b.created_at, &b.hash)));
        Ok(keys)
    }

    async fn delete_api_key(&self, hash: &str) -> StoreResult<Option<ApiKeyRecord>> {
        match self.get_api_key(hash).await? {
            Some(record) => self.delete_key(record).await,
            None => Ok(None),
        }
    }

    async fn delete_api_key_by_id(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> StoreResult<Option<ApiKeyRecord>> {
        if crate::auth::parse_key_id(id).is_none() {
            return Ok(None);
        }
        let listed = self
            .get_item(
                layout::tenant_pk(tenant),
                &layout::api_key_listing_sk(id),
                &[],
            )
            .await?;
        let Some(listed) = listed.as_ref().map(from_item::<ApiKeyRecord>).transpose()? else {
            return Ok(None);
        };
        match self.get_api_key(&listed.hash).await? {
            Some(record) if record.tenant == *tenant => self.delete_key(record).await,
            // The key was revoked meanwhile.
            _ => Ok(None),
        }
    }
}
