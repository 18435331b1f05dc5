//! Usage: period counters (read from the state item and period items, see
//! `period_items`), daily rollups, events (recorded in `recording`), reservations (in
//! `reservations`) and pricing.
//!
//! A check reads one item (the state item: subscription, the open periods' limit
//! counters); a usage read of the current period is one `Query` (the state item and the
//! newest period item, which holds the display-only counts).

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;

use super::codec::{count_of, decimal_of, get_s, n, s, Item};
use super::counters::{billed_condition, BilledTo, Increments, Placement, Rendered};
use super::expressions::Update;
use super::items;
use super::layout;
use super::period_items::UserItems;
use super::requests::{first_condition_failed, gave_up, MAX_ATTEMPTS};
use super::subscriptions::subscription_of;
use super::DynamoStore;
use crate::domain::{EventId, ProviderId, Reservation, TenantId, UsageEvent, UserId};
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

/// The writes of pricing `e` at `cost` when `billed_to` is `billed`: its counters (on the
/// state item while its period is open, else on its period item) and, when its period is
/// already invoiced and `user_bills` (the user pays for it: `store::user_pays`), its
/// adjustment; the state update requires `billed_to` unchanged.
pub(super) fn priced_writes(
    e: &UsageEvent,
    cost: Decimal,
    billed: Option<&str>,
    user_bills: bool,
) -> StoreResult<(Update, Rendered)> {
    let mut inc = Increments::default();
    inc.price(e.period_start, &e.provider, cost)?;
    let placement = BilledTo(billed);
    // A late event is an adjustment of its payer only (docs/billing.md, "One payer per call").
    let late = user_bills && placement.closed(e.period_start);
    if late {
        inc.adjust(e.period_start, cost)?;
    }
    let rendered = inc.render(&placement);
    let mut u = Update::new();
    rendered.add_state(&mut u);
    if late {
        u.add(layout::ADJ_VERSION, n(1));
    }
    u.condition(|x| billed_condition(x, billed));
    Ok((u, rendered))
}

impl DynamoStore {
    /// What a check reads of a user, from the user's state item as read (alone, or with
    /// the wallet head for a prepaid check: `PrepaidStore::get_user_limits_with_credit`).
    pub(super) async fn user_limits_of(
        &self,
        tenant: &TenantId,
        user: &UserId,
        state: super::codec::Item,
        pick: PeriodPicker<'_>,
    ) -> StoreResult<UserUsage> {
        refuse_previous_layout(&state)?;
        let pk = layout::user_pk(tenant, user.as_str());
        self.crowded.note(&pk, &state);
        let mut items = UserItems {
            state,
            periods: Default::default(),
        };
        let subscription = subscription_of(&items.state)?;
        let user_budgets =
            super::codec::decimal_attr(&items.state, super::budget_counters::USER_BUDGETS)?
                > rust_decimal::Decimal::ZERO;
        let period = pick(subscription.as_ref());
        if items.closed(period) {
            // A closed period's counters are on its period item.
            self.read_period_item(tenant, user, &mut items, period)
                .await?;
        }
        Ok(UserUsage {
            subscription,
            period_start: Some(period),
            usage: items.limits(period)?,
            fired_alerts: items.fired(period),
            user_budgets,
        })
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
        let (mut items, _) = self.read_state_and_latest(tenant, user).await?;
        refuse_previous_layout(&items.state)?;
        let subscription = subscription_of(&items.state)?;
        let period = pick(subscription.as_ref());
        // The newest period item came with the state item; an older period's is read.
        let newest = items.periods.keys().next_back().copied();
        if newest.is_some_and(|n| n > period) {
            items.periods.clear();
            self.read_period_item(tenant, user, &mut items, period)
                .await?;
        }
        let pk = layout::user_pk(tenant, user.as_str());
        self.settle_reads(&pk, &mut items, &[period]).await?;
        Ok(UserUsage {
            subscription,
            period_start: Some(period),
            usage: items.usage(period)?,
            fired_alerts: items.fired(period),
            user_budgets: false,
        })
    }

    async fn get_user_limits(
        &self,
        tenant: &TenantId,
        user: &UserId,
        pick: PeriodPicker<'_>,
    ) -> StoreResult<UserUsage> {
        let state = self.get_state(tenant, user, &[]).await?;
        self.user_limits_of(tenant, user, state, pick).await
    }

    async fn get_period_usage(
        &self,
        tenant: &TenantId,
        user: &UserId,
        starts: &[DateTime<Utc>],
    ) -> StoreResult<Vec<PeriodUsage>> {
        let items = self.read_user_items(tenant, user, starts).await?;
        starts.iter().map(|s| items.usage(*s)).collect()
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
        self.record_with_counters(events, &[]).await
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
        self.reserve_hold(r, guards, &[]).await
    }

    async fn get_reservation(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> StoreResult<Option<Reservation>> {
        self.find_reservation(tenant, id).await
    }

    async fn release_reservation(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> StoreResult<ReleaseOutcome> {
        self.release(tenant, id).await
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
            let (u, rendered) = priced_writes(&e, cost, billed.as_deref(), e.user_pays())?;
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
                    for (period, w) in &rendered.periods {
                        if let Some(pu) = w.update() {
                            tx.push(self.tx_update(
                                state_pk.clone(),
                                &layout::period_sk(*period),
                                &pu,
                            )?);
                        }
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
        self.expire(now, limit).await
    }
}

/// A state item still holding counters under the previous layout's names (before
/// `meter migrate`) is refused rather than read: this build does not read those names, so
/// it would see zeros and admit what the limits forbid. The check and ingest answer 503
/// until the migration has rewritten the user (docs/operations.md, "Upgrading").
fn refuse_previous_layout(state: &Item) -> StoreResult<()> {
    if state.keys().any(|k| {
        matches!(
            super::legacy::parse(k),
            Some(super::legacy::Attr::Counter(..))
        )
    }) {
        return Err(StoreError::Unavailable(
            "the user's state item is in the previous layout: run `meter migrate`".into(),
        ));
    }
    Ok(())
}
