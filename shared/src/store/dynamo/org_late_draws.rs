//! Late draws of prepaid orgs on DynamoDB (docs/credits.md, "Late events on prepaid
//! plans"; docs/dynamodb.md, "Org subscriptions"). An event naming an org whose period was
//! invoiced adds to the org's pending adjustment on the org's pooled counter item, in an
//! update conditioned on the org's `billed_to` (`OB`) as read (`org_billing`). When the
//! org's wallet pays for that event, the same update also adds what it drew to the org's
//! pending *late draws* on that item:
//!
//! | attribute | what |
//! | --- | --- |
//! | `OL\|d` (N) | Σ what the pending late events drew from the org's grants |
//! | `OL\|s` (N) | Σ what the grants could not cover (added to the overdraft) |
//! | `OL\|n` (N) | how many late events drew |
//!
//! The org's close reads them with the adjustments (one consistent `GetItem`), credits
//! them on the invoice that bills the adjustments and `REMOVE`s them in its write, which
//! is conditioned on `OB` and `OAV` as read; a late event always bumps `OAV`, so a late
//! draw racing the close either is in the state it read or makes it read again.

use std::collections::BTreeMap;

use super::codec::{decimal_of, n, Item};
use super::expressions::Update;
use crate::credits::{exact_add, Subscriber};
use crate::domain::OrgId;
use crate::store::{PeriodDraws, StoreError, StoreResult};

const DRAWN: &str = "OL|d";
const SHORTFALL: &str = "OL|s";
const EVENTS: &str = "OL|n";

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("org late draws: {e}"))
}

/// Per event index of a chunk, the billed org counters it writes: (org, counter item
/// `PK`, period start in epoch seconds).
#[derive(Debug, Clone, Default)]
pub(super) struct EventOrgs {
    by_event: BTreeMap<usize, Vec<(OrgId, String, i64)>>,
    /// Per counter item, per period start: what the org's wallet drew for its events.
    draws: BTreeMap<String, BTreeMap<i64, PeriodDraws>>,
}

impl EventOrgs {
    pub fn note(&mut self, i: usize, org: &OrgId, pk: &str, start: i64) {
        let slot = self.by_event.entry(i).or_default();
        if !slot
            .iter()
            .any(|(o, p, s)| o == org && p == pk && *s == start)
        {
            slot.push((org.clone(), pk.to_owned(), start));
        }
    }

    /// Sums, per org counter and period, what the chunk's events drew from their org's
    /// wallet (`draws`: the chunk's draws by wallet).
    pub fn set_draws<'a>(
        &mut self,
        draws: impl IntoIterator<Item = (&'a Subscriber, &'a BTreeMap<usize, crate::credits::Draws>)>,
    ) -> StoreResult<()> {
        self.draws.clear();
        for (wallet, events) in draws {
            let Subscriber::Org(org) = wallet else {
                continue;
            };
            for (i, d) in events {
                let Some((_, pk, start)) = self
                    .by_event
                    .get(i)
                    .and_then(|v| v.iter().find(|(o, _, _)| o == org))
                else {
                    continue;
                };
                let p = self
                    .draws
                    .entry(pk.clone())
                    .or_default()
                    .entry(*start)
                    .or_default();
                p.drawn_usd =
                    exact_add(p.drawn_usd, d.drawn_usd().map_err(corrupt)?).map_err(corrupt)?;
                p.shortfall_usd = exact_add(p.shortfall_usd, d.shortfall_usd).map_err(corrupt)?;
                p.events += 1;
            }
        }
        Ok(())
    }

    /// Adds to `u` (the update of counter item `pk`, conditioned on `OB = billed`) the
    /// draws of the chunk's late events: those of periods starting before `billed`.
    pub fn add_late(&self, pk: &str, billed: i64, u: &mut Update) -> StoreResult<()> {
        let Some(periods) = self.draws.get(pk) else {
            return Ok(());
        };
        let mut late = PeriodDraws::default();
        for (_, p) in periods.iter().filter(|(s, _)| **s < billed) {
            late.drawn_usd = exact_add(late.drawn_usd, p.drawn_usd).map_err(corrupt)?;
            late.shortfall_usd = exact_add(late.shortfall_usd, p.shortfall_usd).map_err(corrupt)?;
            late.events += p.events;
        }
        if late.events > 0 {
            u.add(DRAWN, n(late.drawn_usd))
                .add(SHORTFALL, n(late.shortfall_usd))
                .add(EVENTS, n(late.events));
        }
        Ok(())
    }
}

/// The pending late draws on an org's pooled counter item.
pub(super) fn late_draws_of(item: &Item) -> StoreResult<PeriodDraws> {
    let num = |name: &str| item.get(name).map(decimal_of).transpose();
    let events = num(EVENTS)?.unwrap_or_default();
    Ok(PeriodDraws {
        drawn_usd: num(DRAWN)?.unwrap_or_default(),
        shortfall_usd: num(SHORTFALL)?.unwrap_or_default(),
        events: u64::try_from(events).map_err(|_| corrupt("events"))?,
    })
}

/// The close consumes the late draws it credits (with the adjustments it bills).
pub(super) fn remove_late(u: &mut Update) {
    u.remove(DRAWN).remove(SHORTFALL).remove(EVENTS);
}
