//! The views of wallets on SQLite (see [`crate::store::WalletViewsStore`]): a user's draws
//! are the `wallet_draws` rows of the user's wallet or of the user's events (an org's
//! wallet paid those), and the tenant's wallets are the distinct wallets of
//! `wallet_grants` (its primary key's prefix), a page at a time.

use async_trait::async_trait;
use rusqlite::{params, Connection};

use super::codec::{from_json, parse_money, parse_ts};
use super::SqliteStore;
use crate::credits::{Draws, Subscriber};
use crate::domain::{EventId, TenantId, UserId};
use crate::store::{EventDraws, Page, StoreError, StoreResult, WalletSummary, WalletViewsStore};

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("wallet views: {e}"))
}

fn user_draws(conn: &Connection, tenant: &TenantId, user: &UserId) -> StoreResult<Vec<EventDraws>> {
    let own = Subscriber::User(user.clone()).to_string();
    let mut stmt = conn.prepare_cached(
        // Both halves by an index: the user's wallet (`wallet_draws_by_wallet`), the
        // user's events (`events_by_user`) joined by the draws' primary key. UNION drops
        // a row both find (an event the user's own wallet paid).
        "SELECT event_id, wallet, at, cost, draws FROM wallet_draws
             WHERE tenant = ?1 AND wallet = ?2
         UNION
         SELECT d.event_id, d.wallet, d.at, d.cost, d.draws
             FROM events e JOIN wallet_draws d ON d.tenant = e.tenant AND d.event_id = e.event_id
             WHERE e.tenant = ?1 AND e.user = ?3
         ORDER BY 3, 1",
    )?;
    let rows = stmt
        .query_map(params![tenant.as_str(), own, user.as_str()], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(|(id, wallet, at, cost, draws)| {
            Ok(EventDraws::new(
                EventId::parse(&id).map_err(corrupt)?,
                wallet.parse::<Subscriber>().map_err(corrupt)?,
                parse_ts(&at)?,
                from_json::<Draws>(&draws)?,
                parse_money(&cost)?,
            ))
        })
        .collect()
}

fn wallets_page(
    conn: &Connection,
    tenant: &TenantId,
    after: Option<String>,
    limit: usize,
) -> StoreResult<Page<WalletSummary>> {
    let mut stmt = conn.prepare_cached(
        "SELECT DISTINCT wallet FROM wallet_grants WHERE tenant = ?1 AND wallet > ?2
         ORDER BY wallet LIMIT ?3",
    )?;
    // One more than asked: whether a next page exists.
    let take = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
    let mut keys = stmt
        .query_map(
            params![tenant.as_str(), after.unwrap_or_default(), take],
            |r| r.get::<_, String>(0),
        )?
        .collect::<Result<Vec<_>, _>>()?;
    let more = keys.len() > limit;
    keys.truncate(limit);
    let mut items = Vec::with_capacity(keys.len());
    for key in &keys {
        let record = super::wallets::read_wallet(conn, tenant, key)?;
        items.push(WalletSummary {
            wallet: key.parse::<Subscriber>().map_err(corrupt)?,
            credit: super::prepaid::credit_state_of(&record)?,
            low_balance_usd: record.low_balance_usd,
        });
    }
    let next = if more { keys.last().cloned() } else { None };
    Ok(Page { items, next })
}

#[async_trait]
impl WalletViewsStore for SqliteStore {
    async fn user_event_draws(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> StoreResult<Vec<EventDraws>> {
        let (tenant, user) = (tenant.clone(), user.clone());
        self.read(move |c| user_draws(c, &tenant, &user)).await
    }

    async fn list_wallets(
        &self,
        tenant: &TenantId,
        after: Option<&Subscriber>,
        limit: usize,
    ) -> StoreResult<Page<WalletSummary>> {
        let (tenant, after) = (tenant.clone(), after.map(ToString::to_string));
        self.read(move |c| wallets_page(c, &tenant, after, limit))
            .await
    }
}
