//! Recording events: the events of one user go in chunks of at most one transaction
//! each (docs/dynamodb.md, "Access patterns and their cost").
//!
//! A chunk is tried in four steps until every event has an outcome:
//! 1. **read** the reservations the chunk settles (and, after the state update's
//!    condition failed, the user's `billed_to`): [`DynamoStore::open_and_billed`];
//! 2. **plan** what the chunk writes: [`ChunkPlan::of`];
//! 3. **build** the transaction from the plan: [`DynamoStore::chunk_transaction`];
//! 4. **read the outcome**: committed, or cancelled with one reason per item
//!    ([`read_cancellation`]); an event whose id is already stored gets its outcome
//!    (duplicate or conflict, [`DynamoStore::settle_existing`]) and leaves the chunk,
//!    and the rest is tried again.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use aws_sdk_dynamodb::types::{CancellationReason, TransactWriteItem};
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;

use super::codec::{get_s, n, s, Item};
use super::counters::Increments;
use super::expressions::Update;
use super::items;
use super::layout;
use super::requests::{backoff, gave_up, reason_code, TxError, MAX_ATTEMPTS, MAX_TX_ITEMS};
use super::DynamoStore;
use crate::domain::{Reservation, ReservationStatus, UsageEvent, UserId};
use crate::store::{RecordOutcome, StoreError, StoreResult, UsageStore};

/// What an item of a chunk's transaction is, so that its cancellation reason can be read.
enum TxItem {
    Event(usize),
    State,
    Other,
}

/// What recording a chunk knows of the user's `billed_to`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Billed {
    /// Not read (the common path): the state update requires that no event of the chunk
    /// is late (`billed_to` absent or not after the earliest period start).
    Assumed,
    /// Read after that condition failed: the state update requires exactly this value,
    /// and late events add to their period's adjustment.
    Known(Option<String>),
}

/// What one attempt at a chunk writes, before it is a transaction.
struct ChunkPlan {
    /// The event items, in the order of the chunk's events.
    events: Vec<(usize, Item)>,
    /// Counter increments of the user state item.
    state: Increments,
    /// Increments of each daily rollup item.
    days: BTreeMap<NaiveDate, Increments>,
    /// Open reservations the chunk's events settle.
    settled: Vec<Reservation>,
    /// Whether an event adds to an invoiced period's adjustment.
    late: bool,
    /// The earliest period start of the chunk's events.
    earliest: Option<DateTime<Utc>>,
}

impl ChunkPlan {
    /// The writes of events `todo`, settling those of the `open` reservations they name.
    fn of(
        events: &[UsageEvent],
        todo: &[usize],
        mut open: HashMap<String, Reservation>,
        billed: &Billed,
    ) -> StoreResult<Self> {
        let mut plan = Self {
            events: Vec::new(),
            state: Increments::default(),
            days: BTreeMap::new(),
            settled: Vec::new(),
            late: false,
            earliest: todo.iter().map(|&i| events[i].period_start).min(),
        };
        for &i in todo {
            let e = &events[i];
            plan.events.push((i, items::event_item(e)?));
            plan.state.record(e)?;
            if let Billed::Known(Some(b)) = billed {
                if layout::billed_to(e.period_start) < *b {
                    plan.state
                        .adjust(e.period_start, e.cost_usd.unwrap_or_default())?;
                    plan.late = true;
                }
            }
            let day = plan.days.entry(e.timestamp.date_naive()).or_default();
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
            if let Some(r) = e.reservation_id.as_ref().and_then(|id| open.remove(id)) {
                plan.state.unhold(r.period_start, &r.provider, &r.held)?;
                plan.settled.push(r);
            }
        }
        Ok(plan)
    }

    /// The update of the user state item: the counters, the settled reservations (which
    /// must still be open), the user's listing for the aggregation, and the condition on
    /// `billed_to` that `billed` stands for.
    fn state_update(&self, state_pk: &str, billed: &Billed) -> Update {
        let mut state = Update::new();
        for (attr, by) in self.state.nonzero() {
            state.add(attr, n(by));
        }
        for r in &self.settled {
            let attr = layout::reservation_attr(&r.id);
            state.remove(&attr);
            state.condition(|x| format!("attribute_exists({})", x.name(&attr)));
        }
        if !self.settled.is_empty() {
            state.add(
                layout::OPEN_HOLDS,
                n(-i64::try_from(self.settled.len()).unwrap_or(i64::MAX)),
            );
        }
        if self.late {
            state.add(layout::ADJ_VERSION, n(1));
        }
        // Listed for the aggregation from its first usage on (no GSI write once set).
        state
            .set(layout::SUBS_PK, s(layout::SUBS_PARTITION))
            .set(layout::SUBS_SK, s(state_pk));
        state.condition(|x| {
            let b = x.name(layout::BILLED_TO);
            match (billed, self.earliest) {
                (Billed::Assumed, Some(p)) => {
                    let v = x.value(s(layout::billed_to(p)));
                    format!("attribute_not_exists({b}) OR {b} <= {v}")
                }
                (Billed::Known(Some(known)), _) => {
                    format!("{b} = {}", x.value(s(known.clone())))
                }
                (Billed::Known(None), _) | (Billed::Assumed, None) => {
                    format!("attribute_not_exists({b})")
                }
            }
        });
        state
    }
}

/// What a cancelled chunk transaction says, item by item.
struct Cancellation {
    /// Events whose id was already stored, with the stored item when it was returned.
    existing: Vec<(usize, Option<Item>)>,
    /// The state update's condition failed: `billed_to` is after an event's period (a
    /// late event), or moved, or a reservation closed meanwhile.
    state_changed: bool,
}

/// Reads the reasons of a cancelled chunk transaction (one per item, in `kinds` order).
/// Conflicts and throttling say nothing (the attempt is retried); an unknown reason is
/// `Unavailable`.
fn read_cancellation(
    kinds: &[TxItem],
    reasons: &[CancellationReason],
) -> StoreResult<Cancellation> {
    let mut out = Cancellation {
        existing: Vec::new(),
        state_changed: false,
    };
    for (kind, reason) in kinds.iter().zip(reasons) {
        match (reason_code(reason), kind) {
            ("None", _) => {}
            ("ConditionalCheckFailed", TxItem::Event(i)) => {
                out.existing.push((*i, reason.item().cloned()))
            }
            ("ConditionalCheckFailed", TxItem::State) => out.state_changed = true,
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

/// The reservations of `user` that events `todo` may settle.
fn settling<'a>(events: &'a [UsageEvent], todo: &[usize], user: &UserId) -> BTreeSet<&'a str> {
    todo.iter()
        .filter_map(|&i| events[i].reservation_id.as_deref())
        .filter(|id| Reservation::user_of_id(id).as_ref() == Some(user))
        .collect()
}

/// The end (exclusive) of the chunk of `firsts` starting at `start`: as many events as
/// fit one transaction with their state update, daily rollups and tombstones (at least one).
fn chunk_end(events: &[UsageEvent], firsts: &[usize], start: usize) -> usize {
    let (mut end, mut days, mut settles) = (start, BTreeSet::new(), 0usize);
    while end < firsts.len() {
        let e = &events[firsts[end]];
        let new_day = usize::from(!days.contains(&e.timestamp.date_naive()));
        let settle = usize::from(e.reservation_id.is_some());
        let items = (end - start + 1) + 1 + days.len() + new_day + settles + settle;
        if items > MAX_TX_ITEMS && end > start {
            break;
        }
        days.insert(e.timestamp.date_naive());
        settles += settle;
        end += 1;
    }
    end
}

impl DynamoStore {
    /// Records the events of one (tenant, user), `idxs` in input order.
    pub(super) async fn record_user_events(
        &self,
        events: &[UsageEvent],
        idxs: &[usize],
        outcomes: &mut [Option<RecordOutcome>],
    ) -> StoreResult<()> {
        // One transaction may hold an item only once: repeats of an id in the batch are
        // resolved against the stored event afterwards.
        let mut seen = BTreeSet::new();
        let (mut firsts, mut repeats) = (Vec::new(), Vec::new());
        for &i in idxs {
            if seen.insert(events[i].event_id.as_str()) {
                firsts.push(i);
            } else {
                repeats.push(i);
            }
        }
        let mut start = 0;
        while start < firsts.len() {
            let end = chunk_end(events, &firsts, start);
            self.record_chunk(events, &firsts[start..end], outcomes)
                .await?;
            start = end;
        }
        for i in repeats {
            let e = &events[i];
            let stored = self.get_event(&e.tenant, &e.event_id).await?;
            outcomes[i] = Some(match stored {
                Some(s) if s.fingerprint == e.fingerprint => RecordOutcome::Duplicate,
                _ => RecordOutcome::Conflict,
            });
        }
        Ok(())
    }

    /// Records `idxs` (first occurrences of distinct ids of one user, ≤ one transaction).
    async fn record_chunk(
        &self,
        events: &[UsageEvent],
        idxs: &[usize],
        outcomes: &mut [Option<RecordOutcome>],
    ) -> StoreResult<()> {
        let Some(&first) = idxs.first() else {
            return Ok(());
        };
        let (tenant, user) = (&events[first].tenant, &events[first].user);
        let state_pk = layout::user_pk(tenant, user.as_str());
        let mut todo = idxs.to_vec();
        let mut billed = Billed::Assumed;
        // The state update's condition failed: re-read `billed_to` with the reservations.
        let mut reread = false;
        for attempt in 0..MAX_ATTEMPTS {
            if todo.is_empty() {
                return Ok(());
            }
            let ids = settling(events, &todo, user);
            let (open, billed_now) = self.open_and_billed(tenant, user, &ids, reread).await?;
            if reread {
                billed = Billed::Known(billed_now);
            }
            let plan = ChunkPlan::of(events, &todo, open, &billed)?;
            let (tx, kinds) = self.chunk_transaction(&state_pk, plan, &billed)?;
            match self.transact(tx).await {
                Ok(()) => {
                    for &i in &todo {
                        outcomes[i] = Some(RecordOutcome::Recorded);
                    }
                    return Ok(());
                }
                Err(TxError::Store(e)) => return Err(e),
                Err(TxError::Canceled(reasons)) => {
                    let cancelled = read_cancellation(&kinds, &reasons)?;
                    // Read both again and record with what they are now.
                    reread = cancelled.state_changed;
                    let progressed = !cancelled.existing.is_empty();
                    self.settle_existing(events, cancelled.existing, outcomes, &mut todo)
                        .await?;
                    if !progressed {
                        backoff(attempt).await;
                    }
                }
            }
        }
        Err(gave_up("recording events"))
    }

    /// The transaction of a chunk, with what each of its items is: the event puts (only
    /// new ids), the state update, one update per daily rollup, one tombstone per settled
    /// reservation.
    fn chunk_transaction(
        &self,
        state_pk: &str,
        plan: ChunkPlan,
        billed: &Billed,
    ) -> StoreResult<(Vec<TransactWriteItem>, Vec<TxItem>)> {
        let mut tx = Vec::new();
        let mut kinds = Vec::new();
        let state = plan.state_update(state_pk, billed);
        for (i, item) in plan.events {
            tx.push(self.tx_put(item, true)?);
            kinds.push(TxItem::Event(i));
        }
        tx.push(self.tx_update(state_pk.to_owned(), layout::STATE_SK, &state)?);
        kinds.push(TxItem::State);
        for (day, add) in &plan.days {
            let mut u = Update::new();
            for (attr, by) in add.nonzero() {
                u.add(attr, n(by));
            }
            tx.push(self.tx_update(state_pk.to_owned(), &layout::day_sk(*day), &u)?);
            kinds.push(TxItem::Other);
        }
        for r in &plan.settled {
            tx.push(self.tx_put(items::tombstone_item(r, ReservationStatus::Settled)?, false)?);
            kinds.push(TxItem::Other);
        }
        Ok((tx, kinds))
    }

    /// Gives each event whose id was already stored its outcome (`Duplicate` when the
    /// stored event has the same fingerprint, else `Conflict`) and drops it from `todo`.
    async fn settle_existing(
        &self,
        events: &[UsageEvent],
        existing: Vec<(usize, Option<Item>)>,
        outcomes: &mut [Option<RecordOutcome>],
        todo: &mut Vec<usize>,
    ) -> StoreResult<()> {
        for (i, old) in existing {
            let stored = match old.as_ref().and_then(|o| get_s(o, "fingerprint")) {
                Some(fp) => Some(fp.to_owned()),
                None => self
                    .get_event(&events[i].tenant, &events[i].event_id)
                    .await?
                    .map(|e| e.fingerprint),
            };
            outcomes[i] = Some(
                if stored.as_deref() == Some(events[i].fingerprint.as_str()) {
                    RecordOutcome::Duplicate
                } else {
                    RecordOutcome::Conflict
                },
            );
            todo.retain(|&j| j != i);
        }
        Ok(())
    }
}
