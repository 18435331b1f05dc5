//! Late draws on DynamoDB (docs/credits.md, "Late events on prepaid plans"): a user's
//! event recorded or re-priced after its period was invoiced draws from the user's wallet
//! in the transaction that adds its cost to the pending adjustment. That transaction
//! requires the user's `billed_to` to be exactly the value it read (chunk_plan.rs,
//! `Billed::Known`; repricing.rs), so the draw is added to an item keyed by that value,
//! `SK = DRAWN#LATE#<billed_to>` in the wallet's partition (before `G#`: the wallet's
//! `Query` never reads it), instead of its closed period's `DRAWN#<period id>`. The close
//! that bills the adjustment is the one that reads the billing state with that
//! `billed_to` (and moves it on); it reads this item with one consistent `GetItem`
//! after the state, and a late event committed in between changed the state's version,
//! so the close starts over: the adjustment and its draws are billed together, once.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::codec::{decimal_attr, n};
use super::counters::{BilledTo, Placement as _};
use super::expressions::Update;
use super::layout;
use super::prepaid::{user_wallet_pk, ChunkDraws};
use super::DynamoStore;
use crate::credits::exact_add;
use crate::domain::{TenantId, UsageEvent, UserId};
use crate::store::{PeriodDraws, StoreError, StoreResult};

const DRAWN: &str = "drawn_usd";
const SHORTFALL: &str = "shortfall_usd";
const EVENTS: &str = "events";

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("late draws: {e}"))
}

/// The sort key of the late draws billed after `billed_to` (its stored text).
fn late_sk(billed_to: &str) -> String {
    format!("DRAWN#LATE#{billed_to}")
}

/// The draw-sum updates (sort key, update; in the user's wallet partition) of the draws
/// `d` of `events`: each event's draws go to its period's sums, or, when `billed` (the
/// `billed_to` text the transaction requires, `None` when it requires every period open)
/// says its period is closed, to the late sums of that `billed_to`.
pub(super) fn draw_sum_updates(
    d: &ChunkDraws,
    events: &[UsageEvent],
    billed: Option<&str>,
) -> StoreResult<Vec<(String, Update)>> {
    let mut sums: BTreeMap<String, PeriodDraws> = BTreeMap::new();
    for (&i, draws) in &d.events {
        let e = events
            .get(i)
            .ok_or_else(|| corrupt("a drawing event vanished"))?;
        let sk = match billed {
            Some(b) if BilledTo(Some(b)).closed(e.period_start) => late_sk(b),
            _ => super::period_draws::period_sk(e.period_start),
        };
        let p = sums.entry(sk).or_default();
        p.drawn_usd =
            exact_add(p.drawn_usd, draws.drawn_usd().map_err(corrupt)?).map_err(corrupt)?;
        p.shortfall_usd = exact_add(p.shortfall_usd, draws.shortfall_usd).map_err(corrupt)?;
        p.events += 1;
    }
    Ok(sums
        .into_iter()
        .map(|(sk, p)| {
            let mut u = Update::new();
            u.add(DRAWN, n(p.drawn_usd))
                .add(SHORTFALL, n(p.shortfall_usd))
                .add(EVENTS, n(p.events));
            (sk, u)
        })
        .collect())
}

impl DynamoStore {
    /// [`crate::store::PeriodDrawsStore::late_draws`]: one consistent `GetItem`.
    pub(super) async fn read_late_draws(
        &self,
        tenant: &TenantId,
        user: &UserId,
        billed_to: DateTime<Utc>,
    ) -> StoreResult<PeriodDraws> {
        let sk = late_sk(&layout::billed_to(billed_to));
        let Some(item) = self
            .get_item(user_wallet_pk(tenant, user), &sk, &[])
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
}
