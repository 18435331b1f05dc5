//! Wallets: one row per (tenant, wallet, grant id) holding the grant as JSON (amounts as
//! exact decimal strings), and one row of settings per wallet. The wallet key is the
//! subscriber's path (`user/<id>`, `org/<id>`). Every write runs on the writer thread, so
//! "look for the id and count the wallet's grants, then insert" is atomic.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use rust_decimal::Decimal;

use super::SqliteStore;
use crate::credits::{Grant, Subscriber};
use crate::domain::{GrantId, TenantId};
use crate::store::{
    GrantInsert, GrantVoid, StoreError, StoreResult, WalletRecord, WalletStore,
    MAX_GRANTS_PER_WALLET,
};

fn decode(text: &str) -> StoreResult<Grant> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("grant: {e}")))
}

fn encode(grant: &Grant) -> StoreResult<String> {
    serde_json::to_string(grant).map_err(|e| StoreError::Corrupt(format!("grant: {e}")))
}

fn get(
    conn: &Connection,
    tenant: &TenantId,
    wallet: &str,
    id: &GrantId,
) -> StoreResult<Option<Grant>> {
    let text: Option<String> = conn
        .prepare_cached(
            "SELECT record FROM wallet_grants WHERE tenant = ?1 AND wallet = ?2 AND grant_id = ?3",
        )?
        .query_row(params![tenant.as_str(), wallet, id.as_str()], |r| r.get(0))
        .optional()?;
    text.as_deref().map(decode).transpose()
}

pub(super) fn write_grant(
    conn: &Connection,
    tenant: &TenantId,
    wallet: &str,
    g: &Grant,
) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO wallet_grants (tenant, wallet, grant_id, record) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (tenant, wallet, grant_id) DO UPDATE SET record = excluded.record",
    )?
    .execute(params![tenant.as_str(), wallet, g.id.as_str(), encode(g)?])?;
    Ok(())
}

fn insert(
    conn: &Connection,
    tenant: &TenantId,
    wallet: &str,
    grant: &Grant,
) -> StoreResult<GrantInsert> {
    if let Some(stored) = get(conn, tenant, wallet, &grant.id)? {
        return Ok(GrantInsert::Exists(stored));
    }
    let count: i64 = conn
        .prepare_cached(
            "SELECT count(*) FROM wallet_grants WHERE tenant = ?1 AND wallet = ?2 AND archived = 0",
        )?
        .query_row(params![tenant.as_str(), wallet], |r| r.get(0))?;
    if usize::try_from(count).unwrap_or(usize::MAX) >= MAX_GRANTS_PER_WALLET {
        return Ok(GrantInsert::WalletFull);
    }
    write_grant(conn, tenant, wallet, grant)?;
    super::grant_upkeep::set_due(conn, tenant, wallet, grant)?;
    Ok(GrantInsert::Created(grant.clone()))
}

fn void(
    conn: &Connection,
    tenant: &TenantId,
    wallet: &str,
    id: &GrantId,
    at: DateTime<Utc>,
) -> StoreResult<GrantVoid> {
    let Some(mut grant) = get(conn, tenant, wallet, id)? else {
        return Ok(GrantVoid::Unknown);
    };
    // A pruned grant is final: voiding it answers it unchanged (grant upkeep).
    let pruned = super::grant_upkeep::archived(conn, tenant, wallet, id.as_str())? == Some(true);
    if grant.voided_at.is_some() || pruned {
        return Ok(GrantVoid::AlreadyVoided(grant));
    }
    grant.void(at);
    write_grant(conn, tenant, wallet, &grant)?;
    super::grant_upkeep::set_due(conn, tenant, wallet, &grant)?;
    Ok(GrantVoid::Voided(grant))
}

pub(super) fn read_wallet(
    conn: &Connection,
    tenant: &TenantId,
    wallet: &str,
) -> StoreResult<WalletRecord> {
    let mut stmt = conn.prepare_cached(
        "SELECT record FROM wallet_grants WHERE tenant = ?1 AND wallet = ?2 AND archived = 0
         ORDER BY grant_id",
    )?;
    let grants = stmt
        .query_map(params![tenant.as_str(), wallet], |r| r.get::<_, String>(0))?
        .map(|text| decode(&text?))
        .collect::<StoreResult<Vec<_>>>()?;
    let low: Option<String> = conn
        .prepare_cached(
            "SELECT low_balance_usd FROM wallet_settings WHERE tenant = ?1 AND wallet = ?2",
        )?
        .query_row(params![tenant.as_str(), wallet], |r| r.get(0))
        .optional()?;
    let low_balance_usd = low
        .map(|t| {
            Decimal::from_str_exact(&t)
                .map_err(|e| StoreError::Corrupt(format!("low_balance_usd: {e}")))
        })
        .transpose()?;
    let (overdrawn_usd, held_usd) = super::prepaid::balances(conn, tenant.as_str(), wallet)?;
    let (alarms, alarm_seq) = super::prepaid::alarms(conn, tenant.as_str(), wallet)?;
    Ok(WalletRecord {
        grants,
        low_balance_usd,
        overdrawn_usd,
        held_usd,
        alarms,
        alarm_seq,
    })
}

#[async_trait]
impl WalletStore for SqliteStore {
    async fn insert_grant(
        &self,
        tenant: &TenantId,
        wallet: &Subscriber,
        grant: &Grant,
    ) -> StoreResult<GrantInsert> {
        let (tenant, wallet, grant) = (tenant.clone(), wallet.to_string(), grant.clone());
        self.write(move |c| insert(c, &tenant, &wallet, &grant))
            .await
    }

    async fn get_grant(
        &self,
        tenant: &TenantId,
        wallet: &Subscriber,
        id: &GrantId,
    ) -> StoreResult<Option<Grant>> {
        let (tenant, wallet, id) = (tenant.clone(), wallet.to_string(), id.clone());
        self.read(move |c| get(c, &tenant, &wallet, &id)).await
    }

    async fn void_grant(
        &self,
        tenant: &TenantId,
        wallet: &Subscriber,
        id: &GrantId,
        at: DateTime<Utc>,
    ) -> StoreResult<GrantVoid> {
        let (tenant, wallet, id) = (tenant.clone(), wallet.to_string(), id.clone());
        self.write(move |c| void(c, &tenant, &wallet, &id, at))
            .await
    }

    async fn get_wallet(
        &self,
        tenant: &TenantId,
        wallet: &Subscriber,
    ) -> StoreResult<WalletRecord> {
        let (tenant, wallet) = (tenant.clone(), wallet.to_string());
        self.read(move |c| read_wallet(c, &tenant, &wallet)).await
    }

    async fn set_low_balance(
        &self,
        tenant: &TenantId,
        wallet: &Subscriber,
        low_balance_usd: Option<Decimal>,
    ) -> StoreResult<()> {
        let (tenant, wallet) = (tenant.clone(), wallet.to_string());
        self.write(move |c| {
            match low_balance_usd {
                Some(low) => c
                    .prepare_cached(
                        "INSERT INTO wallet_settings (tenant, wallet, low_balance_usd)
                         VALUES (?1, ?2, ?3) ON CONFLICT (tenant, wallet)
                         DO UPDATE SET low_balance_usd = excluded.low_balance_usd",
                    )?
                    .execute(params![tenant.as_str(), wallet, low.to_string()])?,
                None => c
                    .prepare_cached(
                        "DELETE FROM wallet_settings WHERE tenant = ?1 AND wallet = ?2",
                    )?
                    .execute(params![tenant.as_str(), wallet])?,
            };
            Ok(())
        })
        .await
    }
}
