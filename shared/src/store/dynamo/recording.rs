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
//! 2. **plan** what the chunk writes: [`ChunkPlan::of`] (`chunk_plan`, which also sizes
//!    the chunks: [`chunk_end`]; the wallets' working copy is `chunk_wallets`);
//! 3. **build** the transaction from the plan: [`DynamoStore::chunk_transaction`];
//! 4. **read the outcome**: committed, or cancelled with one reason per item
//!    ([`read_cancellation`]); an event whose id is already stored gets its outcome
//!    (duplicate or conflict, [`DynamoStore::settle_existing`]) and leaves the chunk,
//!    and the rest is tried again.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use aws_sdk_dynamodb::types::TransactWriteItem;

use super::chunk_plan::{chunk_end, read_cancellation, Billed, ChunkPlan, TxItem};
use super::chunk_wallets::Wallets;
use super::codec::{get_s, n, Item};
use super::expressions::Update;
use super::layout;
use super::prepaid::ChunkDraws;
use super::requests::{backoff, gave_up, TxError, MAX_ATTEMPTS, MAX_TX_ITEMS};
use super::reservations::Place;
use super::DynamoStore;
use crate::budgets::CounterWrite;
use crate::credits::Subscriber;
use crate::domain::{Reservation, ReservationStatus, TenantId, UsageEvent, UserId};
use crate::store::{RecordOutcome, StoreError, StoreResult, UsageStore};

/// The reservations of `user` that events `todo` may settle.
fn settling<'a>(events: &'a [UsageEvent], todo: &[usize], user: &UserId) -> BTreeSet<&'a str> {
    todo.iter()
        .filter_map(|&i| events[i].reservation_id.as_deref())
        .filter(|id| Reservation::user_of_id(id).as_ref() == Some(user))
        .collect()
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
