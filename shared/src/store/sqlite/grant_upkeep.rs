//! Grant upkeep (see [`crate::store::GrantUpkeepStore`]): the due index is the `due_ms`
//! column of `wallet_grants` (epoch milliseconds, indexed where set); a pruned grant keeps
//! its row with `archived = 1` (out of the wallet's reads and of the cap's count, still
//! answering its id). Every write runs on the writer thread and compares the row with the
//! grant as read, so a racing pass finds it changed and writes nothing.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};

use super::wallets::write_grant;
use super::SqliteStore;
use crate::credits::{Grant, Subscriber};
use crate::domain::TenantId;
use crate::store::{
    due_at, with_expiry_recorded, DueGrant, GrantUpkeepStore, StoreError, StoreResult,
};

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("grant upkeep: {what}"))
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// The due instant as stored: rounded up to the millisecond, so a grant is never listed
/// before it is due.
pub(super) fn due_ms(g: &Grant) -> Option<i64> {
    due_at(g).map(|t| {
        let m = ms(t);
        if t.timestamp_subsec_nanos() % 1_000_000 == 0 {
            m
        } else {
            m + 1
        }
    })
}

/// Sets the grant's due instant (after an insert or a void wrote its record).
pub(super) fn set_due(
    conn: &Connection,
    tenant: &TenantId,
    wallet: &str,
    g: &Grant,
) -> StoreResult<()> {
    conn.prepare_cached(
        "UPDATE wallet_grants SET due_ms = ?4 WHERE tenant = ?1 AND wallet = ?2 AND grant_id = ?3",
    )?
    .execute(params![tenant.as_str(), wallet, g.id.as_str(), due_ms(g)])?;
    Ok(())
}

/// Whether the grant's row is archived (`None`: no such grant).
pub(super) fn archived(
    conn: &Connection,
    tenant: &TenantId,
    wallet: &str,
    id: &str,
) -> StoreResult<Option<bool>> {
    Ok(conn
        .prepare_cached(
            "SELECT archived FROM wallet_grants WHERE tenant = ?1 AND wallet = ?2 AND grant_id = ?3",
        )?
        .query_row(params![tenant.as_str(), wallet, id], |r| r.get::<_, i64>(0))
        .optional()?
        .map(|a| a != 0))
}

/// The live (not archived) stored grant, if it is exactly `read`.
fn live_as_read(
    conn: &Connection,
    tenant: &TenantId,
    wallet: &str,
    read: &Grant,
) -> StoreResult<bool> {
    let row: Option<(String, i64)> = conn
        .prepare_cached(
            "SELECT record, archived FROM wallet_grants
              WHERE tenant = ?1 AND wallet = ?2 AND grant_id = ?3",
        )?
        .query_row(params![tenant.as_str(), wallet, read.id.as_str()], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    let Some((text, archived)) = row else {
        return Ok(false);
    };
    let stored: Grant = serde_json::from_str(&text).map_err(corrupt)?;
    Ok(archived == 0 && stored == *read)
}

fn record_expiry(
    conn: &Connection,
    tenant: &TenantId,
    wallet: &str,
    read: &Grant,
) -> StoreResult<bool> {
    let recordable =
        read.voided_at.is_none() && read.expired_usd.is_none() && read.expires_at.is_some();
    if !recordable || !live_as_read(conn, tenant, wallet, read)? {
        return Ok(false);
    }
    let recorded = with_expiry_recorded(read);
    write_grant(conn, tenant, wallet, &recorded)?;
    set_due(conn, tenant, wallet, &recorded)?;
    Ok(true)
}

fn archive(conn: &Connection, tenant: &TenantId, wallet: &str, read: &Grant) -> StoreResult<bool> {
    let prunable =
        read.voided_at.is_some() || read.expired_usd.is_some() || read.remaining_usd.is_zero();
    if !prunable || !live_as_read(conn, tenant, wallet, read)? {
        return Ok(false);
    }
    conn.prepare_cached(
        "UPDATE wallet_grants SET archived = 1, due_ms = NULL
          WHERE tenant = ?1 AND wallet = ?2 AND grant_id = ?3",
    )?
    .execute(params![tenant.as_str(), wallet, read.id.as_str()])?;
    Ok(true)
}

#[async_trait]
impl GrantUpkeepStore for SqliteStore {
    async fn due_grants(&self, now: DateTime<Utc>, limit: usize) -> StoreResult<Vec<DueGrant>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT tenant, wallet, record, due_ms FROM wallet_grants
                  WHERE due_ms IS NOT NULL AND due_ms <= ?1 AND archived = 0
                  ORDER BY due_ms, tenant, wallet, grant_id LIMIT ?2",
            )?;
            let rows = stmt
                .query_map(params![ms(now), limit], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter()
                .map(|(tenant, wallet, record, due)| {
                    Ok(DueGrant {
                        tenant: TenantId::parse(&tenant).map_err(corrupt)?,
                        wallet: wallet.parse::<Subscriber>().map_err(corrupt)?,
                        grant: serde_json::from_str(&record).map_err(corrupt)?,
                        due_at: DateTime::from_timestamp_millis(due)
                            .ok_or_else(|| corrupt("due_ms"))?,
                    })
                })
                .collect()
        })
        .await
    }

    async fn record_grant_expiry(
        &self,
        tenant: &TenantId,
        wallet: &Subscriber,
        read: &Grant,
    ) -> StoreResult<bool> {
        let (tenant, wallet, read) = (tenant.clone(), wallet.to_string(), read.clone());
        self.write(move |c| record_expiry(c, &tenant, &wallet, &read))
            .await
    }

    async fn archive_grant(
        &self,
        tenant: &TenantId,
        wallet: &Subscriber,
        read: &Grant,
    ) -> StoreResult<bool> {
        let (tenant, wallet, read) = (tenant.clone(), wallet.to_string(), read.clone());
        self.write(move |c| archive(c, &tenant, &wallet, &read))
            .await
    }
}
