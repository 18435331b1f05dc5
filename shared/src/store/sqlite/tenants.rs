//! Tenants and their API keys.
//!
//! Like `usage`, every function runs on one connection inside a transaction its caller owns.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};

use super::codec::{from_json, to_json, ts};
use crate::domain::{ApiKeyRecord, TenantId};
use crate::store::StoreResult;

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

pub(super) fn delete_api_key(conn: &Connection, hash: &str) -> StoreResult<Option<ApiKeyRecord>> {
    let json: Option<String> = conn
        .prepare_cached("DELETE FROM api_keys WHERE hash = ?1 RETURNING record")?
        .query_row([hash], |r| r.get(0))
        .optional()?;
    json.map(|j| from_json(&j)).transpose()
}
