//! Reservations: up to [`layout::MAX_INLINE_RESERVATIONS`] open ones on the state item
//! (`r|<uuid>` maps), so that a reservation is one conditional `UpdateItem` — guards,
//! hold and reservation in one atomic write; the ones beyond SPILL to items of their own
//! (`RSV#<id>`, status `held`, in the `holds` index), written in one `TransactWriteItems`
//! with the guarded state update. `open_holds` counts both, `inline_holds` the ones on the
//! state item. A closed reservation leaves a tombstone at `RSV#<id>` (a spilled one's
//! item is rewritten as its tombstone).
//!
//! The hold goes to the counters of the reservation's period where they are: the state
//! item while the period is open, its period item once closed (see `counters`).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::types::{AttributeValue, CancellationReason, Put, TransactWriteItem};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::budget_counters::{CounterAdds, GuardedUpdate, COUNTER_SK};
use super::codec::{decimal_attr, from_item, get_s, n, s, Item};
use super::counters::{billed_condition, open_condition, AllOpen, BilledTo, Increments, Placement};
use super::errors::{build_err, sdk_err};
use super::expressions::Update;
use super::items;
use super::layout::{self, Field};
use super::org_wallets;
use super::prepaid;
use super::requests::{gave_up, key, reason_code, MAX_ATTEMPTS};
use super::DynamoStore;
use crate::domain::{Reservation, ReservationStatus, TenantId, UserId};
use crate::limits::Metric;
use crate::store::{
    CreditHold, CreditReserve, Guard, ReleaseOutcome, ReserveOutcome, StoreError, StoreResult,
};

/// Users (state item keys) whose state item this process last saw with every inline slot
/// taken: their next reservation spills at once (one transaction) instead of failing its
/// inline write first. Only a shortcut: the inline write's condition keeps the bound.
#[derive(Debug, Default, Clone)]
pub(super) struct Crowded(Arc<Mutex<HashSet<String>>>);

/// Most users remembered as crowded (the set is emptied when full).
const CROWDED_MAX: usize = 10_000;

impl Crowded {
    fn set(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes what a read of the state item `pk` showed.
    pub(super) fn note(&self, pk: &str, state: &Item) {
        let inline = decimal_attr(state, layout::INLINE_HOLDS).unwrap_or_default();
        if inline >= Decimal::from(layout::MAX_INLINE_RESERVATIONS) {
            self.mark(pk);
        } else {
            self.set().remove(pk);
        }
    }

    fn mark(&self, pk: &str) {
        let mut set = self.set();
        if set.len() >= CROWDED_MAX {
            set.clear();
        }
        set.insert(pk.to_owned());
    }

    fn is(&self, pk: &str) -> bool {
        self.set().contains(pk)
    }
}

/// Where an open reservation is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Place {
    /// On the state item, under this attribute.
    Inline(String),
    /// An item of its own.
    Spilled,
}

#[derive(Debug, Clone)]
pub(super) struct OpenReservation {
    pub r: Reservation,
    pub place: Place,
    /// The wallet credit it holds (issue 19, prepaid plans; 0: none).
    pub credit: Decimal,
    /// The org whose wallet holds it (`None`: the user's own; `org_wallets`).
    pub credit_org: Option<crate::domain::OrgId>,
}

/// What a lookup of reservation ids found.
#[derive(Debug, Default)]
pub(super) struct Found {
    pub open: HashMap<String, OpenReservation>,
    pub closed: HashMap<String, Reservation>,
    /// The user's `billed_to` text when the state item was read.
    pub billed: Option<String>,
}

/// The one attribute a guard on `metric` compares: on the state item (open period) or
/// on the period item (closed period).
pub(super) fn guard_attr(period: DateTime<Utc>, metric: &Metric, closed: bool) -> String {
    let (field, provider) = match metric {
        Metric::Calls(p) => (Field::CallsUsed, p.as_ref()),
        Metric::Tokens(p) => (Field::TokensUsed, p.as_ref()),
        Metric::CostUsd => (Field::CostUsed, None),
    };
    if closed {
        layout::period_counter(field, provider)
    } else {
        layout::counter(period, field, provider)
    }
}

/// `limit - increment`, or `None` when no stored value can pass the guard.
pub(super) fn guard_bound(g: &Guard) -> Option<Decimal> {
    let bound = g.limit.checked_sub(g.increment)?;
    let passable = if g.strict {
        bound > Decimal::ZERO
    } else {
        bound >= Decimal::ZERO
    };
    passable.then_some(bound)
}

pub(super) fn guard_holds(g: &Guard, used: Decimal) -> bool {
    match used.checked_add(g.increment) {
        Some(after) if g.strict => after < g.limit,
        Some(after) => after <= g.limit,
        None => false,
    }
}

/// The guards of `guards` as conditions on `u` (attributes of the state item or, for a
/// closed period, of its period item).
fn guard_conditions(
    u: &mut Update,
    guards: &[(Guard, Decimal)],
    period: DateTime<Utc>,
    closed: bool,
) {
    for (g, bound) in guards {
        let attr = guard_attr(period, &g.metric, closed);
        let op = if g.strict { "<" } else { "<=" };
        u.condition(|x| {
            let (c, b) = (x.name(&attr), x.value(n(bound)));
            format!("attribute_not_exists({c}) OR {c} {op} {b}")
        });
    }
}

/// What closing `r` takes back from its budget counters, by counter key.
pub(super) fn unheld_budget_counters(
    r: &Reservation,
) -> StoreResult<BTreeMap<String, CounterAdds>> {
    let mut out: BTreeMap<String, CounterAdds> = BTreeMap::new();
    for h in &r.budget_holds {
        out.entry(h.counter.clone())
            .or_default()
            .unhold(&r.provider, h)?;
    }
    Ok(out)
}

fn condition_failed(reasons: &[CancellationReason], i: usize) -> bool {
    reasons
        .get(i)
        .is_some_and(|r| reason_code(r) == "ConditionalCheckFailed")
}

/// The attribute names an open reservation `id` may have on the state item: this
/// layout's and the previous one's (`r|<id>`, until `meter migrate` renamed it).
fn inline_names(id: &str) -> Vec<String> {
    let mut names = vec![layout::reservation_attr(id)];
    let legacy = format!("{}{id}", layout::RESERVATION_PREFIX);
    if !names.contains(&legacy) {
        names.push(legacy);
    }
    names
}

impl DynamoStore {
    /// The items at these keys: one `GetItem` for one key, else `BatchGetItem`s
    /// (consistent).
    async fn get_items(&self, keys: Vec<Item>) -> StoreResult<Vec<Item>> {
        if let [only] = keys.as_slice() {
            let pk = get_s(only, layout::PK).unwrap_or_default().to_owned();
            let sk = get_s(only, layout::SK).unwrap_or_default().to_owned();
            return Ok(self.get_item(pk, &sk, &[]).await?.into_iter().collect());
        }
        self.batch_get(keys, true).await
    }

    /// Finds reservations `ids` of one user: on the state item (one `GetItem` projecting
    /// their attributes and `billed_to`), then, for the ids not there, their items (open
    /// spilled ones and tombstones; one more read, only then). No request when there are
    /// no ids and `billed` is not wanted.
    pub(super) async fn find_reservations(
        &self,
        tenant: &TenantId,
        user: &UserId,
        ids: &BTreeSet<&str>,
        billed: bool,
    ) -> StoreResult<Found> {
        let mut found = Found::default();
        if ids.is_empty() && !billed {
            return Ok(found);
        }
        let mut attrs: Vec<String> = ids.iter().flat_map(|id| inline_names(id)).collect();
        attrs.push(layout::BILLED_TO.to_owned());
        let refs: Vec<&str> = attrs.iter().map(String::as_str).collect();
        let state = self.get_state(tenant, user, &refs).await?;
        found.billed = get_s(&state, layout::BILLED_TO).map(str::to_owned);
        let mut rest = Vec::new();
        for id in ids {
            match inline_names(id)
                .into_iter()
                .find_map(|name| state.get(&name).map(|av| (name, av)))
            {
                Some((name, av)) => {
                    let r = items::reservation_of_map(tenant, user, id, av)?;
                    let credit = prepaid::credit_of_map(av)?;
                    found.open.insert(
                        (*id).to_owned(),
                        OpenReservation {
                            r,
                            place: Place::Inline(name),
                            credit,
                            credit_org: org_wallets::credit_org_of_map(av)?,
                        },
                    );
                }
                None => rest.push(*id),
            }
        }
        if rest.is_empty() {
            return Ok(found);
        }
        let pk = layout::user_pk(tenant, user.as_str());
        let wanted = rest
            .iter()
            .map(|id| key(pk.clone(), layout::tombstone_sk(id)))
            .collect();
        for item in self.get_items(wanted).await? {
            let r: Reservation = from_item(&item)?;
            if r.status == ReservationStatus::Held {
                let credit = prepaid::credit_of(&item)?;
                found.open.insert(
                    r.id.clone(),
                    OpenReservation {
                        r,
                        place: Place::Spilled,
                        credit,
                        credit_org: org_wallets::credit_org_of(&item)?,
                    },
                );
            } else {
                found.closed.insert(r.id.clone(), r);
            }
        }
        Ok(found)
    }

    /// The tombstone (or spilled) item of reservation `id`.
    async fn reservation_item(
        &self,
        tenant: &TenantId,
        user: &UserId,
        id: &str,
    ) -> StoreResult<Option<Reservation>> {
        let item = self
            .get_item(
                layout::user_pk(tenant, user.as_str()),
                &layout::tombstone_sk(id),
                &[],
            )
            .await?;
        item.as_ref().map(from_item).transpose()
    }

    /// The put that closes a reservation: its tombstone; for a spilled one, on condition
    /// that its item is still open.
    pub(super) fn tombstone_put(
        &self,
        open: &OpenReservation,
        status: ReservationStatus,
    ) -> StoreResult<TransactWriteItem> {
        let item = items::tombstone_item(&open.r, status)?;
        if open.place != Place::Spilled {
            return self.tx_put(item, false);
        }
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_exists(#pk) AND #st = :held")
            .expression_attribute_names("#pk", layout::PK)
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":held", s("held"))
            .build()
            .map_err(build_err)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// Closes an open reservation (returning its hold) with `status`; `false` if it was
    /// no longer open. One transaction: the state update, the tombstone and, when the
    /// reservation's period is closed, its period item. `billed`: the user's `billed_to`
    /// as last read (`None`: not read; assumed open, read when that fails).
    pub(super) async fn close_reservation(
        &self,
        open: &OpenReservation,
        status: ReservationStatus,
        billed: Option<Option<String>>,
    ) -> StoreResult<bool> {
        let r = &open.r;
        let pk = layout::user_pk(&r.tenant, r.user.as_str());
        let mut inc = Increments::default();
        inc.unhold(r.period_start, &r.provider, &r.held)?;
        let unheld = unheld_budget_counters(r)?;
        let mut billed = billed;
        for _ in 0..MAX_ATTEMPTS {
            let rendered = match &billed {
                None => inc.render(&AllOpen),
                Some(b) => inc.render(&BilledTo(b.as_deref())),
            };
            let mut u = Update::new();
            rendered.add_state(&mut u);
            u.add(layout::OPEN_HOLDS, n(-1));
            if let Place::Inline(attr) = &open.place {
                u.remove(attr).add(layout::INLINE_HOLDS, n(-1));
                u.condition(|x| format!("attribute_exists({})", x.name(attr)));
            }
            match &billed {
                None => u.condition(|x| open_condition(x, r.period_start)),
                Some(b) => u.condition(|x| billed_condition(x, b.as_deref())),
            };
            let res = self
                .transact_until_decided("closing a reservation", || {
                    let mut tx = vec![
                        self.tx_update(pk.clone(), layout::STATE_SK, &u)?,
                        self.tombstone_put(open, status)?,
                    ];
                    for (period, w) in &rendered.periods {
                        if let Some(pu) = w.update() {
                            tx.push(self.tx_update(
                                pk.clone(),
                                &layout::period_sk(*period),
                                &pu,
                            )?);
                        }
                    }
                    tx.extend(self.budget_counter_items(&r.tenant, &unheld)?);
                    if open.credit > Decimal::ZERO {
                        // Issue 19: the credit it held goes back to the wallet.
                        tx.push(self.tx_update(
                            org_wallets::credit_wallet_pk(
                                &r.tenant,
                                &r.user,
                                open.credit_org.as_ref(),
                            ),
                            prepaid::HEAD_SK,
                            &prepaid::release_update(open.credit),
                        )?);
                    }
                    Ok(tx)
                })
                .await?;
            let reasons = match res {
                Ok(()) => return Ok(true),
                Err(reasons) => reasons,
            };
            if condition_failed(&reasons, 1) {
                return Ok(false); // a spilled reservation closed meanwhile
            }
            // The state's condition: closed meanwhile, or `billed_to` is not as assumed.
            let mut attrs = vec![layout::BILLED_TO];
            if let Place::Inline(attr) = &open.place {
                attrs.push(attr);
            }
            let state = self.get_state(&r.tenant, &r.user, &attrs).await?;
            if let Place::Inline(attr) = &open.place {
                if !state.contains_key(attr) {
                    return Ok(false);
                }
            }
            billed = Some(get_s(&state, layout::BILLED_TO).map(str::to_owned));
        }
        Err(gave_up("closing a reservation"))
    }

    /// Holds `r.held` if every guard holds (see [`crate::store::UsageStore::reserve`]).
    ///
    /// `budget`: the guarded updates of the budget counters a reservation also holds on
    /// (`reserve_counted`): then the write is always one `TransactWriteItems` (the state
    /// update, those updates, and the period or spilled item when needed), and a budget
    /// counter's failing condition is a denial.
    pub(super) async fn reserve_hold(
        &self,
        r: &Reservation,
        guards: &[Guard],
        budget: &[GuardedUpdate],
    ) -> StoreResult<ReserveOutcome> {
        match self.reserve_hold_with(r, guards, budget, None).await? {
            CreditReserve::Reserved => Ok(ReserveOutcome::Reserved),
            CreditReserve::Denied { metric } => Ok(ReserveOutcome::Denied { metric }),
            CreditReserve::NoCredit => Err(gave_up("reserving")),
        }
    }

    /// [`Self::reserve_hold`], and with `credit` (issue 19, a prepaid plan) its credit on
    /// the user's wallet in the same transaction (see `prepaid`).
    pub(super) async fn reserve_hold_with(
        &self,
        r: &Reservation,
        guards: &[Guard],
        budget: &[GuardedUpdate],
        credit: Option<&CreditHold>,
    ) -> StoreResult<CreditReserve> {
        let head_update = match credit.map(prepaid::hold_update) {
            None => None,
            Some(Some(u)) => Some(u),
            Some(None) => return Ok(CreditReserve::NoCredit),
        };
        let held_credit = credit.map(CreditHold::amount).unwrap_or_default();
        // Issue 19: the wallet that holds it (the user's, or an org's: `org_wallets`).
        let credit_org = credit.and_then(|c| match &c.wallet {
            crate::credits::Subscriber::Org(o) => Some(o.clone()),
            crate::credits::Subscriber::User(_) => None,
        });
        let head_pk = org_wallets::credit_wallet_pk(&r.tenant, &r.user, credit_org.as_ref());
        let mut bounded = Vec::with_capacity(guards.len());
        for g in guards {
            match guard_bound(g) {
                Some(bound) => bounded.push((g.clone(), bound)),
                None => {
                    return Ok(CreditReserve::Denied {
                        metric: g.metric.clone(),
                    })
                }
            }
        }
        let pk = layout::user_pk(&r.tenant, r.user.as_str());
        let attr = layout::reservation_attr(&r.id);
        let period_sk = layout::period_sk(r.period_start);
        let mut inc = Increments::default();
        inc.hold(r.period_start, &r.provider, &r.held)?;
        // Issue 18: a reservation too large to be kept inline spills at once (inline_bound).
        let large =
            super::inline_bound::spills(r, held_credit > Decimal::ZERO, credit_org.as_ref());
        let mut spill = large || self.crowded.is(&pk);
        // The user's `billed_to` once read: `None` assumes the period open.
        let mut billed: Option<Option<String>> = None;
        for _ in 0..MAX_ATTEMPTS {
            let (closed, rendered) = match &billed {
                None => (false, inc.render(&AllOpen)),
                Some(b) => {
                    let placement = BilledTo(b.as_deref());
                    (placement.closed(r.period_start), inc.render(&placement))
                }
            };
            let mut u = Update::new();
            rendered.add_state(&mut u);
            u.add(layout::OPEN_HOLDS, n(1));
            match &billed {
                None => u.condition(|x| open_condition(x, r.period_start)),
                Some(b) => u.condition(|x| billed_condition(x, b.as_deref())),
            };
            if !closed {
                guard_conditions(&mut u, &bounded, r.period_start, false);
            }
            if !spill {
                let mut map = items::reservation_map(r);
                if held_credit > Decimal::ZERO {
                    if let AttributeValue::M(m) = &mut map {
                        m.insert(prepaid::INLINE_CREDIT.to_owned(), n(held_credit));
                        if let Some(o) = &credit_org {
                            m.insert(org_wallets::INLINE_CREDIT_ORG.to_owned(), s(o.as_str()));
                        }
                    }
                }
                u.set(&attr, map)
                    .add(layout::INLINE_HOLDS, n(1))
                    .set(layout::HOLDS_PK, s(layout::holds_shard(&pk)))
                    .set(layout::HOLDS_SK, s(pk.clone()));
                u.condition(|x| format!("attribute_not_exists({})", x.name(&attr)));
                u.condition(|x| {
                    let (i, max) = (
                        x.name(layout::INLINE_HOLDS),
                        x.value(n(layout::MAX_INLINE_RESERVATIONS)),
                    );
                    format!("attribute_not_exists({i}) OR {i} < {max}")
                });
            }
            let mut period_update = None;
            if closed {
                let mut pu = rendered
                    .periods
                    .get(&r.period_start)
                    .and_then(|w| w.update())
                    .unwrap_or_default();
                guard_conditions(&mut pu, &bounded, r.period_start, true);
                period_update = Some(pu);
            }

            let (state, period) = if !spill
                && period_update.is_none()
                && budget.is_empty()
                && head_update.is_none()
            {
                match self.update(pk.clone(), layout::STATE_SK, &u, true).await? {
                    Ok(()) => return Ok(CreditReserve::Reserved),
                    Err(Some(old)) => (old, None),
                    // The emulator or an old API version returned no item: read it.
                    Err(None) => (self.get_state(&r.tenant, &r.user, &[]).await?, None),
                }
            } else {
                let res = self
                    .transact_until_decided("reserving", || {
                        let mut tx = vec![self.tx_update(pk.clone(), layout::STATE_SK, &u)?];
                        if let Some(pu) = &period_update {
                            tx.push(self.tx_update(pk.clone(), &period_sk, pu)?);
                        }
                        if let Some(hu) = &head_update {
                            tx.push(self.tx_update(head_pk.clone(), prepaid::HEAD_SK, hu)?);
                        }
                        for g in budget {
                            tx.push(self.tx_update(g.pk.clone(), COUNTER_SK, &g.update)?);
                        }
                        if spill {
                            let mut item = items::spilled_item(r)?;
                            if held_credit > Decimal::ZERO {
                                item.insert(prepaid::SPILLED_CREDIT.to_owned(), n(held_credit));
                                if let Some(o) = &credit_org {
                                    item.insert(
                                        org_wallets::SPILLED_CREDIT_ORG.to_owned(),
                                        s(o.as_str()),
                                    );
                                }
                            }
                            tx.push(self.tx_put(item, true)?);
                        }
                        Ok(tx)
                    })
                    .await?;
                let reasons = match res {
                    Ok(()) => {
                        if spill && !large {
                            self.crowded.mark(&pk);
                        }
                        return Ok(CreditReserve::Reserved);
                    }
                    Err(reasons) => reasons,
                };
                if spill && condition_failed(&reasons, reasons.len().saturating_sub(1)) {
                    // The reservation's item exists: an earlier attempt stored it.
                    return Ok(CreditReserve::Reserved);
                }
                let head_at = 1 + usize::from(period_update.is_some());
                if head_update.is_some() && condition_failed(&reasons, head_at) {
                    // The wallet no longer admits the hold as read: the check reads again.
                    return Ok(CreditReserve::NoCredit);
                }
                let first_budget = head_at + usize::from(head_update.is_some());
                if let Some(g) = budget
                    .iter()
                    .enumerate()
                    .find(|(i, _)| condition_failed(&reasons, first_budget + i))
                    .map(|(_, g)| g)
                {
                    // A budget counter's guard: racing reservations took its last units.
                    if let Some(metric) = &g.metric {
                        return Ok(CreditReserve::Denied {
                            metric: metric.clone(),
                        });
                    }
                }
                let state = self.get_state(&r.tenant, &r.user, &[]).await?;
                let period = if closed {
                    self.get_item(pk.clone(), &period_sk, &[]).await?
                } else {
                    None
                };
                (state, period)
            };

            // Why the write failed, from the items as they are now.
            if state.contains_key(&attr) {
                return Ok(CreditReserve::Reserved); // a retried request that succeeded
            }
            let now_billed = get_s(&state, layout::BILLED_TO).map(str::to_owned);
            let closed_now = BilledTo(now_billed.as_deref()).closed(r.period_start);
            if billed.as_ref() != Some(&now_billed) && (billed.is_some() || closed_now) {
                billed = Some(now_billed);
                continue;
            }
            for (g, _) in &bounded {
                let name = guard_attr(r.period_start, &g.metric, closed_now);
                let used = match (&period, closed_now) {
                    (Some(item), true) => decimal_attr(item, &name)?,
                    (None, true) => Decimal::ZERO,
                    (_, false) => decimal_attr(&state, &name)?,
                };
                if !guard_holds(g, used) {
                    return Ok(CreditReserve::Denied {
                        metric: g.metric.clone(),
                    });
                }
            }
            if !spill
                && decimal_attr(&state, layout::INLINE_HOLDS)?
                    >= Decimal::from(layout::MAX_INLINE_RESERVATIONS)
            {
                spill = true;
                self.crowded.mark(&pk);
            }
            // Otherwise the items changed between the failed write and the read: again.
        }
        Err(gave_up("reserving"))
    }

    pub(super) async fn find_reservation(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> StoreResult<Option<Reservation>> {
        let Some(user) = Reservation::user_of_id(id) else {
            return Ok(None);
        };
        let mut found = self
            .find_reservations(tenant, &user, &BTreeSet::from([id]), false)
            .await?;
        Ok(match found.open.remove(id) {
            Some(open) => Some(open.r),
            None => found.closed.remove(id),
        })
    }

    pub(super) async fn release(&self, tenant: &TenantId, id: &str) -> StoreResult<ReleaseOutcome> {
        let Some(user) = Reservation::user_of_id(id) else {
            return Ok(ReleaseOutcome::NotFound);
        };
        let mut found = self
            .find_reservations(tenant, &user, &BTreeSet::from([id]), false)
            .await?;
        if let Some(closed) = found.closed.remove(id) {
            return Ok(ReleaseOutcome::AlreadyClosed(closed.status));
        }
        let Some(open) = found.open.remove(id) else {
            return Ok(ReleaseOutcome::NotFound);
        };
        if self
            .close_reservation(&open, ReservationStatus::Released, Some(found.billed))
            .await?
        {
            return Ok(ReleaseOutcome::Released);
        }
        // Closed meanwhile: its tombstone was written in the same transaction.
        Ok(match self.reservation_item(tenant, &user, id).await? {
            Some(r) if r.status != ReservationStatus::Held => {
                ReleaseOutcome::AlreadyClosed(r.status)
            }
            _ => ReleaseOutcome::NotFound,
        })
    }

    /// Drops the state item `pk` from the sparse `holds` index now that it has no open
    /// reservation on it, unless one arrived meanwhile.
    async fn unlist_holds(&self, pk: &str) -> StoreResult<()> {
        let mut u = Update::new();
        u.remove(layout::HOLDS_PK).remove(layout::HOLDS_SK);
        u.condition(|x| {
            let (i, z) = (x.name(layout::INLINE_HOLDS), x.value(n(0)));
            format!("attribute_not_exists({i}) OR {i} <= {z}")
        });
        let _ = self
            .update(pk.to_owned(), layout::STATE_SK, &u, false)
            .await?;
        Ok(())
    }

    pub(super) async fn expire(&self, now: DateTime<Utc>, limit: usize) -> StoreResult<usize> {
        let mut expired = 0;
        let mut skips = Skips::default();
        for shard in 0..layout::HOLDS_SHARDS {
            let partition = format!("HOLDS#{shard}");
            let mut start: Option<Item> = None;
            loop {
                let page = self
                    .query()
                    .index_name(layout::HOLDS_INDEX)
                    .key_condition_expression("#h = :h")
                    .expression_attribute_names("#h", layout::HOLDS_PK)
                    .expression_attribute_values(":h", s(partition.clone()))
                    .set_exclusive_start_key(start.take())
                    .send()
                    .await
                    .map_err(|e| sdk_err("Query", e))?;
                for entry in page.items() {
                    if expired >= limit {
                        return Ok(expired);
                    }
                    let (Some(pk), Some(sk)) = (get_s(entry, layout::PK), get_s(entry, layout::SK))
                    else {
                        continue;
                    };
                    let Some(item) = self.get_item(pk.to_owned(), sk, &[]).await? else {
                        continue;
                    };
                    let due: Vec<(OpenReservation, Option<Option<String>>)> =
                        if sk == layout::STATE_SK {
                            let inline = items::inline_reservations(&item)?;
                            if inline.is_empty() {
                                let res = self.unlist_holds(pk).await;
                                skips.check(res, "unlisting a state item without holds")?;
                                continue;
                            }
                            let billed = Some(get_s(&item, layout::BILLED_TO).map(str::to_owned));
                            inline
                                .into_iter()
                                .filter(|(_, r)| r.expires_at <= now)
                                .map(|(name, r)| {
                                    let credit = item
                                        .get(&name)
                                        .map_or(Ok(Decimal::ZERO), prepaid::credit_of_map)?;
                                    let credit_org = item
                                        .get(&name)
                                        .map_or(Ok(None), org_wallets::credit_org_of_map)?;
                                    Ok((
                                        OpenReservation {
                                            r,
                                            place: Place::Inline(name),
                                            credit,
                                            credit_org,
                                        },
                                        billed.clone(),
                                    ))
                                })
                                .collect::<StoreResult<_>>()?
                        } else {
                            let r: Reservation = from_item(&item)?;
                            if r.status != ReservationStatus::Held || r.expires_at > now {
                                continue;
                            }
                            vec![(
                                OpenReservation {
                                    r,
                                    place: Place::Spilled,
                                    credit: prepaid::credit_of(&item)?,
                                    credit_org: org_wallets::credit_org_of(&item)?,
                                },
                                None,
                            )]
                        };
                    for (open, billed) in due {
                        if expired >= limit {
                            return Ok(expired);
                        }
                        let res = self
                            .close_reservation(&open, ReservationStatus::Expired, billed)
                            .await;
                        if skips.check(res, "expiring a reservation")? == Some(true) {
                            expired += 1;
                        }
                    }
                }
                match page.last_evaluated_key {
                    Some(k) if !k.is_empty() => start = Some(k),
                    _ => break,
                }
            }
        }
        Ok(expired)
    }
}

/// Most writes of one `expire_reservations` call that may fail (after their retries) and be
/// skipped; past it the store is taken to be unavailable and the call fails.
const MAX_SKIPPED: usize = 5;

/// The writes `expire_reservations` skipped: one hold whose write keeps losing to a
/// transaction on its item must not keep every other hold from expiring (the next pass
/// retries it), but a table that refuses every write is an error, not a long loop.
#[derive(Default)]
struct Skips(usize);

impl Skips {
    /// `Some(value)` of a write that succeeded; `None` (logged) for one that failed and is
    /// skipped; the error once more than [`MAX_SKIPPED`] failed.
    fn check<T>(&mut self, res: StoreResult<T>, what: &str) -> StoreResult<Option<T>> {
        match res {
            Ok(v) => Ok(Some(v)),
            Err(e @ StoreError::Unavailable(_)) if self.0 < MAX_SKIPPED => {
                self.0 += 1;
                tracing::warn!(error = %e, "{what} failed; skipped until the next pass");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}
