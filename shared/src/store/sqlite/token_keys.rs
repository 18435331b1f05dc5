//! Token signing keys: one row per tenant holding `TokenKeys`' stored form.

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};

use super::SqliteStore;
use crate::domain::TenantId;
use crate::store::{StoreError, StoreResult, TokenKeyStore};
use crate::tokens::TokenKeys;

fn get(conn: &Connection, tenant: &TenantId) -> StoreResult<Option<TokenKeys>> {
    let text: Option<String> = conn
        .prepare_cached("SELECT keys FROM token_keys WHERE tenant = ?1")?
        .query_row(params![tenant.as_str()], |r| r.get(0))
        .optional()?;
    text.map(|t| {
        TokenKeys::from_stored(&t)
            .ok_or_else(|| StoreError::Corrupt(format!("token keys of tenant {tenant}")))
    })
    .transpose()
}

fn version(v: u64) -> StoreResult<i64> {
    i64::try_from(v).map_err(|_| StoreError::Overflow("token key version".to_owned()))
}

#[async_trait]
impl TokenKeyStore for SqliteStore {
    async fn get_token_keys(&self, tenant: &TenantId) -> StoreResult<Option<TokenKeys>> {
        let tenant = tenant.clone();
        self.read(move |c| get(c, &tenant)).await
    }

    async fn create_token_keys(&self, keys: &TokenKeys) -> StoreResult<TokenKeys> {
        let keys = keys.clone();
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO token_keys (tenant, version, keys) VALUES (?1, ?2, ?3)
                 ON CONFLICT DO NOTHING",
            )?
            .execute(params![
                keys.tenant.as_str(),
                version(keys.version)?,
                keys.to_stored()
            ])?;
            get(c, &keys.tenant)?
                .ok_or_else(|| StoreError::Corrupt("token keys vanished".to_owned()))
        })
        .await
    }

    async fn replace_token_keys(&self, keys: &TokenKeys, expected_version: u64) -> StoreResult<()> {
        let keys = keys.clone();
        self.write(move |c| {
            let n = c
                .prepare_cached(
                    "UPDATE token_keys SET version = ?2, keys = ?3 WHERE tenant = ?1 AND version = ?4",
                )?
                .execute(params![
                    keys.tenant.as_str(),
                    version(keys.version)?,
                    keys.to_stored(),
                    version(expected_version)?
                ])?;
            if n == 1 {
                Ok(())
            } else {
                Err(StoreError::VersionConflict)
            }
        })
        .await
    }
}
