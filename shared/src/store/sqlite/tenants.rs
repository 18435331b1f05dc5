//! Tenants and their API keys.
//!
//! Like `usage`, every function runs on one connection inside a transaction its caller owns.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};

use super::codec::{from_json, to_json, ts};
use crate::domain::{ApiKeyRecord, TenantId};
use crate::store::{StoreError, StoreResult};

pub(super) fn create_tenant_if_absent(
    conn: &Connection,
    tenant: &TenantId,
    at: DateTime<Utc>,
) -> StoreResult<bool> {
    let n = conn
        .prepare_cached("INSERT INTO tenants (tenant, created_at) VALUES (?1, ?2) ON CONFLICT (tenant) DO NOTHING")?
        .execute(params![tenant.as_str(), ts(&at)])?;
    Ok(n == 1)
}

pub(super) fn put_api_key(conn: &Connection, key: &ApiKeyRecord) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO api_keys (hash, tenant, record) VALUES (?1, ?2, ?3)
         ON CONFLICT (hash) DO UPDATE SET tenant = excluded.tenant, record = excluded.record",
    )?
    .execute(params![key.hash, key.tenant.as_str(), to_json(key)?])?;
    Ok(())
}

pub(super) fn get_api_key(conn: &Connection, hash: &str) -> StoreResult<Option<ApiKeyRecord>> {
    let json: Option<String> = conn
        .prepare_cached("SELECT record FROM api_keys WHERE hash = ?1")?
        .query_row([hash], |r| r.get(0))
        .optional()?;
    json.map(|j| from_json(&j)).transpose()
}

pub(super) fn list_api_keys(
    conn: &Connection,
    tenant: &TenantId,
) -> StoreResult<Vec<ApiKeyRecord>> {
    let rows: Vec<String> = conn
        .prepare_cached(
            "SELECT record FROM api_keys WHERE tenant = ?1
             ORDER BY json_extract(record, '$.created_at'), hash",
        )?
        .query_map([tenant.as_str()], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    rows.iter().map(|j| from_json(j)).collect()
}

/// Deletes the tenant's key whose hash starts with the digits of `id` (a range of the
/// primary key).
pub(super) fn delete_api_key_by_id(
    conn: &Connection,
    tenant: &TenantId,
    id: &str,
) -> StoreResult<Option<ApiKeyRecord>> {
    let Some(digits) = crate::auth::parse_key_id(id) else {
        return Ok(None);
    };
    let hashes: Vec<String> = conn
        .prepare_cached(
            "SELECT hash FROM api_keys WHERE hash >= ?2 AND hash <= ?3 AND tenant = ?1 LIMIT 2",
        )?
        .query_map(
            params![
                tenant.as_str(),
                format!("{digits:0<64}"),
                format!("{digits:f<64}")
            ],
            |r| r.get(0),
        )?
        .collect::<Result<_, _>>()?;
    match hashes.as_slice() {
        [] => Ok(None),
        [hash] => delete_api_key(conn, hash),
        // 64 bits alike: never seen, but never guess which key an operator meant.
        _ => Err(StoreError::Corrupt(format!(
            "two keys of tenant {tenant} share the id {id}; revoke by hash"
        ))),
    }
}

pub(super) fn delete_api_key(conn: &Connection, hash: &str) -> StoreResult<Option<ApiKeyRecord>> {
    let json: Option<String> = conn
        .prepare_cached("DELETE FROM api_keys WHERE hash = ?1 RETURNING record")?
        .query_row([hash], |r| r.get(0))
        .optional()?;
    json.map(|j| from_json(&j)).transpose()
}
