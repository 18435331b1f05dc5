//! A period's draws on DynamoDB (see [`crate::store::PeriodDrawsStore`]): one item per
//! (user wallet, period) in the wallet's partition, `SK = DRAWN#<period id>` (before
//! `G#`: the wallet's `Query` never reads it), `ADD drawn_usd, shortfall_usd, events` in
//! each drawing event's transaction (no condition: the event item's own condition makes
//! it once per event id), read with one consistent `GetItem` when the period is invoiced.
//! A late event's draws go to `DRAWN#LATE#<billed_to>` instead (`late_draws`).

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::codec::decimal_attr;
use super::layout;
use super::prepaid::user_wallet_pk;
use super::DynamoStore;
use crate::credits::{exact_add, Draws};
use crate::domain::{TenantId, UserId};
use crate::periods::Period;
use crate::store::{PeriodDraws, PeriodDrawsStore, StoreError, StoreResult};

const DRAWN: &str = "drawn_usd";
const SHORTFALL: &str = "shortfall_usd";
const EVENTS: &str = "events";

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("period draws: {e}"))
}

pub(super) fn period_sk(start: DateTime<Utc>) -> String {
    format!("DRAWN#{}", layout::period_id(start))
}

/// Adds one event's draws to its period's sums (for the event's transaction).
pub(super) fn add(
    periods: &mut BTreeMap<DateTime<Utc>, PeriodDraws>,
    period_start: DateTime<Utc>,
    d: &Draws,
) -> StoreResult<()> {
    let p = periods.entry(period_start).or_default();
    p.drawn_usd = exact_add(p.drawn_usd, d.drawn_usd().map_err(corrupt)?).map_err(corrupt)?;
    p.shortfall_usd = exact_add(p.shortfall_usd, d.shortfall_usd).map_err(corrupt)?;
    p.events += 1;
    Ok(())
}

#[async_trait]
impl PeriodDrawsStore for DynamoStore {
    async fn period_draws(
        &self,
        tenant: &TenantId,
        user: &UserId,
        period: &Period,
    ) -> StoreResult<PeriodDraws> {
        let Some(item) = self
            .get_item(user_wallet_pk(tenant, user), &period_sk(period.start), &[])
            .await?
        else {
            return Ok(PeriodDraws::default());
        };
        let events = decimal_attr(&item, EVENTS)?;
        Ok(PeriodDraws {
            drawn_usd: decimal_attr(&item, DRAWN)?,
            shortfall_usd: decimal_attr(&item, SHORTFALL)?,
            events: u64::try_from(events).map_err(|_| corrupt("events"))?,
        })
    }
    async fn late_draws(
        &self,
        tenant: &TenantId,
        user: &UserId,
        billed_to: DateTime<Utc>,
    ) -> StoreResult<PeriodDraws> {
        self.read_late_draws(tenant, user, billed_to).await
    }
}
