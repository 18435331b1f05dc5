//! Prepaid plans on DynamoDB (see [`crate::store::PrepaidStore`], docs/dynamodb.md,
//! "Wallets"). The wallet's head item (`SK = WALLET`) carries, besides its credit buckets
//! (`credit#<expires_at>`, `credit#never`), `held_usd` (credit held by open reservations)
//! and `overdrawn_usd` (usage recorded beyond the grants):
//!
//! - the check reads the head together with the user's state item in one `BatchGetItem`;
//! - a reservation that holds credit writes, in the transaction of its plan hold,
//!   `ADD held_usd :estimate` on the head under conditions that keep the check's answer
//!   true at the write (see [`hold_update`]); it keeps the amount on the reservation
//!   (`cr` in its inline map, `credit_usd` on a spilled item), so that its close (release,
//!   settle, expiry) takes it off `held_usd` in the close's transaction;
//! - a prepaid user's events draw in their chunk's transaction (`recording`, several
//!   events to one transaction of at most 100 items): one update per drawn grant with
//!   the sum the chunk's events draw from it (`ADD remaining_usd -Σd` under
//!   `remaining_usd >= Σd` and not voided: grants only shrink, so a stale read fails the
//!   condition and the chunk is drawn again from a fresh read) and one on the head (each
//!   bucket `-Σd`, the shortfall to `overdrawn_usd`); the event item keeps its draws
//!   (`draws`, JSON). The event item's own condition makes the draws happen once per event
//!   id. An org's wallet pays the same way (`org_wallets`).

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::codec::{decimal_attr, decimal_of, get_s, n, s, time_of, Item};
use super::expressions::Update;
use super::layout;
use super::requests::key;
pub(super) use super::wallets::HEAD_SK;
use super::wallets::{credit_bucket, grant_sk, wallet_pk};
use super::DynamoStore;
use crate::budgets::CounterWrite;
use crate::credits::{draw, Draw, Draws, Grant, Subscriber, WalletAlarms};
use crate::domain::{EventId, Invoice, Reservation, TenantId, UsageEvent, UserId};
use crate::store::{
    BillingState, CloseOutcome, CreditHold, CreditReserve, CreditState, EventDraws, Guard,
    InvoiceCharge, PeriodPicker, PrepaidStore, RecordOutcome, StoreError, StoreResult, UserUsage,
};

/// The head attribute of the credit held by open reservations.
pub(super) const HELD: &str = "held_usd";
/// The head attribute of the overdraft.
pub(super) const OVERDRAWN: &str = "overdrawn_usd";
/// The key, in a reservation's inline map, of the credit it holds.
pub(super) const INLINE_CREDIT: &str = "cr";
/// The attribute, on a spilled reservation's item, of the credit it holds.
pub(super) const SPILLED_CREDIT: &str = "credit_usd";
/// The event item's attribute holding its draws (JSON of [`Draws`]).
pub(super) const EVENT_DRAWS: &str = "draws";
/// Most live buckets a hold's condition names (longest-lived first): enough to cover the
/// credit of any realistic wallet while keeping the expression short.
const MAX_HOLD_BUCKETS: usize = 16;
/// Most grants one event draws from (each is one item of the event's transaction); what
/// the rest would have covered goes to the overdraft.
pub(super) const MAX_DRAWN_GRANTS: usize = 40;

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("wallet: {what}"))
}

/// The wallet head key of a user's wallet.
pub(super) fn user_wallet_pk(tenant: &TenantId, user: &UserId) -> String {
    wallet_pk(tenant, &Subscriber::User(user.clone()))
}

/// The wallet figures of a head item (an absent head: an empty wallet).
pub(super) fn credit_state_of(head: &Item) -> StoreResult<CreditState> {
    let mut buckets = BTreeMap::new();
    for (name, v) in head {
        let Some(expiry) = name.strip_prefix("credit#") else {
            continue;
        };
        let at = match expiry {
            "never" => None,
            t => Some(time_of(t)?),
        };
        buckets.insert(at, decimal_of(v)?);
    }
    Ok(CreditState {
        buckets,
        overdrawn_usd: decimal_attr(head, OVERDRAWN)?,
        held_usd: decimal_attr(head, HELD)?,
        low_balance_usd: head
            .get(super::wallets::LOW_BALANCE)
            .map(decimal_of)
            .transpose()?,
        alarms: alarms_of(head)?.0,
    })
}

/// The head's alarms (`low_armed`, `depleted_armed` as N 0/1; absent: never observed) and
/// how often they were stored (`alarm_seq`).
pub(super) fn alarms_of(head: &Item) -> StoreResult<(Option<WalletAlarms>, u64)> {
    let seq = decimal_attr(head, ALARM_SEQ)?;
    let seq = u64::try_from(seq).map_err(|_| corrupt("alarm_seq"))?;
    let alarms = match (head.get(LOW_ARMED), head.get(DEPLETED_ARMED)) {
        (Some(l), Some(d)) => Some(WalletAlarms {
            low_armed: !decimal_of(l)?.is_zero(),
            depleted_armed: !decimal_of(d)?.is_zero(),
        }),
        _ => None,
    };
    Ok((alarms, seq))
}

const LOW_ARMED: &str = "low_armed";
const DEPLETED_ARMED: &str = "depleted_armed";
const ALARM_SEQ: &str = "alarm_seq";

/// The credit an open reservation holds: from its inline map or its spilled item.
pub(super) fn credit_of(map_or_item: &Item) -> StoreResult<Decimal> {
    let v = map_or_item
        .get(INLINE_CREDIT)
        .or_else(|| map_or_item.get(SPILLED_CREDIT));
    v.map_or(Ok(Decimal::ZERO), decimal_of)
}

/// The credit held by an inline reservation's map attribute.
pub(super) fn credit_of_map(av: &aws_sdk_dynamodb::types::AttributeValue) -> StoreResult<Decimal> {
    match av.as_m() {
        Ok(m) => credit_of(m),
        Err(_) => Ok(Decimal::ZERO),
    }
}

/// The head update of a hold: `ADD held_usd :amount` under conditions that make
/// `available >= amount` (strict when the rule is) true at the write, given what the
/// check read: `held_usd <= Σ chosen buckets − overdrawn − amount`, each chosen live
/// bucket at least what was read, and the overdraft at most what was read. Buckets only
/// shrink by draws and voids, so a racing draw fails the hold (read again); racing holds
/// fail only when together they would pass the credit. `None`: the read credit cannot
/// admit the hold at all.
pub(super) fn hold_update(hold: &CreditHold) -> Option<Update> {
    let mut live: Vec<(Option<DateTime<Utc>>, Decimal)> = hold
        .read
        .live(hold.at)
        .filter(|(_, v)| *v > Decimal::ZERO)
        .collect();
    // Longest-lived first (`None`, never expiring, is the longest).
    live.sort_by(|a, b| match (a.0, b.0) {
        (None, None) => std::cmp::Ordering::Equal,
        (None, Some(_)) => std::cmp::Ordering::Less,
        (Some(_), None) => std::cmp::Ordering::Greater,
        (Some(x), Some(y)) => y.cmp(&x),
    });
    live.truncate(MAX_HOLD_BUCKETS);
    let total = live
        .iter()
        .try_fold(Decimal::ZERO, |acc, (_, v)| acc.checked_add(*v))?;
    let amount = hold.amount();
    let room = total
        .checked_sub(hold.read.overdrawn_usd)?
        .checked_sub(amount)?;
    let strict = hold.estimate.is_none() || amount.is_zero();
    if room < Decimal::ZERO || (strict && room <= Decimal::ZERO) {
        return None;
    }
    let mut u = Update::new();
    if amount > Decimal::ZERO {
        u.add(HELD, n(amount));
    } else {
        // Nothing to hold: the write only checks (a no-op ADD keeps the item updatable).
        u.add(HELD, n(0));
    }
    let op = if strict { "<" } else { "<=" };
    u.condition(|x| {
        let (h, r) = (x.name(HELD), x.value(n(room)));
        format!("attribute_not_exists({h}) OR {h} {op} {r}")
    });
    let overdrawn = hold.read.overdrawn_usd;
    u.condition(|x| {
        let (o, v) = (x.name(OVERDRAWN), x.value(n(overdrawn)));
        format!("attribute_not_exists({o}) OR {o} <= {v}")
    });
    for (expiry, value) in live {
        let attr = credit_bucket(expiry);
        u.condition(|x| {
            let (b, v) = (x.name(&attr), x.value(n(value)));
            format!("{b} >= {v}")
        });
    }
    Some(u)
}

/// The head update releasing `amount` of held credit.
pub(super) fn release_update(amount: Decimal) -> Update {
    let mut u = Update::new();
    u.add(HELD, n(-amount));
    u
}

/// What the events of one chunk draw from one wallet, computed from one read of it.
#[derive(Debug, Default)]
pub(super) struct ChunkDraws {
    /// Per drawn grant: (its bucket attribute, Σ drawn).
    pub grants: BTreeMap<String, (String, Decimal)>,
    /// Per event index, its draws.
    pub events: BTreeMap<usize, Draws>,
    pub shortfall: Decimal,
    /// Per period, its events' draws summed (issue 19: `period_draws`).
    pub periods: BTreeMap<DateTime<Utc>, crate::store::PeriodDraws>,
}

impl ChunkDraws {
    /// Draws the cost of each event of `todo` (in order) from `grants`, each at its
    /// timestamp.
    pub(super) fn of(events: &[UsageEvent], todo: &[usize], grants: &[Grant]) -> StoreResult<Self> {
        let mut work: Vec<Grant> = grants.to_vec();
        let mut out = ChunkDraws::default();
        for &i in todo {
            let e = &events[i];
            let cost = e.cost_usd.unwrap_or_default();
            if cost <= Decimal::ZERO {
                continue;
            }
            let mut d = draw(&work, cost, e.timestamp).map_err(corrupt)?;
            if d.draws.len() > MAX_DRAWN_GRANTS {
                let rest: Vec<Draw> = d.draws.split_off(MAX_DRAWN_GRANTS);
                for r in rest {
                    d.shortfall_usd = d
                        .shortfall_usd
                        .checked_add(r.amount_usd)
                        .ok_or_else(|| corrupt("overflow"))?;
                }
            }
            d.apply(&mut work).map_err(corrupt)?;
            for dr in &d.draws {
                let g = work
                    .iter()
                    .find(|g| g.id == dr.grant_id)
                    .ok_or_else(|| corrupt("a drawn grant vanished"))?;
                let slot = out
                    .grants
                    .entry(grant_sk(&g.id))
                    .or_insert_with(|| (credit_bucket(g.expires_at), Decimal::ZERO));
                slot.1 = slot
                    .1
                    .checked_add(dr.amount_usd)
                    .ok_or_else(|| corrupt("overflow"))?;
            }
            out.shortfall = out
                .shortfall
                .checked_add(d.shortfall_usd)
                .ok_or_else(|| corrupt("overflow"))?;
            super::period_draws::add(&mut out.periods, e.period_start, &d)?;
            out.events.insert(i, d);
        }
        Ok(out)
    }

    /// The grant updates: `ADD remaining_usd -d` under `remaining_usd >= d`, not voided.
    pub(super) fn grant_updates(&self) -> Vec<(String, Update)> {
        self.grants
            .iter()
            .map(|(sk, (_, d))| {
                let mut u = Update::new();
                u.add("remaining_usd", n(-*d));
                let d = *d;
                u.condition(|x| {
                    let (r, v, pk, vo) = (
                        x.name("remaining_usd"),
                        x.value(n(d)),
                        x.name(layout::PK),
                        x.name("voided_at"),
                    );
                    format!("attribute_exists({pk}) AND attribute_not_exists({vo}) AND {r} >= {v}")
                });
                (sk.clone(), u)
            })
            .collect()
    }

    /// The head's increments: each bucket `-Σd`, the shortfall to the overdraft.
    pub(super) fn head_adds(&self, u: &mut Update) {
        let mut buckets: BTreeMap<&str, Decimal> = BTreeMap::new();
        for (bucket, d) in self.grants.values() {
            *buckets.entry(bucket.as_str()).or_default() += *d;
        }
        for (bucket, d) in buckets {
            u.add(bucket, n(-d));
        }
        if self.shortfall > Decimal::ZERO {
            u.add(OVERDRAWN, n(self.shortfall));
        }
    }
}

/// The event item's draws attribute.
pub(super) fn draws_attr(d: &Draws) -> StoreResult<aws_sdk_dynamodb::types::AttributeValue> {
    serde_json::to_string(d)
        .map(s)
        .map_err(|e| corrupt(e.to_string()))
}

impl DynamoStore {
    /// The user's state item and the head of the user's wallet, in one `BatchGetItem`.
    pub(super) async fn get_state_and_head(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> StoreResult<(Item, Item)> {
        let state_pk = layout::user_pk(tenant, user.as_str());
        let head_pk = user_wallet_pk(tenant, user);
        let items = self
            .batch_get(
                vec![
                    key(state_pk.clone(), layout::STATE_SK),
                    key(head_pk.clone(), HEAD_SK),
                ],
                true,
            )
            .await?;
        let (mut state, mut head) = (Item::new(), Item::new());
        for item in items {
            match get_s(&item, layout::PK) {
                Some(pk) if pk == state_pk => state = item,
                Some(pk) if pk == head_pk => head = item,
                _ => return Err(corrupt("a batch read returned an unasked item")),
            }
        }
        Ok((state, head))
    }
}

#[async_trait]
impl PrepaidStore for DynamoStore {
    async fn get_user_limits_with_credit(
        &self,
        tenant: &TenantId,
        user: &UserId,
        pick: PeriodPicker<'_>,
    ) -> StoreResult<(UserUsage, CreditState)> {
        let (state, head) = self.get_state_and_head(tenant, user).await?;
        let usage = self.user_limits_of(tenant, user, state, pick).await?;
        Ok((usage, credit_state_of(&head)?))
    }

    async fn get_credit_state(
        &self,
        tenant: &TenantId,
        wallet: &Subscriber,
    ) -> StoreResult<CreditState> {
        let head = self
            .get_item(wallet_pk(tenant, wallet), HEAD_SK, &[])
            .await?
            .unwrap_or_default();
        credit_state_of(&head)
    }

    async fn reserve_with_credit(
        &self,
        reservation: &Reservation,
        guards: &[Guard],
        writes: &[CounterWrite],
        hold: &CreditHold,
        _now: DateTime<Utc>,
    ) -> StoreResult<CreditReserve> {
        let budget = match super::budget_counters::guarded_updates(
            &reservation.tenant,
            writes,
            &self.stale,
        )? {
            Ok(updates) => updates,
            Err(metric) => return Ok(CreditReserve::Denied { metric }),
        };
        self.reserve_hold_with(reservation, guards, &budget, Some(hold))
            .await
    }

    async fn record_events_drawing(
        &self,
        events: &[UsageEvent],
        writes: &[Vec<CounterWrite>],
    ) -> StoreResult<Vec<RecordOutcome>> {
        if !writes.is_empty() && writes.len() != events.len() {
            return Err(StoreError::Corrupt(
                "one list of counter writes per event is expected".to_owned(),
            ));
        }
        // Each event pays from its user's wallet (issue 19; an org's: `org_wallets`).
        let payers: Vec<Option<Subscriber>> = events
            .iter()
            .map(|e| Some(Subscriber::User(e.user.clone())))
            .collect();
        self.record_with(events, writes, &payers).await
    }

    async fn event_draws(
        &self,
        tenant: &TenantId,
        user: &UserId,
        since: Option<DateTime<Utc>>,
    ) -> StoreResult<Vec<EventDraws>> {
        let wallet = Subscriber::User(user.clone());
        let mut out = Vec::new();
        let pk = layout::user_pk(tenant, user.as_str());
        // The user's events in the `by_user` index, from `since` on (their sort key starts
        // with the event's timestamp).
        let from = since.map_or_else(
            || "EVENT#".to_owned(),
            |t| format!("EVENT#{}", layout::sortable(t)),
        );
        let items = self
            .query_all(
                || {
                    self.query()
                        .index_name(layout::USER_INDEX)
                        .key_condition_expression("#u = :u AND #s BETWEEN :from AND :to")
                        .expression_attribute_names("#u", layout::USER_PK)
                        .expression_attribute_names("#s", layout::USER_SK)
                        .expression_attribute_values(":u", s(pk.clone()))
                        .expression_attribute_values(":from", s(from.clone()))
                        .expression_attribute_values(":to", s("EVENT#~"))
                },
                None,
            )
            .await?;
        for item in items {
            if let Some(d) = event_draws_of(&item, EVENT_DRAWS, &wallet)? {
                out.push(d);
            }
        }
        out.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.event_id.cmp(&b.event_id)));
        Ok(out)
    }

    async fn put_wallet_alarms(
        &self,
        tenant: &TenantId,
        wallet: &Subscriber,
        seq_read: u64,
        alarms: WalletAlarms,
    ) -> StoreResult<bool> {
        let mut u = Update::new();
        u.set(LOW_ARMED, n(u8::from(alarms.low_armed)))
            .set(DEPLETED_ARMED, n(u8::from(alarms.depleted_armed)))
            .add(ALARM_SEQ, n(1));
        if seq_read == 0 {
            u.condition(|x| format!("attribute_not_exists({})", x.name(ALARM_SEQ)));
        } else {
            u.condition(|x| {
                let (a, v) = (x.name(ALARM_SEQ), x.value(n(seq_read)));
                format!("{a} = {v}")
            });
        }
        Ok(self
            .update(wallet_pk(tenant, wallet), HEAD_SK, &u, false)
            .await?
            .is_ok())
    }

    async fn close_period_charging(
        &self,
        invoice: &Invoice,
        state: &BillingState,
        billed_to: DateTime<Utc>,
        charge: &InvoiceCharge,
    ) -> StoreResult<CloseOutcome> {
        let extra = self.charge_items(&state.tenant, charge)?;
        self.close_period_with(invoice, state, billed_to, &extra)
            .await
    }
}

impl DynamoStore {
    /// The items taking an invoice's `charge` from its wallet (none without a wallet): per
    /// draw `ADD remaining_usd -d` on its grant (which must exist, not be voided and hold
    /// `d`), and on the head each bucket `-Σd` and `overdrawn_usd -settled` (which must
    /// hold it). Also an org's invoices (`org_wallets`).
    pub(super) fn charge_items(
        &self,
        tenant: &TenantId,
        charge: &InvoiceCharge,
    ) -> StoreResult<Vec<aws_sdk_dynamodb::types::TransactWriteItem>> {
        let Some(wallet) = &charge.wallet else {
            return Ok(Vec::new());
        };
        let pk = wallet_pk(tenant, wallet);
        let mut extra = Vec::new();
        let mut head = Update::new();
        let mut buckets: BTreeMap<String, Decimal> = BTreeMap::new();
        for d in &charge.draws.draws {
            let g = charge
                .grants
                .iter()
                .find(|g| g.id == d.grant_id)
                .ok_or_else(|| corrupt("a drawn grant is not among the grants read"))?;
            let amount = d.amount_usd;
            let mut u = Update::new();
            u.add("remaining_usd", n(-amount));
            u.condition(|x| {
                let (r, v, p, vo) = (
                    x.name("remaining_usd"),
                    x.value(n(amount)),
                    x.name(layout::PK),
                    x.name("voided_at"),
                );
                format!("attribute_exists({p}) AND attribute_not_exists({vo}) AND {r} >= {v}")
            });
            extra.push(self.tx_update(pk.clone(), &grant_sk(&g.id), &u)?);
            *buckets.entry(credit_bucket(g.expires_at)).or_default() += amount;
        }
        for (bucket, d) in &buckets {
            head.add(bucket, n(-*d));
        }
        let settled = charge.overdraft_settled;
        if settled > Decimal::ZERO {
            head.add(OVERDRAWN, n(-settled));
            head.condition(|x| {
                let (o, v) = (x.name(OVERDRAWN), x.value(n(settled)));
                format!("{o} >= {v}")
            });
        }
        if !head.update_expression().is_empty() {
            extra.push(self.tx_update(pk, HEAD_SK, &head)?);
        }
        Ok(extra)
    }
}

/// The draws an event item (or an org ledger item) keeps in `attr` (JSON), with the event's
/// id and timestamp; `None` when it keeps none.
pub(super) fn event_draws_of(
    item: &Item,
    attr: &str,
    wallet: &Subscriber,
) -> StoreResult<Option<EventDraws>> {
    let Some(text) = get_s(item, attr) else {
        return Ok(None);
    };
    let draws: Draws = serde_json::from_str(text).map_err(corrupt)?;
    let event_id = get_s(item, "event_id")
        .ok_or_else(|| corrupt("event without an id"))
        .and_then(|t| EventId::parse(t).map_err(corrupt))?;
    let at = time_of(get_s(item, "timestamp").ok_or_else(|| corrupt("no timestamp"))?)?;
    let cost_usd = draws.total_usd().map_err(corrupt)?;
    Ok(Some(EventDraws::new(
        event_id,
        wallet.clone(),
        at,
        draws,
        cost_usd,
    )))
}
