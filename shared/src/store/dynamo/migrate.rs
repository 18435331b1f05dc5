//! `meter migrate`: rewrites the user state items of the previous layout (names in
//! `legacy`) into this one (docs/operations.md, "Upgrading: meter migrate").
//!
//! For every state item — the `subs` index lists every user with a subscription or
//! usage, the `holds` index every user with open reservations — the attributes of the
//! previous layout are rewritten:
//! - counters, fired alert keys and write counters of CLOSED periods (start before
//!   `billed_to`) go to the period's item (`SP#…`, marked closed); write counters of
//!   closed periods are dropped (nothing conditions on them any more);
//! - display-only counts (estimated, errors, latency) of every period go to its item;
//! - limit counters, fired keys and write counters of open periods, and pending
//!   adjustments, get their compact names (`c|<period id>|<code>|<provider>` …);
//! - open reservations get compact names and maps, at most
//!   [`layout::MAX_INLINE_RESERVATIONS`] of them on the state item; the others SPILL to
//!   items of their own.
//!
//! Each step is one conditional transaction on the state item as read: every attribute it
//! removes must still hold the value read, `billed_to` and the inline count must be
//! unchanged; values are ADDed to their new names (so a concurrent write of the new
//! layout composes with it), and the write counters of the open periods it touches move
//! (so a concurrent close of one of them fails and is retried). A condition that fails
//! makes the step read the item again. A state item whose previous-layout attributes fit
//! one step (≈ [`ATTRS_PER_STEP`]; every user with a few months of history) is rewritten
//! in one transaction; a larger one in several, each complete on its own.
//!
//! Idempotent and resumable: the position (index and last user done) is a job cursor
//! (`JOB#migrate-17`), saved after every page of users; a finished run leaves it at
//! `done`, and running again does nothing more.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::codec::{decimal_of, get_s, n, s, Item};
use super::counters::{billed_condition, BilledTo, Placement};
use super::errors::sdk_err;
use super::expressions::Update;
use super::items;
use super::layout;
use super::legacy::{self, Attr};
use super::requests::{gave_up, MAX_TX_ITEMS};
use super::DynamoStore;
use crate::domain::Reservation;
use crate::store::{InvoiceStore, StoreError, StoreResult};

/// The job cursor of the migration.
pub const JOB: &str = "migrate-17";
/// The cursor of a finished migration.
const DONE: &str = "done";
/// Users read per index page.
const PAGE: i32 = 100;
/// Most previous-layout attributes one step rewrites: keeps each expression of the state
/// update (REMOVE + conditions + ADD, ≈ 35 characters per attribute) under DynamoDB's
/// 4 KB limit.
pub const ATTRS_PER_STEP: usize = 64;
/// Consecutive failed conditions on one user before the migration gives up.
const MAX_STEP_FAILURES: u32 = 10;

/// What a migration run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationReport {
    /// State items read.
    pub users_visited: u64,
    /// State items that held previous-layout attributes (now rewritten).
    pub users_changed: u64,
    /// Transactions written.
    pub steps: u64,
    /// Reservations moved off the state item to items of their own.
    pub reservations_spilled: u64,
    /// The job cursor said the migration had finished already: nothing was read.
    pub already_done: bool,
    /// Issue 18: budgets moved onto their scope's item (`migrate_budgets`).
    pub budgets_folded: u64,
    /// Issue 18: one-window counter items added to their scope's counter item.
    pub counters_folded: u64,
    /// Issue 19: grants put before the due index given their due keys (`migrate_grants`).
    pub grants_indexed: u64,
    /// Issue 19: wallet heads put before the tenant's wallet listing given its keys
    /// (`migrate_grants`).
    pub wallets_listed: u64,
    /// Issue 18: orgs invoiced before the late-event layout given their `OB`
    /// (`migrate_org_billed`).
    pub orgs_billed_to_set: u64,
}

/// The indexes listing state items, in the order the migration walks them: (cursor
/// phase, index, partition attribute, partition value, sort attribute).
fn phases() -> Vec<(String, &'static str, &'static str, String, &'static str)> {
    let mut out = vec![(
        "subs".to_owned(),
        layout::SUBS_INDEX,
        layout::SUBS_PK,
        layout::SUBS_PARTITION.to_owned(),
        layout::SUBS_SK,
    )];
    for shard in 0..layout::HOLDS_SHARDS {
        out.push((
            format!("holds{shard}"),
            layout::HOLDS_INDEX,
            layout::HOLDS_PK,
            format!("HOLDS#{shard}"),
            layout::HOLDS_SK,
        ));
    }
    out
}

/// One attribute of the previous layout and where it goes.
#[derive(Debug, Clone)]
struct Unit {
    /// The previous-layout attribute (removed) and its value as read.
    name: String,
    old: AttributeValue,
    action: Action,
}

#[derive(Debug, Clone)]
enum Action {
    /// ADD to a state attribute (open period's counter, fired keys, write counter,
    /// adjustment); `period` is the open period whose write counter moves, if any.
    State {
        attr: String,
        value: AttributeValue,
        period: Option<DateTime<Utc>>,
        adjustment: bool,
    },
    /// ADD to an attribute of a period item (`closed`: mark it).
    Period {
        start: DateTime<Utc>,
        attr: String,
        value: AttributeValue,
        closed: bool,
    },
    /// Only removed (a zero counter, a closed period's write counter).
    Drop,
    /// An open reservation: kept on the state item under its compact name, or spilled.
    Reservation { r: Box<Reservation>, spill: bool },
}

/// What a state item needs: its previous-layout attributes, in the order they are
/// rewritten (reservations first, then by period).
#[derive(Debug, Default)]
struct Plan {
    units: Vec<Unit>,
    /// Open reservations already in this layout on the state item.
    inline_now: u32,
}

fn is_zero(v: &AttributeValue) -> bool {
    decimal_of(v).is_ok_and(|d| d.is_zero())
}

impl Plan {
    fn of(state: &Item) -> StoreResult<Self> {
        let user_of = || {
            get_s(state, layout::PK)
                .and_then(layout::parse_user_pk)
                .ok_or_else(|| StoreError::Corrupt("state item without a user key".into()))
        };
        let placement = BilledTo(get_s(state, layout::BILLED_TO));
        let mut plan = Plan::default();
        let mut reservations = Vec::new();
        let mut periods: BTreeMap<(DateTime<Utc>, String), Unit> = BTreeMap::new();
        for (name, value) in state {
            if let Some(rest) = name.strip_prefix(layout::RESERVATION_PREFIX) {
                let (tenant, user) = user_of()?;
                let id = layout::reservation_id_of(name, &user).unwrap_or_else(|| rest.into());
                let compact_map = value.as_m().is_ok_and(|m| m.contains_key("p"));
                if *name == layout::reservation_attr(&id) && compact_map {
                    plan.inline_now += 1;
                    continue;
                }
                let r = items::reservation_of_map(&tenant, &user, &id, value)?;
                reservations.push((name.clone(), value.clone(), r));
                continue;
            }
            let Some(attr) = legacy::parse(name) else {
                continue;
            };
            let (start, action) = match attr {
                Attr::Counter(start, field, provider) => {
                    let provider = provider
                        .map(|p| crate::domain::ProviderId::parse(&p))
                        .transpose()
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                    let action = if is_zero(value) {
                        Action::Drop
                    } else if placement.closed(start) || !field.is_limit() {
                        Action::Period {
                            start,
                            attr: layout::period_counter(field, provider.as_ref()),
                            value: value.clone(),
                            closed: placement.closed(start),
                        }
                    } else {
                        Action::State {
                            attr: layout::counter(start, field, provider.as_ref()),
                            value: value.clone(),
                            period: Some(start),
                            adjustment: false,
                        }
                    };
                    (start, action)
                }
                Attr::Fired(start) => {
                    let action = if placement.closed(start) {
                        Action::Period {
                            start,
                            attr: layout::PERIOD_FIRED.to_owned(),
                            value: value.clone(),
                            closed: true,
                        }
                    } else {
                        Action::State {
                            attr: layout::fired(start),
                            value: value.clone(),
                            period: Some(start),
                            adjustment: false,
                        }
                    };
                    (start, action)
                }
                Attr::Writes(start) => {
                    let action = if placement.closed(start) {
                        Action::Drop
                    } else {
                        Action::State {
                            attr: layout::writes(start),
                            value: value.clone(),
                            period: Some(start),
                            adjustment: false,
                        }
                    };
                    (start, action)
                }
                Attr::Adjustment(start, part) => (
                    start,
                    Action::State {
                        attr: layout::adjustment(start, part),
                        value: value.clone(),
                        period: None,
                        adjustment: true,
                    },
                ),
            };
            periods.insert(
                (start, name.clone()),
                Unit {
                    name: name.clone(),
                    old: value.clone(),
                    action,
                },
            );
        }
        // The reservations kept inline: as many as there are free slots, soonest to
        // expire first (they leave soonest); the others spill.
        reservations.sort_by(|a, b| (a.2.expires_at, &a.2.id).cmp(&(b.2.expires_at, &b.2.id)));
        let free = layout::MAX_INLINE_RESERVATIONS.saturating_sub(plan.inline_now) as usize;
        for (i, (name, old, r)) in reservations.into_iter().enumerate() {
            plan.units.push(Unit {
                name,
                old,
                action: Action::Reservation {
                    r: Box::new(r),
                    spill: i >= free,
                },
            });
        }
        plan.units.extend(periods.into_values());
        Ok(plan)
    }

    /// The first step: at most [`ATTRS_PER_STEP`] units that fit one transaction.
    fn first_step(&self) -> &[Unit] {
        let (mut end, mut items, mut periods) = (0, 1usize, BTreeSet::new());
        for u in &self.units {
            let more = match &u.action {
                Action::Reservation { spill: true, .. } => 1,
                Action::Period { start, .. } if !periods.contains(start) => 1,
                _ => 0,
            };
            if end >= ATTRS_PER_STEP || items + more > MAX_TX_ITEMS {
                break;
            }
            if let Action::Period { start, .. } = &u.action {
                periods.insert(*start);
            }
            items += more;
            end += 1;
        }
        &self.units[..end]
    }
}

/// The value an ADD of `v` needs: numbers and string sets as they are.
fn removal_condition(u: &mut Update, name: &str, old: &AttributeValue) {
    match old {
        AttributeValue::N(_) => {
            u.condition(|x| format!("{} = {}", x.name(name), x.value(old.clone())));
        }
        _ => {
            u.condition(|x| format!("attribute_exists({})", x.name(name)));
        }
    }
}

impl DynamoStore {
    /// Runs (or resumes) the migration of this table; see the module.
    pub async fn migrate(&self) -> StoreResult<MigrationReport> {
        let mut report = MigrationReport::default();
        // Issue 18: budgets and their counters into the check's one-read layout.
        let budgets_ran = self.migrate_budget_layout(&mut report).await?;
        // Issue 19: grants put before the due index get their due keys.
        let grants_ran = self.migrate_grant_due_keys(&mut report).await?;
        // Issue 18: orgs invoiced before the late-event layout get their `OB`.
        let orgs_ran = self.migrate_org_billed_to(&mut report).await?;
        let cursor = self.get_job_cursor(JOB).await?;
        if cursor.as_deref() == Some(DONE) {
            report.already_done = !budgets_ran && !grants_ran && !orgs_ran;
            return Ok(report);
        }
        let (resume_phase, resume_after) = match cursor.as_deref().and_then(|c| c.split_once('|')) {
            Some((phase, after)) => (Some(phase.to_owned()), Some(after.to_owned())),
            None => (None, None),
        };
        let phases = phases();
        let skip = resume_phase
            .as_ref()
            .and_then(|p| phases.iter().position(|(name, ..)| name == p))
            .unwrap_or(0);
        for (i, (phase, index, pk_attr, value, sk_attr)) in phases.iter().enumerate().skip(skip) {
            let after = if i == skip {
                resume_after.clone()
            } else {
                None
            };
            self.migrate_index(phase, index, pk_attr, value, sk_attr, after, &mut report)
                .await?;
        }
        self.put_job_cursor(JOB, Some(DONE)).await?;
        Ok(report)
    }

    /// Migrates the state items one index partition lists, after the user `after`.
    #[allow(clippy::too_many_arguments)]
    async fn migrate_index(
        &self,
        phase: &str,
        index: &str,
        pk_attr: &str,
        value: &str,
        sk_attr: &str,
        after: Option<String>,
        report: &mut MigrationReport,
    ) -> StoreResult<()> {
        let mut start: Option<Item> = None;
        loop {
            let mut q = self
                .query()
                .index_name(index)
                .expression_attribute_names("#p", pk_attr)
                .expression_attribute_values(":p", s(value))
                .limit(PAGE)
                .set_exclusive_start_key(start.take());
            q = match &after {
                Some(a) => q
                    .key_condition_expression("#p = :p AND #s > :after")
                    .expression_attribute_names("#s", sk_attr)
                    .expression_attribute_values(":after", s(a.clone())),
                None => q.key_condition_expression("#p = :p"),
            };
            let page = q.send().await.map_err(|e| sdk_err("Query", e))?;
            let mut last = None;
            for entry in page.items() {
                let (Some(pk), Some(layout::STATE_SK)) =
                    (get_s(entry, layout::PK), get_s(entry, layout::SK))
                else {
                    continue;
                };
                report.users_visited += 1;
                if self.migrate_user(pk, report).await? {
                    report.users_changed += 1;
                }
                last = Some(pk.to_owned());
            }
            if let Some(pk) = last {
                self.put_job_cursor(JOB, Some(&format!("{phase}|{pk}")))
                    .await?;
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(()),
            }
        }
    }

    /// Rewrites one state item, step by step; `true` if it held previous-layout attributes.
    async fn migrate_user(&self, pk: &str, report: &mut MigrationReport) -> StoreResult<bool> {
        let mut changed = false;
        let mut failures = 0;
        loop {
            let Some(state) = self.get_item(pk.to_owned(), layout::STATE_SK, &[]).await? else {
                return Ok(changed);
            };
            let plan = Plan::of(&state)?;
            let step = plan.first_step();
            if step.is_empty() {
                return Ok(changed);
            }
            if self.migrate_step(pk, &state, &plan, step, report).await? {
                changed = true;
                failures = 0;
            } else {
                failures += 1;
                if failures >= MAX_STEP_FAILURES {
                    return Err(gave_up("migrating a state item"));
                }
                super::requests::backoff(failures).await;
            }
        }
    }

    /// One step's transaction; `false` when the state item changed since it was read.
    async fn migrate_step(
        &self,
        pk: &str,
        state: &Item,
        plan: &Plan,
        step: &[Unit],
        report: &mut MigrationReport,
    ) -> StoreResult<bool> {
        let mut u = Update::new();
        let billed = get_s(state, layout::BILLED_TO);
        u.condition(|x| billed_condition(x, billed));
        let mut touched: BTreeSet<DateTime<Utc>> = BTreeSet::new();
        let mut period_updates: BTreeMap<DateTime<Utc>, Update> = BTreeMap::new();
        let mut marked: BTreeSet<DateTime<Utc>> = BTreeSet::new();
        let mut state_adds: BTreeMap<String, AttributeValue> = BTreeMap::new();
        let mut spilled = Vec::new();
        let mut kept = 0u32;
        let mut adjusted = false;
        for unit in step {
            removal_condition(&mut u, &unit.name, &unit.old);
            let renamed_in_place = match &unit.action {
                // An id not of our form keeps its name: the SET below replaces the map.
                Action::Reservation { r, spill: false } => {
                    layout::reservation_attr(&r.id) == unit.name
                }
                _ => false,
            };
            if !renamed_in_place {
                u.remove(&unit.name);
            }
            match &unit.action {
                Action::State {
                    attr,
                    value,
                    period,
                    adjustment,
                } => {
                    state_adds.insert(attr.clone(), value.clone());
                    touched.extend(*period);
                    adjusted |= adjustment;
                }
                Action::Period {
                    start,
                    attr,
                    value,
                    closed,
                } => {
                    let pu = period_updates.entry(*start).or_default();
                    pu.add(attr, value.clone());
                    if *closed && marked.insert(*start) {
                        pu.set(layout::PERIOD_CLOSED, AttributeValue::Bool(true));
                    }
                }
                Action::Drop => {}
                Action::Reservation { r, spill } => {
                    if *spill {
                        spilled.push(items::spilled_item(r)?);
                    } else {
                        u.set(&layout::reservation_attr(&r.id), items::reservation_map(r));
                        kept += 1;
                    }
                }
            }
        }
        for period in touched {
            // The write counter moves (with what it held in the previous layout, if any).
            let w = layout::writes(period);
            let before = state_adds.get(&w).map_or(Ok(Decimal::ZERO), decimal_of)?;
            state_adds.insert(w, n(before + Decimal::ONE));
        }
        for (attr, value) in state_adds {
            u.add(&attr, value);
        }
        if adjusted {
            u.add(layout::ADJ_VERSION, n(1));
        }
        if step
            .iter()
            .any(|unit| matches!(unit.action, Action::Reservation { .. }))
        {
            let now = state.get(layout::INLINE_HOLDS).cloned();
            u.set(layout::INLINE_HOLDS, n(plan.inline_now + kept));
            u.condition(|x| {
                let i = x.name(layout::INLINE_HOLDS);
                match now {
                    Some(v) => format!("{i} = {}", x.value(v)),
                    None => format!("attribute_not_exists({i})"),
                }
            });
        }
        let spills = spilled.len() as u64;
        let res = self
            .transact_until_decided("migrating a state item", || {
                let mut tx = vec![self.tx_update(pk.to_owned(), layout::STATE_SK, &u)?];
                for (start, pu) in &period_updates {
                    tx.push(self.tx_update(pk.to_owned(), &layout::period_sk(*start), pu)?);
                }
                for item in &spilled {
                    tx.push(self.tx_put(item.clone(), true)?);
                }
                Ok(tx)
            })
            .await?;
        if res.is_ok() {
            report.steps += 1;
            report.reservations_spilled += spills;
        }
        Ok(res.is_ok())
    }
}

/// Whether a state item still holds attributes of the previous layout (what `meter
/// migrate` rewrites).
pub fn needs_migration(state: &Item) -> bool {
    Plan::of(state).map_or(true, |p| !p.units.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ProviderId, TenantId, UserId};
    use crate::store::dynamo::layout::Field;
    use crate::usage::Tally;
    use chrono::TimeZone;
    use rust_decimal_macros::dec;

    fn at(m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, m, 1, 0, 0, 0).unwrap()
    }

    fn legacy_state(reservations: usize) -> Item {
        let (tenant, user) = (
            TenantId::parse("acme").unwrap(),
            UserId::parse("ann").unwrap(),
        );
        let mut st = super::super::requests::key(layout::user_pk(&tenant, "ann"), layout::STATE_SK);
        st.insert(layout::BILLED_TO.into(), s(layout::billed_to(at(3))));
        for (m, calls) in [(2, 5), (3, 7)] {
            let p = at(m);
            st.insert(
                legacy::counter(p, Field::CallsUsed, Some("gemini")),
                n(calls),
            );
            st.insert(legacy::counter(p, Field::CallsUsed, None), n(calls));
            st.insert(legacy::counter(p, Field::Errors, Some("gemini")), n(1));
            st.insert(legacy::counter(p, Field::CostHeld, Some("gemini")), n(0));
            st.insert(legacy::writes(p), n(9));
            st.insert(legacy::fired(p), AttributeValue::Ss(vec!["k".into()]));
        }
        st.insert(
            legacy::adjustment(at(2), layout::AdjustmentPart::Cost),
            n("0.5"),
        );
        for i in 0..reservations {
            let r = Reservation {
                id: Reservation::new_id(&user),
                tenant: tenant.clone(),
                user: user.clone(),
                provider: ProviderId::parse("gemini").unwrap(),
                period_start: at(3),
                held: Tally {
                    calls: 1,
                    tokens: 0,
                    cost_usd: dec!(0.01),
                },
                created_at: at(3),
                expires_at: at(3) + chrono::Duration::minutes(i as i64),
                budget_holds: Vec::new(),
                status: crate::domain::ReservationStatus::Held,
            };
            let legacy_map = AttributeValue::M(
                [
                    ("provider", s("gemini")),
                    ("period", s(layout::sortable(r.period_start))),
                    ("calls", n(1)),
                    ("tokens", n(0)),
                    ("cost", n("0.01")),
                    ("created_at", s(layout::sortable(r.created_at))),
                    ("expires_at", s(layout::sortable(r.expires_at))),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
            );
            st.insert(format!("r|{}", r.id), legacy_map);
        }
        st
    }

    #[test]
    fn closed_periods_go_to_their_items_open_ones_get_compact_names() {
        let plan = Plan::of(&legacy_state(0)).unwrap();
        let feb = at(2);
        let mut to_period = BTreeMap::new();
        let mut to_state = BTreeMap::new();
        let mut dropped = 0;
        for u in &plan.units {
            match &u.action {
                Action::Period {
                    start,
                    attr,
                    closed,
                    ..
                } => {
                    to_period.insert((*start, attr.clone()), *closed);
                }
                Action::State { attr, .. } => {
                    to_state.insert(attr.clone(), ());
                }
                Action::Drop => dropped += 1,
                Action::Reservation { .. } => unreachable!(),
            }
        }
        // February (closed): counters, errors and fired keys on its item, marked closed.
        for attr in ["cu|gemini", "cu|*", "er|gemini", "a"] {
            assert_eq!(
                to_period.get(&(feb, attr.to_owned())),
                Some(&true),
                "{attr}"
            );
        }
        // March (open): errors to its item unmarked, limit counters renamed on the state.
        assert_eq!(
            to_period.get(&(at(3), "er|gemini".to_owned())),
            Some(&false)
        );
        let p = layout::period_id(at(3));
        for attr in [
            format!("c|{p}|cu|gemini"),
            format!("c|{p}|cu|*"),
            format!("a|{p}"),
            format!("w|{p}"),
            format!("adj|{}|cost", layout::period_id(feb)),
        ] {
            assert!(to_state.contains_key(&attr), "{attr}: {to_state:?}");
        }
        // Zero counters and February's write counter are only removed.
        assert_eq!(dropped, 3);
        assert!(needs_migration(&legacy_state(0)));
    }

    #[test]
    fn reservations_beyond_the_inline_bound_spill_and_steps_stay_bounded() {
        let plan = Plan::of(&legacy_state(20)).unwrap();
        let spills: Vec<bool> = plan
            .units
            .iter()
            .filter_map(|u| match &u.action {
                Action::Reservation { spill, .. } => Some(*spill),
                _ => None,
            })
            .collect();
        assert_eq!(spills.len(), 20);
        assert_eq!(spills.iter().filter(|s| !**s).count(), 8);
        assert!(plan.first_step().len() <= ATTRS_PER_STEP);
        // An id not of our form keeps its name, but a map of the previous form is rewritten.
        let mut st = legacy_state(0);
        let old = legacy_state(1)
            .into_iter()
            .find(|(k, _)| k.starts_with("r|"))
            .unwrap()
            .1;
        st.insert("r|legacy-1".into(), old);
        let plan = Plan::of(&st).unwrap();
        assert!(plan.units.iter().any(|u| u.name == "r|legacy-1"
            && matches!(&u.action, Action::Reservation { r, spill: false } if r.id == "legacy-1")));
        let mut st = Item::new();
        st.insert(layout::PK.into(), s("T#acme#U#ann"));
        st.insert("c|1740787200|cu|gemini".into(), n(1));
        assert!(!needs_migration(&st));
    }
}
