//! A period's draws (see [`crate::store::PeriodDrawsStore`]): the period's rows of
//! `wallet_draws`, summed exactly — but for late draws, which belong to the invoice that
//! bills their adjustment (`late_draws`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::params;

use super::codec::{from_json, ts};
use super::SqliteStore;
use crate::credits::{exact_add, Draws, Subscriber};
use crate::domain::{TenantId, UserId};
use crate::periods::Period;
use crate::store::{PeriodDraws, PeriodDrawsStore, StoreError, StoreResult};

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("period draws: {e}"))
}

#[async_trait]
impl PeriodDrawsStore for SqliteStore {
    async fn period_draws(
        &self,
        tenant: &TenantId,
        user: &UserId,
        period: &Period,
    ) -> StoreResult<PeriodDraws> {
        let (tenant, wallet) = (tenant.clone(), Subscriber::User(user.clone()).to_string());
        let (from, to) = (ts(&period.start), ts(&period.end));
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT draws FROM wallet_draws
                  WHERE tenant = ?1 AND wallet = ?2 AND at >= ?3 AND at < ?4
                    AND late_billed_to IS NULL",
            )?;
            let rows = stmt
                .query_map(params![tenant.as_str(), wallet, from, to], |r| {
                    r.get::<_, String>(0)
                })?
                .collect::<Result<Vec<_>, _>>()?;
            let mut out = PeriodDraws::default();
            for text in rows {
                let d: Draws = from_json(&text)?;
                out.drawn_usd =
                    exact_add(out.drawn_usd, d.drawn_usd().map_err(corrupt)?).map_err(corrupt)?;
                out.shortfall_usd =
                    exact_add(out.shortfall_usd, d.shortfall_usd).map_err(corrupt)?;
                out.events += 1;
            }
            Ok(out)
        })
        .await
    }

    async fn late_draws(
        &self,
        tenant: &TenantId,
        user: &UserId,
        billed_to: DateTime<Utc>,
    ) -> StoreResult<PeriodDraws> {
        let (tenant, wallet) = (tenant.clone(), Subscriber::User(user.clone()).to_string());
        self.read(move |c| super::late_draws::late_draws(c, tenant.as_str(), &wallet, &billed_to))
            .await
    }
}
