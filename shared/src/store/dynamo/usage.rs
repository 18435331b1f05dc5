//! Usage on the user state item: period counters, daily rollups, events (recorded in
//! `recording`), reservations and pricing.
//!
//! A check reads one item; a reservation is one conditional `UpdateItem` whose guards
//! each compare one counter attribute; settling, releasing or expiring a reservation is
//! one transaction with its tombstone.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;

use super::codec::{count_of, decimal_attr, decimal_of, from_item, get_s, n, s, Item};
use super::counters::{period_usage, Increments};
use super::errors::sdk_err;
use super::expressions::Update;
use super::items;
use super::layout::{self, Field};
use super::requests::{first_condition_failed, gave_up, MAX_ATTEMPTS};
use super::subscriptions::subscription_of;
use super::DynamoStore;
use crate::domain::{
    EventId, ProviderId, Reservation, ReservationStatus, TenantId, UsageEvent, UserId,
};
use crate::limits::Metric;
use crate::store::{
    DailyUsage, Guard, Page, PeriodPicker, RecordOutcome, ReleaseOutcome, ReserveOutcome,
    StoreError, StoreResult, UsageStore, UserUsage,
};
use crate::usage::{PeriodUsage, Tally};

pub(super) fn day_of(item: &Item) -> StoreResult<DailyUsage> {
    let sk = get_s(item, layout::SK).unwrap_or_default();
    let day = sk
        .strip_prefix("D#")
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        .ok_or_else(|| StoreError::Corrupt(format!("daily rollup key `{sk}`")))?;
    let mut by_provider: BTreeMap<ProviderId, Tally> = BTreeMap::new();
    for (name, v) in item {
        let Some((kind, provider)) = name.split_once('|') else {
            continue;
        };
        let provider =
            ProviderId::parse(provider).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let t = by_provider.entry(provider).or_default();
        let d = decimal_of(v)?;
        match kind {
            "calls" => t.calls = count_of(d, "calls")?,
            "tokens" => t.tokens = count_of(d, "tokens")?,
            "cost" => t.cost_usd = d,
            _ => {}
        }
    }
    Ok(DailyUsage { day, by_provider })
}

/// The state update of pricing `e` at `cost`: its counters and, when its period is
/// already invoiced (before `billed`), its period's adjustment; under the condition
/// that `billed_to` is still `billed`.
fn priced_state(e: &UsageEvent, cost: Decimal, billed: Option<String>) -> StoreResult<Update> {
    let mut inc = Increments::default();
    inc.price(e.period_start, &e.provider, cost)?;
    let late = billed
        .as_ref()
        .is_some_and(|b| layout::billed_to(e.period_start) < *b);
    if late {
        inc.adjust(e.period_start, cost)?;
    }
    let mut u = Update::new();
    for (attr, by) in inc.nonzero() {
        u.add(attr, n(by));
    }
    if late {
        u.add(layout::ADJ_VERSION, n(1));
    }
    u.condition(|x| {
        let b = x.name(layout::BILLED_TO);
        match &billed {
            Some(v) => format!("{b} = {}", x.value(s(v.clone()))),
            None => format!("attribute_not_exists({b})"),
        }
    });
    Ok(u)
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

// Guards: each compares one counter attribute of the state item.

/// The one state attribute a guard on `metric` compares.
pub(super) fn guard_attr(period: DateTime<Utc>, metric: &Metric) -> String {
    match metric {
        Metric::Calls(p) => layout::counter(period, Field::CallsUsed, p.as_ref()),
        Metric::Tokens(p) => layout::counter(period, Field::TokensUsed, p.as_ref()),
        Metric::CostUsd => layout::counter(period, Field::CostUsed, None),
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

impl DynamoStore {
    /// The open reservations among `ids` on the user's state item (one `GetItem`).
    async fn open_among(
        &self,
        tenant: &TenantId,
        user: &UserId,
        ids: &BTreeSet<&str>,
    ) -> StoreResult<HashMap<String, Reservation>> {
        Ok(self.open_and_billed(tenant, user, ids, false).await?.0)
    }

    /// The open reservations among `ids` and, with `billed`, the user's `billed_to` text
    /// (one `GetItem` projecting those attributes; none when nothing is asked).
    pub(super) async fn open_and_billed(
        &self,
        tenant: &TenantId,
        user: &UserId,
        ids: &BTreeSet<&str>,
        billed: bool,
    ) -> StoreResult<(HashMap<String, Reservation>, Option<String>)> {
        if ids.is_empty() && !billed {
            return Ok((HashMap::new(), None));
        }
        let mut attrs: Vec<String> = ids.iter().map(|id| layout::reservation_attr(id)).collect();
        if billed {
            attrs.push(layout::BILLED_TO.to_owned());
        }
        let refs: Vec<&str> = attrs.iter().map(String::as_str).collect();
        let item = self.get_state(tenant, user, &refs).await?;
        let mut open = HashMap::new();
        for id in ids {
            if let Some(av) = item.get(&layout::reservation_attr(id)) {
                open.insert(
                    (*id).to_owned(),
                    items::reservation_of_map(tenant, user, id, av)?,
                );
            }
        }
        Ok((open, get_s(&item, layout::BILLED_TO).map(str::to_owned)))
    }

    /// Closes an open reservation (returning its hold) with `status`; `false` if it was
    /// no longer open. One transaction: the state update and the tombstone.
    async fn close_reservation(
        &self,
        r: &Reservation,
        status: ReservationStatus,
    ) -> StoreResult<bool> {
        let attr = layout::reservation_attr(&r.id);
        let mut inc = Increments::default();
        inc.unhold(r.period_start, &r.provider, &r.held)?;
        let mut u = Update::new();
        for (a, by) in inc.nonzero() {
            u.add(a, n(by));
        }
        u.add(layout::OPEN_HOLDS, n(-1)).remove(&attr);
        u.condition(|x| format!("attribute_exists({})", x.name(&attr)));
        self.conditional_transact("closing a reservation", first_condition_failed, || {
            Ok(vec![
                self.tx_update(
                    layout::user_pk(&r.tenant, r.user.as_str()),
                    layout::STATE_SK,
                    &u,
                )?,
                self.tx_put(items::tombstone_item(r, status)?, false)?,
            ])
        })
        .await
    }

    /// Drops the state item `pk` from the sparse `holds` index now that it has no open
    /// reservation, unless one arrived meanwhile.
    async fn unlist_holds(&self, pk: &str) -> StoreResult<()> {
        let mut u = Update::new();
        u.remove(layout::HOLDS_PK).remove(layout::HOLDS_SK);
        u.condition(|x| {
            let (o, z) = (x.name(layout::OPEN_HOLDS), x.value(n(0)));
            format!("attribute_not_exists({o}) OR {o} <= {z}")
        });
        let _ = self
            .update(pk.to_owned(), layout::STATE_SK, &u, false)
            .await?;
        Ok(())
    }

    async fn tombstone(
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
}

#[async_trait]
impl UsageStore for DynamoStore {
    async fn get_user_usage(
        &self,
        tenant: &TenantId,
        user: &UserId,
        pick: PeriodPicker<'_>,
    ) -> StoreResult<UserUsage> {
        let item = self.get_state(tenant, user, &[]).await?;
        let subscription = subscription_of(&item)?;
        let period = pick(subscription.as_ref());
        let usage = period_usage(&item, period)?;
        let fired_alerts = match item.get(&layout::fired(period)) {
            Some(AttributeValue::Ss(keys)) => keys.iter().cloned().collect(),
            _ => BTreeSet::new(),
        };
        Ok(UserUsage {
            subscription,
            period_start: Some(period),
            usage,
            fired_alerts,
        })
    }

    async fn get_period_usage(
        &self,
        tenant: &TenantId,
        user: &UserId,
        starts: &[DateTime<Utc>],
    ) -> StoreResult<Vec<PeriodUsage>> {
        let item = self.get_state(tenant, user, &[]).await?;
        starts.iter().map(|s| period_usage(&item, *s)).collect()
    }

    async fn daily_usage(
        &self,
        tenant: &TenantId,
        user: &UserId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> StoreResult<Vec<DailyUsage>> {
        if from > to {
            return Ok(Vec::new());
        }
        let pk = layout::user_pk(tenant, user.as_str());
        let items = self
            .query_all(
                || {
                    self.query()
                        .key_condition_expression("#pk = :pk AND #sk BETWEEN :from AND :to")
                        .expression_attribute_names("#pk", layout::PK)
                        .expression_attribute_names("#sk", layout::SK)
                        .expression_attribute_values(":pk", s(pk.clone()))
                        .expression_attribute_values(":from", s(layout::day_sk(from)))
                        .expression_attribute_values(":to", s(layout::day_sk(to)))
                        .consistent_read(true)
                },
                None,
            )
            .await?;
        let mut days = Vec::new();
        for item in &items {
            let d = day_of(item)?;
            if d.by_provider.values().any(|t| *t != Tally::default()) {
                days.push(d);
            }
        }
        Ok(days)
    }

    async fn record_events(&self, events: &[UsageEvent]) -> StoreResult<Vec<RecordOutcome>> {
        let mut outcomes = vec![None; events.len()];
        let mut groups: Vec<((&TenantId, &UserId), Vec<usize>)> = Vec::new();
        for (i, e) in events.iter().enumerate() {
            match groups.iter_mut().find(|(k, _)| *k == (&e.tenant, &e.user)) {
                Some((_, v)) => v.push(i),
                None => groups.push(((&e.tenant, &e.user), vec![i])),
            }
        }
        for (_, idxs) in &groups {
            self.record_user_events(events, idxs, &mut outcomes).await?;
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

    async fn get_event(
        &self,
        tenant: &TenantId,
        event_id: &EventId,
    ) -> StoreResult<Option<UsageEvent>> {
        let item = self
            .get_item(layout::event_pk(tenant, event_id), layout::EVENT_SK, &[])
            .await?;
        item.as_ref().map(items::event_of).transpose()
    }

    async fn reserve(&self, r: &Reservation, guards: &[Guard]) -> StoreResult<ReserveOutcome> {
        let pk = layout::user_pk(&r.tenant, r.user.as_str());
        let attr = layout::reservation_attr(&r.id);
        let mut u = Update::new();
        for g in guards {
            let Some(bound) = guard_bound(g) else {
                return Ok(ReserveOutcome::Denied {
                    metric: g.metric.clone(),
                });
            };
            let counter = guard_attr(r.period_start, &g.metric);
            let op = if g.strict { "<" } else { "<=" };
            u.condition(|x| {
                let (c, b) = (x.name(&counter), x.value(n(bound)));
                format!("attribute_not_exists({c}) OR {c} {op} {b}")
            });
        }
        u.condition(|x| format!("attribute_not_exists({})", x.name(&attr)));
        let mut inc = Increments::default();
        inc.hold(r.period_start, &r.provider, &r.held)?;
        for (a, by) in inc.nonzero() {
            u.add(a, n(by));
        }
        u.add(layout::OPEN_HOLDS, n(1))
            .set(&attr, items::reservation_map(r))
            .set(layout::HOLDS_PK, s(layout::holds_shard(&pk)))
            .set(layout::HOLDS_SK, s(pk.clone()));

        for _ in 0..MAX_ATTEMPTS {
            let old = match self.update(pk.clone(), layout::STATE_SK, &u, true).await? {
                Ok(()) => return Ok(ReserveOutcome::Reserved),
                Err(Some(old)) => old,
                // The emulator or an old API version returned no item: read it.
                Err(None) => self.get_state(&r.tenant, &r.user, &[]).await?,
            };
            if old.contains_key(&attr) {
                // A retried request whose first attempt succeeded.
                return Ok(ReserveOutcome::Reserved);
            }
            for g in guards {
                let used = decimal_attr(&old, &guard_attr(r.period_start, &g.metric))?;
                if !guard_holds(g, used) {
                    return Ok(ReserveOutcome::Denied {
                        metric: g.metric.clone(),
                    });
                }
            }
            // The item changed between the failed write and the read: try again.
        }
        Err(gave_up("reserving"))
    }

    async fn get_reservation(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> StoreResult<Option<Reservation>> {
        let Some(user) = Reservation::user_of_id(id) else {
            return Ok(None);
        };
        let open = self
            .open_among(tenant, &user, &BTreeSet::from([id]))
            .await?;
        match open.into_values().next() {
            Some(r) => Ok(Some(r)),
            None => self.tombstone(tenant, &user, id).await,
        }
    }

    async fn release_reservation(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> StoreResult<ReleaseOutcome> {
        let Some(user) = Reservation::user_of_id(id) else {
            return Ok(ReleaseOutcome::NotFound);
        };
        let open = self
            .open_among(tenant, &user, &BTreeSet::from([id]))
            .await?;
        if let Some(r) = open.into_values().next() {
            if self
                .close_reservation(&r, ReservationStatus::Released)
                .await?
            {
                return Ok(ReleaseOutcome::Released);
            }
        }
        // Closed (now or before): its tombstone was written in the same transaction.
        Ok(match self.tombstone(tenant, &user, id).await? {
            Some(r) => ReleaseOutcome::AlreadyClosed(r.status),
            None => ReleaseOutcome::NotFound,
        })
    }

    async fn unpriced_events(
        &self,
        cursor: Option<String>,
        limit: usize,
    ) -> StoreResult<Page<UsageEvent>> {
        let (items, next) = self
            .index_page(
                layout::OUTBOX_INDEX,
                layout::OUTBOX_PK,
                layout::UNPRICED_PARTITION,
                cursor.as_deref(),
                limit,
            )
            .await?;
        let items = items
            .iter()
            .map(items::event_of)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(Page { items, next })
    }

    async fn price_event(
        &self,
        tenant: &TenantId,
        event_id: &EventId,
        cost: Decimal,
        price_version: &str,
    ) -> StoreResult<bool> {
        let event_pk = layout::event_pk(tenant, event_id);
        let Some(item) = self
            .get_item(event_pk.clone(), layout::EVENT_SK, &[])
            .await?
        else {
            return Ok(false);
        };
        let e = items::event_of(&item)?;
        if e.cost_usd.is_some() {
            return Ok(false);
        }
        let mut event = Update::new();
        event
            .set("cost_usd", s(cost.to_string()))
            .set("price_version", s(price_version))
            .remove(layout::OUTBOX_PK)
            .remove(layout::OUTBOX_SK);
        event.condition(|x| {
            let (pk, c) = (x.name(layout::PK), x.name("cost_usd"));
            let null = x.value(s("NULL"));
            format!(
                "attribute_exists({pk}) AND (attribute_not_exists({c}) OR attribute_type({c}, {null}))"
            )
        });
        let mut day = Update::new();
        day.add(&layout::day_attr("cost", &e.provider), n(cost));
        let state_pk = layout::user_pk(tenant, e.user.as_str());
        for _ in 0..MAX_ATTEMPTS {
            let state = self
                .get_state(tenant, &e.user, &[layout::BILLED_TO])
                .await?;
            let billed = get_s(&state, layout::BILLED_TO).map(str::to_owned);
            let u = priced_state(&e, cost, billed)?;
            let res = self
                .transact_until_decided("pricing an event", || {
                    let mut tx = vec![
                        self.tx_update(event_pk.clone(), layout::EVENT_SK, &event)?,
                        self.tx_update(state_pk.clone(), layout::STATE_SK, &u)?,
                    ];
                    if !cost.is_zero() {
                        tx.push(self.tx_update(
                            state_pk.clone(),
                            &layout::day_sk(e.timestamp.date_naive()),
                            &day,
                        )?);
                    }
                    Ok(tx)
                })
                .await?;
            match res {
                Ok(()) => return Ok(true),
                // Priced meanwhile (or expired): nothing changed.
                Err(reasons) if first_condition_failed(&reasons) => return Ok(false),
                // `billed_to` moved since it was read: read it again.
                Err(_) => {}
            }
        }
        Err(gave_up("pricing an event"))
    }

    async fn expire_reservations(&self, now: DateTime<Utc>, limit: usize) -> StoreResult<usize> {
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
                    let Some(pk) = get_s(entry, layout::PK) else {
                        continue;
                    };
                    let Some(state) = self.get_item(pk.to_owned(), layout::STATE_SK, &[]).await?
                    else {
                        continue;
                    };
                    let open = items::open_reservations(&state)?;
                    if open.is_empty() {
                        let res = self.unlist_holds(pk).await;
                        skips.check(res, "unlisting a state item without holds")?;
                        continue;
                    }
                    for r in open.iter().filter(|r| r.expires_at <= now) {
                        if expired >= limit {
                            return Ok(expired);
                        }
                        let res = self.close_reservation(r, ReservationStatus::Expired).await;
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
