//! Token signing keys: one item per tenant, `PK = T#<tenant>`, `SK = TOKEN_KEYS`, with
//! `keys` (S, `TokenKeys`' stored form, holding the secrets) and `version` (N).

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::put_item::PutItemError;

use super::codec::{get_s, n, s, Item};
use super::errors::sdk_err;
use super::requests::key;
use super::{keys, DynamoStore};
use crate::domain::TenantId;
use crate::store::{StoreError, StoreResult, TokenKeyStore};
use crate::tokens::TokenKeys;

const TOKEN_KEYS_SK: &str = "TOKEN_KEYS";
const KEYS: &str = "keys";
const VERSION: &str = "version";

fn item(k: &TokenKeys) -> Item {
    let mut item = key(keys::tenant_pk(&k.tenant), TOKEN_KEYS_SK);
    item.insert(KEYS.to_owned(), s(k.to_stored()));
    item.insert(VERSION.to_owned(), n(k.version));
    item
}

impl DynamoStore {
    /// `PutItem` of the keys under `condition` (on `#v` = version, `#pk`); `false` when the
    /// condition failed.
    async fn put_token_keys(
        &self,
        k: &TokenKeys,
        condition: &str,
        expected: Option<u64>,
    ) -> StoreResult<bool> {
        let mut req = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item(k)))
            .condition_expression(condition)
            .expression_attribute_names("#pk", keys::PK);
        if let Some(v) = expected {
            req = req
                .expression_attribute_names("#v", VERSION)
                .expression_attribute_values(":v", n(v));
        }
        match req.send().await {
            Ok(_) => Ok(true),
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(PutItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(sdk_err("PutItem", e)),
        }
    }
}

#[async_trait]
impl TokenKeyStore for DynamoStore {
    async fn get_token_keys(&self, tenant: &TenantId) -> StoreResult<Option<TokenKeys>> {
        let Some(item) = self
            .get_item(keys::tenant_pk(tenant), TOKEN_KEYS_SK, &[KEYS])
            .await?
        else {
            return Ok(None);
        };
        get_s(&item, KEYS)
            .and_then(TokenKeys::from_stored)
            .map(Some)
            .ok_or_else(|| StoreError::Corrupt(format!("token keys of tenant {tenant}")))
    }

    async fn create_token_keys(&self, k: &TokenKeys) -> StoreResult<TokenKeys> {
        if self
            .put_token_keys(k, "attribute_not_exists(#pk)", None)
            .await?
        {
            return Ok(k.clone());
        }
        self.get_token_keys(&k.tenant)
            .await?
            .ok_or_else(|| StoreError::Corrupt("token keys vanished".to_owned()))
    }

    async fn replace_token_keys(&self, k: &TokenKeys, expected_version: u64) -> StoreResult<()> {
        if self
            .put_token_keys(
                k,
                "attribute_exists(#pk) AND #v = :v",
                Some(expected_version),
            )
            .await?
        {
            Ok(())
        } else {
            Err(StoreError::VersionConflict)
        }
    }
}
