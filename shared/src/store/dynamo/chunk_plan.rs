//! Planning one chunk of a user's events (`recording`): how many events fit one
//! transaction ([`chunk_end`]), what one attempt at the chunk writes before it is a
//! transaction ([`ChunkPlan`]), and what a cancelled transaction says, item by item
//! ([`read_cancellation`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use aws_sdk_dynamodb::types::CancellationReason;
use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::budget_counters::CounterAdds;
use super::codec::{n, s, Item};
use super::counters::{billed_condition, open_condition, AllOpen, BilledTo, Increments, Rendered};
use super::expressions::Update;
use super::items;
use super::layout;
use super::requests::{reason_code, MAX_TX_ITEMS};
use super::reservations::{OpenReservation, Place};
use crate::budgets::CounterWrite;
use crate::domain::UsageEvent;
use crate::store::{StoreError, StoreResult};

/// What an item of a chunk's transaction is, so that its cancellation reason can be read.
pub(super) enum TxItem {
    Event(usize),
    /// A drawn grant (issue 19): its condition failing means another draw or a void
    /// changed it since the wallet was read; read it again.
    Wallet,
    /// The state update, or the closing of a spilled reservation the chunk settles: its
    /// condition failing means `billed_to` moved or a settled reservation closed meanwhile.
    State,
    /// Issue 18: a billed org counter item (`org_billing`): its condition failing means
    /// the org's `billed_to` moved past a period the chunk writes; read it again.
    OrgBilled(String),
    Other,
}

/// What recording a chunk knows of the user's `billed_to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Billed {
    /// Not read (the common path): the state update requires that no period it writes is
    /// closed (`billed_to` absent or not after the earliest of them).
    Assumed,
    /// Read after that condition failed: the state update requires exactly this value,
    /// and late events add to their period's adjustment.
    Known(Option<String>),
}

/// What one attempt at a chunk writes, before it is a transaction.
pub(super) struct ChunkPlan {
    /// The event items, in the order of the chunk's events.
    pub(super) events: Vec<(usize, Item)>,
    /// Counter increments, placed on the state item and period items.
    pub(super) counters: Rendered,
    /// Increments of each daily rollup item.
    pub(super) days: BTreeMap<NaiveDate, DayAdds>,
    /// Open reservations the chunk's events settle.
    pub(super) settled: Vec<OpenReservation>,
    /// Whether an event adds to an invoiced period's adjustment.
    late: bool,
    /// Increments of the budget counters the events belong to, by counter key.
    pub(super) budget: BTreeMap<String, CounterAdds>,
    /// Wallet credit the settled reservations held (issue 19), by wallet head key:
    /// released on the head.
    pub(super) credit_released: BTreeMap<String, Decimal>,
    /// Issue 18: the events' writes to billed org counters (late org events, `org_billing`).
    pub(super) orgs: super::org_billing::OrgEventWrites,
    /// Issue 18: the org member directory notes of the events (store::OrgMembersStore).
    pub(super) members: super::org_members::Notes,
}

/// Increments of a daily rollup item: `ADD`s of plain attribute names.
#[derive(Default)]
pub(super) struct DayAdds(pub(super) BTreeMap<String, Decimal>);

impl DayAdds {
    fn add(&mut self, attr: String, by: Decimal) -> StoreResult<()> {
        let slot = self.0.entry(attr).or_default();
        *slot = slot
            .checked_add(by)
            .ok_or_else(|| StoreError::Overflow("counter increment".into()))?;
        Ok(())
    }
}

impl ChunkPlan {
    /// The writes of events `todo`, settling those of the `open` reservations they name.
    pub(super) fn of(
        events: &[UsageEvent],
        writes: &[Vec<CounterWrite>],
        todo: &[usize],
        mut open: HashMap<String, OpenReservation>,
        billed: &Billed,
    ) -> StoreResult<Self> {
        let known = match billed {
            Billed::Known(b) => Some(BilledTo(b.as_deref())),
            Billed::Assumed => None,
        };
        let mut state = Increments::default();
        let mut days: BTreeMap<NaiveDate, DayAdds> = BTreeMap::new();
        let mut events_out = Vec::new();
        let mut settled = Vec::new();
        let mut late = false;
        let mut budget: BTreeMap<String, CounterAdds> = BTreeMap::new();
        let mut credit_released: BTreeMap<String, Decimal> = BTreeMap::new();
        let mut orgs = super::org_billing::OrgEventWrites::default();
        let mut members = super::org_members::Notes::default();
        for &i in todo {
            let e = &events[i];
            events_out.push((i, items::event_item(e)?));
            if let Some(note) = writes
                .get(i)
                .and_then(|w| super::org_members::member_note(e, w))
            {
                members.add(&e.tenant, note);
            }
            let event_writes = writes.get(i).map(Vec::as_slice).unwrap_or_default();
            for w in event_writes {
                budget.entry(w.counter.key()).or_default().add(w)?;
                orgs.note_of(i, &e.tenant, w, event_writes)?;
            }
            state.record(e)?;
            if let Some(b) = &known {
                // A late event is an adjustment of its payer only (docs/billing.md).
                if e.user_pays() && super::counters::Placement::closed(b, e.period_start) {
                    state.adjust(e.period_start, e.cost_usd.unwrap_or_default())?;
                    late = true;
                }
            }
            let day = days.entry(e.timestamp.date_naive()).or_default();
            let t = e.tally();
            day.add(
                layout::day_attr("calls", &e.provider),
                Decimal::from(t.calls),
            )?;
            day.add(
                layout::day_attr("tokens", &e.provider),
                Decimal::from(t.tokens),
            )?;
            day.add(layout::day_attr("cost", &e.provider), t.cost_usd)?;
            if let Some(o) = e.reservation_id.as_ref().and_then(|id| open.remove(id)) {
                state.unhold(o.r.period_start, &o.r.provider, &o.r.held)?;
                for h in &o.r.budget_holds {
                    budget
                        .entry(h.counter.clone())
                        .or_default()
                        .unhold(&o.r.provider, h)?;
                }
                if o.credit > Decimal::ZERO {
                    let pk = super::org_wallets::credit_wallet_pk(
                        &e.tenant,
                        &e.user,
                        o.credit_org.as_ref(),
                    );
                    let slot = credit_released.entry(pk).or_default();
                    *slot = slot
                        .checked_add(o.credit)
                        .ok_or_else(|| StoreError::Overflow("held credit".into()))?;
                }
                settled.push(o);
            }
        }
        let counters = match &known {
            Some(b) => state.render(b),
            None => state.render(&AllOpen),
        };
        Ok(Self {
            events: events_out,
            counters,
            days,
            settled,
            late,
            budget,
            credit_released,
            orgs,
            members,
        })
    }

    /// The update of the user state item: the counters, the settled reservations (which
    /// must still be open), the user's listing for the aggregation, and the condition on
    /// `billed_to` that `billed` stands for.
    pub(super) fn state_update(&self, state_pk: &str, billed: &Billed) -> Update {
        let mut state = Update::new();
        self.counters.add_state(&mut state);
        let mut inline = 0i64;
        for o in &self.settled {
            if let Place::Inline(attr) = &o.place {
                state.remove(attr);
                state.condition(|x| format!("attribute_exists({})", x.name(attr)));
                inline += 1;
            }
        }
        if !self.settled.is_empty() {
            state.add(
                layout::OPEN_HOLDS,
                n(-i64::try_from(self.settled.len()).unwrap_or(i64::MAX)),
            );
        }
        if inline > 0 {
            state.add(layout::INLINE_HOLDS, n(-inline));
        }
        if self.late {
            state.add(layout::ADJ_VERSION, n(1));
        }
        // Listed for the aggregation from its first usage on (no GSI write once set).
        state
            .set(layout::SUBS_PK, s(layout::SUBS_PARTITION))
            .set(layout::SUBS_SK, s(state_pk));
        match billed {
            Billed::Assumed => {
                if let Some(earliest) = self.counters.open.first() {
                    state.condition(|x| open_condition(x, *earliest));
                }
            }
            Billed::Known(known) => {
                state.condition(|x| billed_condition(x, known.as_deref()));
            }
        }
        state
    }
}

/// What a cancelled chunk transaction says, item by item.
pub(super) struct Cancellation {
    /// Events whose id was already stored, with the stored item when it was returned.
    pub(super) existing: Vec<(usize, Option<Item>)>,
    /// The state update's condition failed: `billed_to` is after an event's period (a
    /// late event), or moved, or a reservation closed meanwhile.
    pub(super) state_changed: bool,
    /// A drawn grant's condition failed: another draw or a void changed it.
    pub(super) wallet_changed: bool,
    /// Issue 18: billed org counter items whose `billed_to` moved (`org_billing`).
    pub(super) orgs_changed: Vec<String>,
}

/// Reads the reasons of a cancelled chunk transaction (one per item, in `kinds` order).
/// Conflicts and throttling say nothing (the attempt is retried); an unknown reason is
/// `Unavailable`.
pub(super) fn read_cancellation(
    kinds: &[TxItem],
    reasons: &[CancellationReason],
) -> StoreResult<Cancellation> {
    let mut out = Cancellation {
        existing: Vec::new(),
        state_changed: false,
        wallet_changed: false,
        orgs_changed: Vec::new(),
    };
    for (kind, reason) in kinds.iter().zip(reasons) {
        match (reason_code(reason), kind) {
            ("None", _) => {}
            ("ConditionalCheckFailed", TxItem::Event(i)) => {
                out.existing.push((*i, reason.item().cloned()))
            }
            ("ConditionalCheckFailed", TxItem::State) => out.state_changed = true,
            ("ConditionalCheckFailed", TxItem::Wallet) => out.wallet_changed = true,
            ("ConditionalCheckFailed", TxItem::OrgBilled(pk)) => out.orgs_changed.push(pk.clone()),
            ("ConditionalCheckFailed", TxItem::Other) => {}
            ("TransactionConflict" | "ThrottlingError" | "ProvisionedThroughputExceeded", _) => {}
            (code, _) => {
                return Err(StoreError::Unavailable(format!(
                    "TransactWriteItems cancelled: {code}: {}",
                    reason.message().unwrap_or_default()
                )))
            }
        }
    }
    Ok(out)
}

/// The end (exclusive) of the chunk of `firsts` starting at `start`: as many events as
/// fit one transaction with their state update, daily rollups, period items and
/// settlements (a tombstone, and perhaps the item of a closed reservation period), and
/// the wallet items the first `k + 1` of them need (`wallet_items[k]`, issue 19: drawn
/// grants, heads, org ledger items), at least one.
pub(super) fn chunk_end(
    events: &[UsageEvent],
    writes: &[Vec<CounterWrite>],
    firsts: &[usize],
    start: usize,
    wallet_items: &[usize],
) -> usize {
    let (mut end, mut days, mut periods, mut settles) =
        (start, BTreeSet::new(), BTreeSet::new(), 0usize);
    let mut counters: BTreeSet<String> = BTreeSet::new();
    while end < firsts.len() {
        let e = &events[firsts[end]];
        let own: BTreeSet<String> = writes
            .get(firsts[end])
            .into_iter()
            .flatten()
            .map(|w| w.counter.key())
            // Issue 18: the event's org member directory item (one per user and period).
            .chain(
                writes
                    .get(firsts[end])
                    .and_then(|w| super::org_members::member_note(e, w))
                    .map(|note| format!("{:?}", note.item(&e.tenant))),
            )
            .filter(|k| !counters.contains(k))
            .collect();
        let new_day = usize::from(!days.contains(&e.timestamp.date_naive()));
        let new_period = usize::from(!periods.contains(&e.period_start));
        // A settlement writes a tombstone and perhaps a closed period's item, and returns
        // the reservation's budget holds: counted as the event's own budget counters (the
        // same ones unless a window ended between the check and the event).
        let own_writes = writes.get(firsts[end]).map_or(0, Vec::len);
        let settle = usize::from(e.reservation_id.is_some()) * (2 + own_writes);
        let items = (end - start + 1)
            + 1
            + days.len()
            + new_day
            + periods.len()
            + new_period
            + settles
            + settle
            + counters.len()
            + own.len()
            + wallet_items.get(end - start).copied().unwrap_or(0);
        if items > MAX_TX_ITEMS && end > start {
            break;
        }
        counters.extend(own);
        days.insert(e.timestamp.date_naive());
        periods.insert(e.period_start);
        settles += settle;
        end += 1;
    }
    end
}
