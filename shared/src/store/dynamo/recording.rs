//! Recording events: the events of one user go in chunks of at most one transaction
//! each (docs/dynamodb.md, "Access patterns and their cost").
//!
//! The reservations a user's events settle and the wallets they draw from (issue 19) are
//! read once per batch, before the first chunk (at most 2 reads when the events pay from
//! one wallet); a chunk's draws continue from what the chunks before it drew, and the
//! draws of several events on one grant are one conditional update of their sum, so that
//! a prepaid batch is one transaction per at most 100 items like any other
//! (docs/dynamodb.md, "Wallets").
//!
//! A chunk is tried in four steps until every event has an outcome:
//! 1. **read** the reservations the chunk settles (from the batch's read; again, with the
//!    user's `billed_to`, after the state update's condition failed):
//!    [`DynamoStore::find_reservations`], and the wallets again after a grant's condition
//!    failed;
//! 2. **plan** what the chunk writes: [`ChunkPlan::of`];
//! 3. **build** the transaction from the plan: [`DynamoStore::chunk_transaction`];
//! 4. **read the outcome**: committed, or cancelled with one reason per item
//!    ([`read_cancellation`]); an event whose id is already stored gets its outcome
//!    (duplicate or conflict, [`DynamoStore::settle_existing`]) and leaves the chunk,
//!    and the rest is tried again.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::credits::{Grant, Subscriber};

use aws_sdk_dynamodb::types::{CancellationReason, TransactWriteItem};
use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::budget_counters::CounterAdds;
use super::codec::{get_s, n, s, Item};
use super::counters::{billed_condition, open_condition, AllOpen, BilledTo, Increments, Rendered};
use super::expressions::Update;
use super::items;
use super::layout;
use super::prepaid::ChunkDraws;
use super::requests::{backoff, gave_up, reason_code, TxError, MAX_ATTEMPTS, MAX_TX_ITEMS};
use super::reservations::{OpenReservation, Place};
use super::DynamoStore;
use crate::budgets::CounterWrite;
use crate::domain::{Reservation, ReservationStatus, TenantId, UsageEvent, UserId};
use crate::store::{RecordOutcome, StoreError, StoreResult, UsageStore};

/// What an item of a chunk's transaction is, so that its cancellation reason can be read.
enum TxItem {
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
enum Billed {
    /// Not read (the common path): the state update requires that no period it writes is
    /// closed (`billed_to` absent or not after the earliest of them).
    Assumed,
    /// Read after that condition failed: the state update requires exactly this value,
    /// and late events add to their period's adjustment.
    Known(Option<String>),
}

/// What one attempt at a chunk writes, before it is a transaction.
struct ChunkPlan {
    /// The event items, in the order of the chunk's events.
    events: Vec<(usize, Item)>,
    /// Counter increments, placed on the state item and period items.
    counters: Rendered,
    /// Increments of each daily rollup item.
    days: BTreeMap<NaiveDate, DayAdds>,
    /// Open reservations the chunk's events settle.
    settled: Vec<OpenReservation>,
    /// Whether an event adds to an invoiced period's adjustment.
    late: bool,
    /// Increments of the budget counters the events belong to, by counter key.
    budget: BTreeMap<String, CounterAdds>,
    /// Wallet credit the settled reservations held (issue 19), by wallet head key:
    /// released on the head.
    credit_released: BTreeMap<String, Decimal>,
    /// Issue 18: the events' writes to billed org counters (late org events, `org_billing`).
    orgs: super::org_billing::OrgEventWrites,
    /// Issue 18: the org member directory notes of the events (store::OrgMembersStore).
    members: super::org_members::Notes,
}

/// Increments of a daily rollup item: `ADD`s of plain attribute names.
#[derive(Default)]
struct DayAdds(BTreeMap<String, Decimal>);

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
    fn of(
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
            for w in writes.get(i).into_iter().flatten() {
                budget.entry(w.counter.key()).or_default().add(w)?;
                orgs.note_of(i, &e.tenant, w)?;
            }
            state.record(e)?;
            if let Some(b) = &known {
                if super::counters::Placement::closed(b, e.period_start) {
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
    fn state_update(&self, state_pk: &str, billed: &Billed) -> Update {
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
struct Cancellation {
    /// Events whose id was already stored, with the stored item when it was returned.
    existing: Vec<(usize, Option<Item>)>,
    /// The state update's condition failed: `billed_to` is after an event's period (a
    /// late event), or moved, or a reservation closed meanwhile.
    state_changed: bool,
    /// A drawn grant's condition failed: another draw or a void changed it.
    wallet_changed: bool,
    /// Issue 18: billed org counter items whose `billed_to` moved (`org_billing`).
    orgs_changed: Vec<String>,
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

/// The reservations of `user` that events `todo` may settle.
fn settling<'a>(events: &'a [UsageEvent], todo: &[usize], user: &UserId) -> BTreeSet<&'a str> {
    todo.iter()
        .filter_map(|&i| events[i].reservation_id.as_deref())
        .filter(|id| Reservation::user_of_id(id).as_ref() == Some(user))
        .collect()
}

/// The end (exclusive) of the chunk of `firsts` starting at `start`: as many events as
/// fit one transaction with their state update, daily rollups, period items and
/// settlements (a tombstone, and perhaps the item of a closed reservation period), and
/// the wallet items the first `k + 1` of them need (`wallet_items[k]`, issue 19: drawn
/// grants, heads, org ledger items), at least one.
fn chunk_end(
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

/// The grants of the wallets one user's events pay from (issue 19), read once per batch:
/// each chunk draws from this working copy, and a committed chunk's draws are applied to
/// it, so that the next chunk continues from them without reading again.
#[derive(Default)]
struct Wallets(BTreeMap<Subscriber, Vec<Grant>>);

impl Wallets {
    /// Reads (again) the wallets among `payers` of `idxs`: one `Query` each (none when no
    /// event pays); the others keep their working copy.
    async fn read(
        &mut self,
        store: &DynamoStore,
        tenant: &TenantId,
        payers: &[Option<Subscriber>],
        idxs: &[usize],
    ) -> StoreResult<()> {
        let wanted: BTreeSet<&Subscriber> = idxs
            .iter()
            .filter_map(|&i| payers.get(i)?.as_ref())
            .collect();
        for w in wanted {
            let grants = crate::store::WalletStore::get_wallet(store, tenant, w)
                .await?
                .grants;
            self.0.insert(w.clone(), grants);
        }
        Ok(())
    }

    /// The draws of events `todo` (in order), per wallet, from the working copy.
    fn draws(
        &self,
        events: &[UsageEvent],
        payers: &[Option<Subscriber>],
        todo: &[usize],
    ) -> StoreResult<BTreeMap<Subscriber, ChunkDraws>> {
        let mut by_wallet: BTreeMap<&Subscriber, Vec<usize>> = BTreeMap::new();
        for &i in todo {
            if let Some(w) = payers.get(i).and_then(Option::as_ref) {
                by_wallet.entry(w).or_default().push(i);
            }
        }
        let mut out = BTreeMap::new();
        for (wallet, mine) in by_wallet {
            let grants = self
                .0
                .get(wallet)
                .ok_or_else(|| StoreError::Corrupt(format!("wallet {wallet} was not read")))?;
            out.insert(wallet.clone(), ChunkDraws::of(events, &mine, grants)?);
        }
        Ok(out)
    }

    /// Applies committed draws to the working copy.
    fn apply(&mut self, draws: &BTreeMap<Subscriber, ChunkDraws>) -> StoreResult<()> {
        for (wallet, d) in draws {
            if let Some(grants) = self.0.get_mut(wallet) {
                for e in d.events.values() {
                    e.apply(grants)
                        .map_err(|e| StoreError::Corrupt(format!("wallet: {e}")))?;
                }
            }
        }
        Ok(())
    }

    /// Per prefix of `idxs` (`out[k]`: its first `k + 1` events), the wallet items their
    /// transaction holds: each drawn grant once, one head per wallet drawn from, one
    /// ledger item per event an org pays for, and one head per settled reservation (its
    /// released credit; counted even when it shares a head).
    fn items(
        &self,
        events: &[UsageEvent],
        payers: &[Option<Subscriber>],
        idxs: &[usize],
    ) -> StoreResult<Vec<usize>> {
        let mut work = self.0.clone();
        let mut touched: BTreeSet<(&Subscriber, String)> = BTreeSet::new();
        let mut heads: BTreeSet<&Subscriber> = BTreeSet::new();
        let (mut ledger, mut settles) = (0usize, 0usize);
        let mut out = Vec::with_capacity(idxs.len());
        for &i in idxs.iter().take(MAX_TX_ITEMS) {
            let e = &events[i];
            settles += usize::from(e.reservation_id.is_some());
            if let (Some(wallet), Some(grants)) = (
                payers.get(i).and_then(Option::as_ref),
                payers
                    .get(i)
                    .and_then(Option::as_ref)
                    .and_then(|w| work.get_mut(w)),
            ) {
                if e.cost_usd.unwrap_or_default() > Decimal::ZERO {
                    let d = ChunkDraws::of(events, &[i], grants)?;
                    for sk in d.grants.keys() {
                        touched.insert((wallet, sk.clone()));
                    }
                    for one in d.events.values() {
                        one.apply(grants)
                            .map_err(|e| StoreError::Corrupt(format!("wallet: {e}")))?;
                    }
                    heads.insert(wallet);
                    ledger += usize::from(matches!(wallet, Subscriber::Org(_)));
                }
            }
            out.push(touched.len() + heads.len() + ledger + settles);
        }
        Ok(out)
    }
}

/// What recording one chunk came to.
enum ChunkRun {
    /// Every event of the chunk has its outcome.
    Done,
    /// With the wallets read again, the chunk's transaction would pass 100 items: record
    /// a smaller chunk.
    TooBig,
}

impl DynamoStore {
    /// Records `events` and, atomically with each event recorded, adds `writes[i]` (none
    /// when `writes` is empty) to its budget counters: the events of each (tenant, user)
    /// in chunks of one transaction each.
    pub(super) async fn record_with_counters(
        &self,
        events: &[UsageEvent],
        writes: &[Vec<CounterWrite>],
    ) -> StoreResult<Vec<RecordOutcome>> {
        self.record_with(events, writes, &[]).await
    }

    /// [`Self::record_with_counters`], and (issue 19, prepaid plans) each event's cost drawn
    /// from the wallet `payers[i]` names (none: no draw; `payers` empty: no event draws) in
    /// the event's transaction.
    pub(super) async fn record_with(
        &self,
        events: &[UsageEvent],
        writes: &[Vec<CounterWrite>],
        payers: &[Option<Subscriber>],
    ) -> StoreResult<Vec<RecordOutcome>> {
        let mut outcomes = vec![None; events.len()];
        let mut groups: Vec<((&TenantId, &UserId), Vec<usize>)> = Vec::new();
        for (i, e) in events.iter().enumerate() {
            match groups.iter_mut().find(|(k, _)| *k == (&e.tenant, &e.user)) {
                Some((_, v)) => v.push(i),
                None => groups.push(((&e.tenant, &e.user), vec![i])),
            }
        }
        for (_, idxs) in &groups {
            self.record_user_events(events, writes, payers, idxs, &mut outcomes)
                .await?;
        }
        outcomes
            .into_iter()
            .map(|o| {
                o.ok_or_else(|| {
                    StoreError::Unavailable("an event was left without an outcome".into())
                })
            })
            .collect()
    }

    /// Records the events of one (tenant, user), `idxs` in input order.
    async fn record_user_events(
        &self,
        events: &[UsageEvent],
        writes: &[Vec<CounterWrite>],
        payers: &[Option<Subscriber>],
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
        let Some(&first) = firsts.first() else {
            return Ok(());
        };
        let (tenant, user) = (&events[first].tenant, &events[first].user);
        // Read once for the whole batch: the reservations it settles, the wallets it draws.
        let ids = settling(events, &firsts, user);
        let mut open = self
            .find_reservations(tenant, user, &ids, false)
            .await?
            .open;
        let mut wallets = Wallets::default();
        wallets.read(self, tenant, payers, &firsts).await?;
        let mut start = 0;
        while start < firsts.len() {
            let extra = wallets.items(events, payers, &firsts[start..])?;
            let mut end = chunk_end(events, writes, &firsts, start, &extra);
            loop {
                let chunk = &firsts[start..end];
                match self
                    .record_chunk(
                        events,
                        writes,
                        payers,
                        chunk,
                        outcomes,
                        &mut open,
                        &mut wallets,
                    )
                    .await?
                {
                    ChunkRun::Done => break,
                    ChunkRun::TooBig => end = start + ((end - start) / 2).max(1),
                }
            }
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

    /// Records `idxs` (first occurrences of distinct ids of one user, ≤ one transaction),
    /// settling those of the `open` reservations they name and drawing from `wallets`
    /// (both read for the batch, read again here only when a condition says they changed).
    #[allow(clippy::too_many_arguments)]
    async fn record_chunk(
        &self,
        events: &[UsageEvent],
        writes: &[Vec<CounterWrite>],
        payers: &[Option<Subscriber>],
        idxs: &[usize],
        outcomes: &mut [Option<RecordOutcome>],
        open: &mut HashMap<String, super::reservations::OpenReservation>,
        wallets: &mut Wallets,
    ) -> StoreResult<ChunkRun> {
        let mut todo: Vec<usize> = idxs
            .iter()
            .copied()
            .filter(|&i| outcomes[i].is_none())
            .collect();
        let Some(&first) = todo.first() else {
            return Ok(ChunkRun::Done);
        };
        let (tenant, user) = (&events[first].tenant, &events[first].user);
        let state_pk = layout::user_pk(tenant, user.as_str());
        let mut billed = Billed::Assumed;
        // Issue 18: the `billed_to` of org counters read after their condition failed.
        let mut org_billed = super::org_billing::OrgBilled::default();
        // The state update's condition failed: re-read `billed_to` with the reservations.
        let mut reread = false;
        for attempt in 0..MAX_ATTEMPTS {
            if todo.is_empty() {
                return Ok(ChunkRun::Done);
            }
            if reread {
                // The chunk's reservations as they are now (the later chunks' stay as read).
                let ids = settling(events, &todo, user);
                let found = self.find_reservations(tenant, user, &ids, true).await?;
                billed = Billed::Known(found.billed);
                for id in &ids {
                    open.remove(*id);
                }
                open.extend(found.open);
            }
            let plan = ChunkPlan::of(events, writes, &todo, open.clone(), &billed)?;
            let settled: Vec<String> = plan.settled.iter().map(|o| o.r.id.clone()).collect();
            let draws = wallets.draws(events, payers, &todo)?;
            let (tx, kinds) = self.chunk_transaction(
                tenant,
                &state_pk,
                plan,
                &billed,
                &org_billed,
                events,
                &draws,
            )?;
            if tx.len() > MAX_TX_ITEMS && todo.len() > 1 {
                return Ok(ChunkRun::TooBig);
            }
            match self.transact(tx).await {
                Ok(()) => {
                    for &i in &todo {
                        outcomes[i] = Some(RecordOutcome::Recorded);
                    }
                    for id in settled {
                        open.remove(&id);
                    }
                    wallets.apply(&draws)?;
                    return Ok(ChunkRun::Done);
                }
                Err(TxError::Store(e)) => return Err(e),
                Err(TxError::Canceled(reasons)) => {
                    let cancelled = read_cancellation(&kinds, &reasons)?;
                    // Read both again and record with what they are now.
                    reread = cancelled.state_changed;
                    org_billed.read(self, &cancelled.orgs_changed).await?;
                    if cancelled.wallet_changed {
                        wallets.read(self, tenant, payers, &todo).await?;
                    }
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
    /// new ids), the state update, one update per daily rollup and per period item, one
    /// tombstone per settled reservation, and (issue 19) per wallet drawn from one update
    /// per drawn grant and one of its head, and per event an org pays for its ledger item.
    #[allow(clippy::too_many_arguments)]
    fn chunk_transaction(
        &self,
        tenant: &TenantId,
        state_pk: &str,
        mut plan: ChunkPlan,
        billed: &Billed,
        org_billed: &super::org_billing::OrgBilled,
        events: &[UsageEvent],
        draws: &BTreeMap<Subscriber, ChunkDraws>,
    ) -> StoreResult<(Vec<TransactWriteItem>, Vec<TxItem>)> {
        let mut tx = Vec::new();
        let mut kinds = Vec::new();
        let state = plan.state_update(state_pk, billed);
        let mut ledger = Vec::new();
        for (i, mut item) in plan.events {
            for (wallet, d) in draws {
                let Some(one) = d.events.get(&i) else {
                    continue;
                };
                match wallet {
                    Subscriber::User(_) => {
                        item.insert(
                            super::prepaid::EVENT_DRAWS.to_owned(),
                            super::prepaid::draws_attr(one)?,
                        );
                    }
                    Subscriber::Org(org) => {
                        item.insert(
                            super::org_wallets::EVENT_ORG_DRAWS.to_owned(),
                            super::prepaid::draws_attr(one)?,
                        );
                        ledger.push(super::org_wallets::ledger_item(&events[i], org, one)?);
                    }
                }
            }
            tx.push(self.tx_put(item, true)?);
            kinds.push(TxItem::Event(i));
        }
        tx.push(self.tx_update(state_pk.to_owned(), layout::STATE_SK, &state)?);
        kinds.push(TxItem::State);
        for (day, add) in &plan.days {
            let mut u = Update::new();
            for (attr, by) in add.0.iter().filter(|(_, v)| !v.is_zero()) {
                u.add(attr, n(by));
            }
            if u.update_expression().is_empty() {
                continue;
            }
            tx.push(self.tx_update(state_pk.to_owned(), &layout::day_sk(*day), &u)?);
            kinds.push(TxItem::Other);
        }
        for (period, w) in &plan.counters.periods {
            if let Some(u) = w.update() {
                tx.push(self.tx_update(state_pk.to_owned(), &layout::period_sk(*period), &u)?);
                kinds.push(TxItem::Other);
            }
        }
        // Issue 18: a billed org counter is guarded by the org's `billed_to` (org_billing);
        // issue 19: a late event's org wallet draws go with it (org_late_draws).
        plan.orgs
            .1
            .set_draws(draws.iter().map(|(w, d)| (w, &d.events)))?;
        for (item, org) in
            self.guarded_counter_items(tenant, &plan.budget, &plan.orgs, org_billed)?
        {
            tx.push(item);
            kinds.push(org.map_or(TxItem::Other, TxItem::OrgBilled));
        }
        // Issue 18: the org member directory (store::OrgMembersStore), in the same write.
        for (pk, sk, u) in plan.members.updates() {
            tx.push(self.tx_update(pk, &sk, &u)?);
            kinds.push(TxItem::Other);
        }
        for o in &plan.settled {
            tx.push(self.tombstone_put(o, ReservationStatus::Settled)?);
            kinds.push(match o.place {
                Place::Spilled => TxItem::State,
                Place::Inline(_) => TxItem::Other,
            });
        }
        // Issue 19: the drawn grants and the wallet heads (buckets, overdraft, released
        // holds), each wallet's draws summed per grant.
        let mut heads: BTreeMap<String, Update> = BTreeMap::new();
        for (wallet, d) in draws {
            let pk = super::wallets::wallet_pk(tenant, wallet);
            for (sk, u) in d.grant_updates() {
                tx.push(self.tx_update(pk.clone(), &sk, &u)?);
                kinds.push(TxItem::Wallet);
            }
            d.head_adds(heads.entry(pk.clone()).or_default());
            // Issue 19: a user's wallet's period draw sums, which the user's invoice reads
            // (store::PeriodDrawsStore; an org's invoice reads the org's draw ledger).
            // A late event's go to the invoice that bills its adjustment (late_draws).
            if matches!(wallet, Subscriber::User(_)) {
                let known = match billed {
                    Billed::Known(b) => b.as_deref(),
                    Billed::Assumed => None,
                };
                for (sk, u) in super::late_draws::draw_sum_updates(d, events, known)? {
                    tx.push(self.tx_update(pk.clone(), &sk, &u)?);
                    kinds.push(TxItem::Other);
                }
            }
        }
        for (pk, amount) in &plan.credit_released {
            heads
                .entry(pk.clone())
                .or_default()
                .add(super::prepaid::HELD, n(-*amount));
        }
        for (pk, head) in heads {
            if !head.update_expression().is_empty() {
                tx.push(self.tx_update(pk, super::prepaid::HEAD_SK, &head)?);
                kinds.push(TxItem::Other);
            }
        }
        for item in ledger {
            tx.push(self.tx_put(item, false)?);
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
