//! Late org events (issue 18, [`crate::store::OrgBillingStore`]; docs/dynamodb.md "Org
//! subscriptions"): the org's billing marks live on its pooled counter item
//! (`T#<tenant>#BC#org#<org>` / `C`), which every event naming the org writes in its
//! `TransactWriteItems` anyway, so guarding the event costs no extra item:
//!
//! | attribute | what |
//! | --- | --- |
//! | `OB` (N) | the org's `billed_to`, epoch seconds: every org period starting before it is invoiced; set only by the org's close |
//! | `OA<start>\|n`, `OA<start>\|$` (N) | the pending adjustment of the invoiced period starting at `<start>` (epoch seconds): late events and their cost |
//! | `OAV` (N) | bumped by every late event: the adjustments' version |
//! | `p<start>\|w` (N) | events recorded in the `period` window (a write counter beside its counts, removed with the window) |
//!
//! The upper-case names are never taken for windows (`stale_windows` only removes names
//! whose prefix is lower case), so adjustments stay until billed.
//!
//! An event's update of the item `ADD`s `p<start>|w` and is conditioned on
//! `attribute_not_exists(OB) OR OB <= :earliest` (the common path, no read). When that
//! fails, recording reads `OB` (one `GetItem`) and retries with `OB = :b` (or
//! `attribute_not_exists`), each event of a period before `b` that the org pays for (not
//! one its writes count as billed elsewhere: docs/billing.md "One payer per call") adding
//! to `OA<start>|…` and `OAV` in the same update. The close reads the item (one consistent `GetItem`) and
//! writes, in its transaction with the invoice and the subscription, `SET OB = :end` and
//! `REMOVE` the adjustments it bills, conditioned on `OB`, `p<start>|w` and `OAV` as read.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::budget_counters::{counter_pk, item_ttl, place_of, usage_of, COUNTER_SK};
use super::codec::{count_of, decimal_of, n, Item};
use super::expressions::Update;
use super::layout;
use super::DynamoStore;
use crate::budgets::{billed_elsewhere, CounterWrite};
use crate::domain::{Invoice, OrgId, Subscription, TenantId};
use crate::store::{
    billed_org_period, org_period_counter, Adjustment, InvoiceCharge, OrgBillingState,
    OrgBillingStore, OrgClose, StoreError, StoreResult,
};
use crate::usage::Tally;

const BILLED: &str = "OB";
const ADJ_VERSION: &str = "OAV";

fn adj_events(start: i64) -> String {
    format!("OA{start}|n")
}

fn adj_cost(start: i64) -> String {
    format!("OA{start}|$")
}

fn writes_attr(start: i64) -> String {
    format!("p{start}|w")
}

/// A number attribute's text, `None` when absent.
fn number(item: &Item, name: &str) -> StoreResult<Option<Decimal>> {
    item.get(name).map(decimal_of).transpose()
}

/// The condition "`name` is `value` as read" (`None`: absent).
fn as_read(u: &mut Update, name: &str, value: Option<Decimal>) {
    u.condition(|x| {
        let a = x.name(name);
        match value {
            None => format!("attribute_not_exists({a})"),
            Some(v) => format!("{a} = {}", x.value(n(v))),
        }
    });
}

/// What one period's events of a chunk write to a billed org counter.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct PeriodWrites {
    /// Every event counted (the `p<start>|w` write counter).
    events: u64,
    /// The events the org's invoice bills (not those a member's own invoice bills:
    /// docs/billing.md "One payer per call"), and their recorded cost: what a late
    /// event adds to the period's adjustment.
    billed: u64,
    billed_cost: Decimal,
}

/// What a chunk of events writes to billed org counters: per counter item, per period
/// start (epoch seconds).
#[derive(Debug, Clone, Default)]
pub(super) struct OrgEventWrites(
    BTreeMap<String, BTreeMap<i64, PeriodWrites>>,
    /// Issue 19: which event writes which org counter, and the org wallet's draws
    /// (`org_late_draws`).
    pub super::org_late_draws::EventOrgs,
);

impl OrgEventWrites {
    /// Notes `w`, one of the writes `writes` of event `i` of the chunk, when it is to an
    /// org's pooled `period` counter; the org's invoice bills the event unless `writes`
    /// count it as billed elsewhere. A billed event's org wallet draws, when late, go with
    /// its adjustment (`org_late_draws`).
    pub fn note_of(
        &mut self,
        i: usize,
        tenant: &TenantId,
        w: &CounterWrite,
        writes: &[CounterWrite],
    ) -> StoreResult<()> {
        let Some((org, start)) = billed_org_period(&w.counter) else {
            return Ok(());
        };
        if w.add == Tally::default() {
            return Ok(());
        }
        let billed = !billed_elsewhere(writes, w.counter.scope());
        let (item, _) = place_of(&w.counter.key())?;
        let pk = counter_pk(tenant, &item);
        if billed {
            self.1.note(i, org, &pk, start.timestamp());
        }
        let slot = self
            .0
            .entry(pk)
            .or_default()
            .entry(start.timestamp())
            .or_default();
        slot.events += 1;
        if billed {
            slot.billed += 1;
            slot.billed_cost = slot
                .billed_cost
                .checked_add(w.add.cost_usd)
                .ok_or_else(|| StoreError::Overflow("org adjustment".into()))?;
        }
        Ok(())
    }

    /// Adds the billing guard of counter item `pk` to `u`, its update in the chunk: `true`
    /// when `pk` is a billed org counter (its condition failing means `OB` moved: read it
    /// with [`OrgBilled::read`] and try again).
    pub fn guard(&self, pk: &str, u: &mut Update, known: &OrgBilled) -> bool {
        let Some(periods) = self.0.get(pk) else {
            return false;
        };
        for (start, p) in periods {
            u.add(&writes_attr(*start), n(p.events));
        }
        match known.0.get(pk) {
            None => {
                let earliest = periods.keys().next().copied().unwrap_or_default();
                u.condition(|x| {
                    let b = x.name(BILLED);
                    format!(
                        "attribute_not_exists({b}) OR {b} <= {}",
                        x.value(n(earliest))
                    )
                });
            }
            Some(b) => {
                as_read(u, BILLED, b.map(Decimal::from));
                let mut late = false;
                for (start, p) in periods {
                    if p.billed > 0 && b.is_some_and(|b| *start < b) {
                        u.add(&adj_events(*start), n(p.billed));
                        u.add(&adj_cost(*start), n(p.billed_cost));
                        late = true;
                    }
                }
                if late {
                    u.add(ADJ_VERSION, n(1));
                }
            }
        }
        true
    }
}

/// The `OB` of billed org counter items, as read after an event's condition failed
/// (absent: not read, the event assumes its periods are open).
#[derive(Debug, Clone, Default)]
pub(super) struct OrgBilled(BTreeMap<String, Option<i64>>);

impl OrgBilled {
    /// Reads `OB` of the counter items `pks` (one `GetItem` each).
    pub async fn read(&mut self, store: &DynamoStore, pks: &[String]) -> StoreResult<()> {
        for pk in pks {
            let item = store.get_item(pk.clone(), COUNTER_SK, &[BILLED]).await?;
            let b = match item.as_ref().map(|i| number(i, BILLED)).transpose()? {
                Some(Some(v)) => Some(
                    i64::try_from(count_of(v, "org billed_to")?)
                        .map_err(|_| StoreError::Corrupt("org billed_to".into()))?,
                ),
                _ => None,
            };
            self.0.insert(pk.clone(), b);
        }
        Ok(())
    }
}

/// The version of a state: `OB`, `p<start>|w` and `OAV` as read (`-` when absent).
fn version_of(parts: [Option<Decimal>; 3]) -> String {
    parts
        .iter()
        .map(|p| p.map_or_else(|| "-".to_owned(), |v| v.to_string()))
        .collect::<Vec<_>>()
        .join("|")
}

fn parse_version(version: &str) -> StoreResult<[Option<Decimal>; 3]> {
    let parts: Vec<Option<Decimal>> = version
        .split('|')
        .map(|p| match p {
            "-" => Ok(None),
            v => v
                .parse::<Decimal>()
                .map(Some)
                .map_err(|_| StoreError::Corrupt(format!("org billing version {version:?}"))),
        })
        .collect::<StoreResult<_>>()?;
    parts
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("org billing version {version:?}")))
}

impl DynamoStore {
    fn org_counter_pk(tenant: &TenantId, org: &OrgId) -> StoreResult<String> {
        let (item, _) = place_of(&org_period_counter(org, DateTime::<Utc>::UNIX_EPOCH).key())?;
        Ok(counter_pk(tenant, &item))
    }
}

#[async_trait]
impl OrgBillingStore for DynamoStore {
    async fn org_billing_state(
        &self,
        tenant: &TenantId,
        org: &OrgId,
        period_start: DateTime<Utc>,
    ) -> StoreResult<OrgBillingState> {
        let pk = Self::org_counter_pk(tenant, org)?;
        let item = self
            .get_item(pk, COUNTER_SK, &[])
            .await?
            .unwrap_or_default();
        let (_, prefix) = place_of(&org_period_counter(org, period_start).key())?;
        let usage = usage_of(&item, &prefix)?;
        let mut adjustments = BTreeMap::new();
        for (name, value) in &item {
            let Some(start) = name.strip_prefix("OA").and_then(|r| r.strip_suffix("|n")) else {
                continue;
            };
            let secs: i64 = start
                .parse()
                .map_err(|_| StoreError::Corrupt(format!("org adjustment {name}")))?;
            let at = DateTime::<Utc>::from_timestamp(secs, 0)
                .ok_or_else(|| StoreError::Corrupt(format!("org adjustment {name}")))?;
            let a = Adjustment {
                events: count_of(decimal_of(value)?, "org adjustment events")?,
                cost_usd: number(&item, &adj_cost(secs))?.unwrap_or_default(),
            };
            if a.events > 0 || !a.cost_usd.is_zero() {
                adjustments.insert(at, a);
            }
        }
        let version = version_of([
            number(&item, BILLED)?,
            number(&item, &writes_attr(period_start.timestamp()))?,
            number(&item, ADJ_VERSION)?,
        ]);
        Ok(OrgBillingState {
            period_start,
            usage,
            adjustments,
            late_draws: super::org_late_draws::late_draws_of(&item)?,
            billed_to: match number(&item, BILLED)? {
                Some(v) => Some(
                    i64::try_from(count_of(v, "org billed_to")?)
                        .ok()
                        .and_then(|secs| DateTime::<Utc>::from_timestamp(secs, 0))
                        .ok_or_else(|| StoreError::Corrupt("org billed_to".into()))?,
                ),
                None => None,
            },
            version,
        })
    }

    async fn close_org_period_billed(
        &self,
        org: &OrgId,
        invoice: &Invoice,
        next: &Subscription,
        expected_version: u64,
        state: &OrgBillingState,
        charge: Option<&InvoiceCharge>,
    ) -> StoreResult<OrgClose> {
        let [billed, writes, adjv] = parse_version(&state.version)?;
        let mut u = Update::new();
        u.set(BILLED, n(invoice.period.end.timestamp()))
            .set(layout::TTL, item_ttl());
        for start in state.adjustments.keys() {
            u.remove(&adj_events(start.timestamp()))
                .remove(&adj_cost(start.timestamp()));
        }
        // Issue 19: the late draws this invoice credits (org_late_draws).
        super::org_late_draws::remove_late(&mut u);
        as_read(&mut u, BILLED, billed);
        as_read(&mut u, &writes_attr(state.period_start.timestamp()), writes);
        as_read(&mut u, ADJ_VERSION, adjv);
        let mut extra = match charge {
            Some(charge) => self.charge_items(&next.tenant, charge)?,
            None => Vec::new(),
        };
        extra.push(self.tx_update(Self::org_counter_pk(&next.tenant, org)?, COUNTER_SK, &u)?);
        self.close_org_period_with(org, invoice, next, expected_version, &extra)
            .await
    }
}

impl DynamoStore {
    /// The budget counter items of an event chunk (`adds` by counter key, as
    /// `budget_counter_items`), each billed org counter item among them guarded by
    /// [`OrgEventWrites::guard`]; with each item, the `PK` of a guarded one.
    pub(super) fn guarded_counter_items(
        &self,
        tenant: &TenantId,
        adds: &BTreeMap<String, super::budget_counters::CounterAdds>,
        orgs: &OrgEventWrites,
        known: &OrgBilled,
    ) -> StoreResult<Vec<(aws_sdk_dynamodb::types::TransactWriteItem, Option<String>)>> {
        let mut updates = super::budget_counters::item_updates(tenant, adds, &self.stale)?;
        for pk in orgs.0.keys() {
            updates.entry(pk.clone()).or_insert_with(|| {
                let mut u = Update::new();
                u.set(layout::TTL, item_ttl());
                u
            });
        }
        updates
            .into_iter()
            .map(|(pk, mut u)| {
                let guarded = orgs.guard(&pk, &mut u, known);
                // Issue 19: a late event's org wallet draws (org_late_draws).
                if let Some(Some(b)) = known.0.get(&pk) {
                    orgs.1.add_late(&pk, *b, &mut u)?;
                }
                Ok((
                    self.tx_update(pk.clone(), COUNTER_SK, &u)?,
                    guarded.then_some(pk),
                ))
            })
            .collect()
    }
}
