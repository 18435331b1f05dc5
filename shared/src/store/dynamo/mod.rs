//! The DynamoDB adapter: one table, single-table design (docs/dynamodb.md).
//!
//! The heart of it is one USER STATE item per (tenant, user) holding the subscription,
//! the counters of every period (period-qualified attribute names), the open
//! reservations and the fired alert keys. So a check reads one item, a reservation is
//! one conditional `UpdateItem`, and recording events is one `TransactWriteItems`
//! (event items + one state update + one update per daily rollup).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, Put, ReturnValue, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem, Update as TxUpdate,
};
use aws_sdk_dynamodb::Client;
use base64::Engine as _;
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;

use crate::domain::{
    Alert, ApiKeyRecord, EventId, Invoice, PlanName, ProviderId, Reservation, ReservationStatus,
    Subscription, TenantId, UsageEvent, UserId,
};
use crate::limits::{Metric, Plan};
use crate::store::{
    AlertStore, BillingState, CatalogStore, CloseOutcome, DailyUsage, Guard, InvoiceStore, Page,
    PeriodPicker, RecordOutcome, ReleaseOutcome, ReserveOutcome, StoreError, StoreResult,
    SubscriptionStore, TenantStore, UsageStore, UserRef, UserUsage,
};
use crate::usage::{PeriodUsage, Tally};

mod convert;
mod counters;
mod directory;
mod errors;
pub mod keys;
mod metrics;
mod privacy;
mod records;
mod schema;
mod token_keys;

use convert::{
    av_to_json, count_of, decimal_attr, decimal_of, from_item, get_s, json_to_av, n, s, time_of,
    to_item, Item, Update,
};
use counters::{adjustments, period_usage, Increments};
use errors::{build_err, sdk_err};
use keys::{AdjustmentPart, Field};
pub use metrics::{counting_client, RequestCounter};
pub use schema::create_table;

/// How often a write that lost a race (TransactionConflict, throttling inside a
/// transaction) is retried, with jittered exponential backoff, before `Unavailable`.
const MAX_ATTEMPTS: u32 = 12;
/// A transaction holds at most 100 items.
const MAX_TX_ITEMS: usize = 100;

/// A client configured from the environment, exactly as in production: region,
/// credentials and `AWS_ENDPOINT_URL` (a local emulator) come from the usual AWS settings.
pub async fn client_from_env() -> Client {
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    Client::new(&config)
}

/// The storage port on one DynamoDB table.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// A store whose client counts its requests (per operation) in the returned counter.
    pub fn with_request_counter(
        sdk_config: &aws_config::SdkConfig,
        table: impl Into<String>,
    ) -> (Self, RequestCounter) {
        let (client, counter) = counting_client(sdk_config);
        (Self::new(client, table), counter)
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }
}

// ---------------------------------------------------------------------------------------
// Request helpers
// ---------------------------------------------------------------------------------------

fn key(pk: impl Into<String>, sk: impl Into<String>) -> Item {
    HashMap::from([(keys::PK.to_owned(), s(pk)), (keys::SK.to_owned(), s(sk))])
}

/// Why a transaction did not commit.
enum TxError {
    /// Cancelled: one reason per item, in request order.
    Canceled(Vec<CancellationReason>),
    Store(StoreError),
}

fn reason_code(r: &CancellationReason) -> &str {
    r.code().unwrap_or("None")
}

async fn backoff(attempt: u32) {
    let cap_ms: u64 = (10u64 << attempt.min(7)).min(1000);
    let ms = rand::random_range(cap_ms / 2..=cap_ms);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

fn gave_up(what: &str) -> StoreError {
    StoreError::Unavailable(format!(
        "{what}: still contended after {MAX_ATTEMPTS} attempts"
    ))
}

fn first_condition_failed(reasons: &[CancellationReason]) -> bool {
    reasons
        .first()
        .is_some_and(|r| reason_code(r) == "ConditionalCheckFailed")
}

fn any_condition_failed(reasons: &[CancellationReason]) -> bool {
    reasons
        .iter()
        .any(|r| reason_code(r) == "ConditionalCheckFailed")
}

impl DynamoStore {
    async fn get_item(
        &self,
        pk: String,
        sk: &str,
        projection: &[&str],
    ) -> StoreResult<Option<Item>> {
        let mut req = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .consistent_read(true);
        if !projection.is_empty() {
            let mut names = HashMap::new();
            let mut parts = Vec::new();
            for (i, attr) in projection.iter().enumerate() {
                names.insert(format!("#p{i}"), (*attr).to_owned());
                parts.push(format!("#p{i}"));
            }
            req = req
                .projection_expression(parts.join(", "))
                .set_expression_attribute_names(Some(names));
        }
        let out = req.send().await.map_err(|e| sdk_err("GetItem", e))?;
        Ok(out.item)
    }

    async fn get_state(
        &self,
        tenant: &TenantId,
        user: &UserId,
        projection: &[&str],
    ) -> StoreResult<Item> {
        Ok(self
            .get_item(
                keys::user_pk(tenant, user.as_str()),
                keys::STATE_SK,
                projection,
            )
            .await?
            .unwrap_or_default())
    }

    /// `PutItem` under `attribute_not_exists(PK)`; `false` if the item existed.
    async fn put_new(&self, item: Item) -> StoreResult<bool> {
        let res = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", keys::PK)
            .send()
            .await;
        match res {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(sdk_err("PutItem", e)),
        }
    }

    async fn put(&self, item: Item) -> StoreResult<()> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| sdk_err("PutItem", e))?;
        Ok(())
    }

    fn tx_update(&self, pk: String, sk: &str, u: &Update) -> StoreResult<TransactWriteItem> {
        let update = TxUpdate::builder()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .update_expression(u.update_expression())
            .set_condition_expression(u.condition_expression())
            .set_expression_attribute_names(u.expr.names())
            .set_expression_attribute_values(u.expr.values())
            .build()
            .map_err(build_err)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// A transactional put; with `only_new`, under `attribute_not_exists(PK)` returning the
    /// existing item in the cancellation reason.
    fn tx_put(&self, item: Item, only_new: bool) -> StoreResult<TransactWriteItem> {
        let mut put = Put::builder().table_name(&self.table).set_item(Some(item));
        if only_new {
            put = put
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", keys::PK)
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                );
        }
        Ok(TransactWriteItem::builder()
            .put(put.build().map_err(build_err)?)
            .build())
    }

    /// Runs a transaction whose conditions decide the outcome: `Ok(true)` when it
    /// committed, `Ok(false)` when `decided` says a condition failed; any other
    /// cancellation (a conflict with a concurrent transaction) is retried with backoff.
    async fn conditional_transact(
        &self,
        what: &str,
        decided: fn(&[CancellationReason]) -> bool,
        build: impl Fn() -> StoreResult<Vec<TransactWriteItem>>,
    ) -> StoreResult<bool> {
        for attempt in 0..MAX_ATTEMPTS {
            match self.transact(build()?).await {
                Ok(()) => return Ok(true),
                Err(TxError::Store(e)) => return Err(e),
                Err(TxError::Canceled(reasons)) if decided(&reasons) => return Ok(false),
                Err(TxError::Canceled(_)) => backoff(attempt).await,
            }
        }
        Err(gave_up(what))
    }

    /// Runs a transaction, retrying cancellations in which no condition failed (conflicts
    /// with concurrent transactions, throttling) with backoff; `Ok(Err(reasons))` when a
    /// condition failed (one reason per item, in request order).
    async fn transact_until_decided(
        &self,
        what: &str,
        build: impl Fn() -> StoreResult<Vec<TransactWriteItem>>,
    ) -> StoreResult<Result<(), Vec<CancellationReason>>> {
        for attempt in 0..MAX_ATTEMPTS {
            match self.transact(build()?).await {
                Ok(()) => return Ok(Ok(())),
                Err(TxError::Store(e)) => return Err(e),
                Err(TxError::Canceled(reasons)) if any_condition_failed(&reasons) => {
                    return Ok(Err(reasons))
                }
                Err(TxError::Canceled(_)) => backoff(attempt).await,
            }
        }
        Err(gave_up(what))
    }

    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<(), TxError> {
        let res = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .client_request_token(uuid::Uuid::new_v4().to_string())
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) => match e.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(c)) => {
                    Err(TxError::Canceled(c.cancellation_reasons().to_vec()))
                }
                // Another transaction on these items is still running: like a conflict.
                Some(TransactWriteItemsError::TransactionInProgressException(_)) => {
                    Err(TxError::Canceled(Vec::new()))
                }
                _ => Err(TxError::Store(sdk_err("TransactWriteItems", e))),
            },
        }
    }

    /// `UpdateItem`; `Ok(None)` when its condition failed (with the old item if returned).
    async fn update(
        &self,
        pk: String,
        sk: &str,
        u: &Update,
        old_on_failure: bool,
    ) -> StoreResult<Result<(), Option<Item>>> {
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .update_expression(u.update_expression())
            .set_condition_expression(u.condition_expression())
            .set_expression_attribute_names(u.expr.names())
            .set_expression_attribute_values(u.expr.values());
        if old_on_failure {
            req = req.return_values_on_condition_check_failure(
                ReturnValuesOnConditionCheckFailure::AllOld,
            );
        }
        match req.send().await {
            Ok(_) => Ok(Ok(())),
            Err(e) => match e.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(c)) => {
                    Ok(Err(c.item().cloned()))
                }
                _ => Err(sdk_err("UpdateItem", e)),
            },
        }
    }

    /// Every item a query returns (following pages), at most `max` of them.
    async fn query_all(
        &self,
        build: impl Fn() -> QueryFluentBuilder,
        max: Option<usize>,
    ) -> StoreResult<Vec<Item>> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let res = build()
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| sdk_err("Query", e))?;
            out.extend(res.items.unwrap_or_default());
            if max.is_some_and(|m| out.len() >= m) {
                if let Some(m) = max {
                    out.truncate(m);
                }
                return Ok(out);
            }
            match res.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }

    fn query(&self) -> QueryFluentBuilder {
        self.client.query().table_name(&self.table)
    }

    /// Items of partition `pk` whose sort key begins with `prefix` (all when empty).
    async fn query_prefix(
        &self,
        pk: String,
        prefix: &str,
        forward: bool,
    ) -> StoreResult<Vec<Item>> {
        self.query_all(
            || {
                let q = self
                    .query()
                    .expression_attribute_names("#pk", keys::PK)
                    .expression_attribute_values(":pk", s(pk.clone()))
                    .consistent_read(true)
                    .scan_index_forward(forward);
                if prefix.is_empty() {
                    q.key_condition_expression("#pk = :pk")
                } else {
                    q.key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                        .expression_attribute_names("#sk", keys::SK)
                        .expression_attribute_values(":prefix", s(prefix))
                }
            },
            None,
        )
        .await
    }

    /// One page (at most `limit` items, 1..=1000) of the global secondary index `index`'s
    /// partition `pk_attr = value`, from an opaque `cursor`; with the cursor of the next
    /// page, `None` after the last.
    async fn index_page(
        &self,
        index: &str,
        pk_attr: &str,
        value: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> StoreResult<(Vec<Item>, Option<String>)> {
        let start = cursor.map(decode_cursor).transpose()?;
        let page = self
            .query()
            .index_name(index)
            .key_condition_expression("#p = :p")
            .expression_attribute_names("#p", pk_attr)
            .expression_attribute_values(":p", s(value))
            .limit(page_size(limit))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| sdk_err("Query", e))?;
        let next = next_cursor(page.last_evaluated_key())?;
        Ok((page.items.unwrap_or_default(), next))
    }
}

// ---------------------------------------------------------------------------------------
// Subscriptions on the state item
// ---------------------------------------------------------------------------------------

fn subscription_of(item: &Item) -> StoreResult<Option<Subscription>> {
    match item.get(keys::SUB) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(av) => serde_json::from_value(av_to_json(av)?)
            .map(Some)
            .map_err(|e| StoreError::Corrupt(format!("subscription: {e}"))),
    }
}

fn encode_cursor(k: &Item) -> StoreResult<String> {
    let mut m = BTreeMap::new();
    for (name, v) in k {
        let text = v
            .as_s()
            .map_err(|_| StoreError::Corrupt("non-string key in cursor".into()))?;
        m.insert(name.clone(), text.clone());
    }
    let json = serde_json::to_vec(&m).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json))
}

fn decode_cursor(c: &str) -> StoreResult<Item> {
    let bad = || StoreError::Corrupt("invalid page cursor".into());
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c)
        .map_err(|_| bad())?;
    let m: BTreeMap<String, String> = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    Ok(m.into_iter().map(|(k, v)| (k, s(v))).collect())
}

/// `i32` page size of a `limit` (1..=1000).
fn page_size(limit: usize) -> i32 {
    i32::try_from(limit.clamp(1, 1000)).unwrap_or(1000)
}

fn next_cursor(last: Option<&Item>) -> StoreResult<Option<String>> {
    match last {
        Some(k) if !k.is_empty() => Ok(Some(encode_cursor(k)?)),
        _ => Ok(None),
    }
}

/// What a [`crate::store::BillingState`] version stands for: the state attributes a close
/// requires unchanged. Text: `<billed_to or ->|<w|P or 0>|<adjv or 0>`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct BillingVersion {
    billed_to: Option<String>,
    writes: Decimal,
    adjv: Decimal,
}

impl BillingVersion {
    fn of(item: &Item, period: DateTime<Utc>) -> StoreResult<Self> {
        Ok(Self {
            billed_to: get_s(item, keys::BILLED_TO).map(str::to_owned),
            writes: decimal_attr(item, &keys::writes(period))?,
            adjv: decimal_attr(item, keys::ADJ_VERSION)?,
        })
    }

    fn text(&self) -> String {
        let b = self.billed_to.as_deref().unwrap_or("-");
        format!("{b}|{}|{}", self.writes, self.adjv)
    }

    /// `None` for text no [`BillingVersion::text`] wrote.
    fn parse(text: &str) -> Option<Self> {
        let mut parts = text.split('|');
        let (b, w, a) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        Some(Self {
            billed_to: (b != "-").then(|| b.to_owned()),
            writes: w.parse().ok()?,
            adjv: a.parse().ok()?,
        })
    }

    /// The condition that the state item still has this version, for period `period`.
    fn condition(&self, x: &mut convert::Expr, period: DateTime<Utc>) -> String {
        let b = x.name(keys::BILLED_TO);
        let billed = match &self.billed_to {
            Some(v) => format!("{b} = {}", x.value(s(v.clone()))),
            None => format!("attribute_not_exists({b})"),
        };
        let mut counter = |attr: &str, v: Decimal| {
            let a = x.name(attr);
            let val = x.value(n(v));
            if v.is_zero() {
                format!("(attribute_not_exists({a}) OR {a} = {val})")
            } else {
                format!("{a} = {val}")
            }
        };
        let writes = counter(&keys::writes(period), self.writes);
        let adjv = counter(keys::ADJ_VERSION, self.adjv);
        format!("{billed} AND {writes} AND {adjv}")
    }
}

// ---------------------------------------------------------------------------------------
// Guards
// ---------------------------------------------------------------------------------------

/// The one state attribute a guard on `metric` compares.
fn guard_attr(period: DateTime<Utc>, metric: &Metric) -> String {
    match metric {
        Metric::Calls(p) => keys::counter(period, Field::CallsUsed, p.as_ref()),
        Metric::Tokens(p) => keys::counter(period, Field::TokensUsed, p.as_ref()),
        Metric::CostUsd => keys::counter(period, Field::CostUsed, None),
    }
}

/// `limit - increment`, or `None` when no stored value can pass the guard.
fn guard_bound(g: &Guard) -> Option<Decimal> {
    let bound = g.limit.checked_sub(g.increment)?;
    let passable = if g.strict {
        bound > Decimal::ZERO
    } else {
        bound >= Decimal::ZERO
    };
    passable.then_some(bound)
}

fn guard_holds(g: &Guard, used: Decimal) -> bool {
    match used.checked_add(g.increment) {
        Some(after) if g.strict => after < g.limit,
        Some(after) => after <= g.limit,
        None => false,
    }
}

// ---------------------------------------------------------------------------------------
// Usage: events, reservations
// ---------------------------------------------------------------------------------------

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

fn day_of(item: &Item) -> StoreResult<DailyUsage> {
    let sk = get_s(item, keys::SK).unwrap_or_default();
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
    async fn open_and_billed(
        &self,
        tenant: &TenantId,
        user: &UserId,
        ids: &BTreeSet<&str>,
        billed: bool,
    ) -> StoreResult<(HashMap<String, Reservation>, Option<String>)> {
        if ids.is_empty() && !billed {
            return Ok((HashMap::new(), None));
        }
        let mut attrs: Vec<String> = ids.iter().map(|id| keys::reservation_attr(id)).collect();
        if billed {
            attrs.push(keys::BILLED_TO.to_owned());
        }
        let refs: Vec<&str> = attrs.iter().map(String::as_str).collect();
        let item = self.get_state(tenant, user, &refs).await?;
        let mut open = HashMap::new();
        for id in ids {
            if let Some(av) = item.get(&keys::reservation_attr(id)) {
                open.insert(
                    (*id).to_owned(),
                    records::reservation_of_map(tenant, user, id, av)?,
                );
            }
        }
        Ok((open, get_s(&item, keys::BILLED_TO).map(str::to_owned)))
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
        let state_pk = keys::user_pk(tenant, user.as_str());
        let mut todo = idxs.to_vec();
        let mut billed = Billed::Assumed;
        // The state update's condition failed: re-read `billed_to` with the reservations.
        let mut reread = false;
        for attempt in 0..MAX_ATTEMPTS {
            if todo.is_empty() {
                return Ok(());
            }
            // Reservations of this user that these events may settle.
            let ids: BTreeSet<&str> = todo
                .iter()
                .filter_map(|&i| events[i].reservation_id.as_deref())
                .filter(|id| Reservation::user_of_id(id).as_ref() == Some(user))
                .collect();
            let (mut open, billed_now) = self.open_and_billed(tenant, user, &ids, reread).await?;
            if reread {
                billed = Billed::Known(billed_now);
                reread = false;
            }

            let mut tx = Vec::new();
            let mut kinds = Vec::new();
            let mut inc = Increments::default();
            let mut days: BTreeMap<NaiveDate, Increments> = BTreeMap::new();
            let mut settled = Vec::new();
            let mut late = false;
            for &i in &todo {
                let e = &events[i];
                tx.push(self.tx_put(records::event_item(e)?, true)?);
                kinds.push(TxItem::Event(i));
                inc.record(e)?;
                if let Billed::Known(Some(b)) = &billed {
                    if keys::billed_to(e.period_start) < *b {
                        inc.adjust(e.period_start, e.cost_usd.unwrap_or_default())?;
                        late = true;
                    }
                }
                let day = days.entry(e.timestamp.date_naive()).or_default();
                let t = e.tally();
                day.add(keys::day_attr("calls", &e.provider), Decimal::from(t.calls))?;
                day.add(
                    keys::day_attr("tokens", &e.provider),
                    Decimal::from(t.tokens),
                )?;
                day.add(keys::day_attr("cost", &e.provider), t.cost_usd)?;
                if let Some(r) = e.reservation_id.as_ref().and_then(|id| open.remove(id)) {
                    inc.unhold(r.period_start, &r.provider, &r.held)?;
                    settled.push(r);
                }
            }
            let mut state = Update::new();
            for (attr, by) in inc.nonzero() {
                state.add(attr, n(by));
            }
            for r in &settled {
                let attr = keys::reservation_attr(&r.id);
                state.remove(&attr);
                state.condition(|x| format!("attribute_exists({})", x.name(&attr)));
            }
            if !settled.is_empty() {
                state.add(
                    keys::OPEN_HOLDS,
                    n(-i64::try_from(settled.len()).unwrap_or(i64::MAX)),
                );
            }
            if late {
                state.add(keys::ADJ_VERSION, n(1));
            }
            // Listed for the aggregation from its first usage on (no GSI write once set).
            state
                .set(keys::SUBS_PK, s(keys::SUBS_PARTITION))
                .set(keys::SUBS_SK, s(state_pk.clone()));
            let earliest = todo.iter().map(|&i| events[i].period_start).min();
            state.condition(|x| {
                let b = x.name(keys::BILLED_TO);
                match (&billed, earliest) {
                    (Billed::Assumed, Some(p)) => {
                        let v = x.value(s(keys::billed_to(p)));
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
            tx.push(self.tx_update(state_pk.clone(), keys::STATE_SK, &state)?);
            kinds.push(TxItem::State);
            for (day, add) in &days {
                let mut u = Update::new();
                for (attr, by) in add.nonzero() {
                    u.add(attr, n(by));
                }
                tx.push(self.tx_update(state_pk.clone(), &keys::day_sk(*day), &u)?);
                kinds.push(TxItem::Other);
            }
            for r in &settled {
                tx.push(self.tx_put(
                    records::tombstone_item(r, ReservationStatus::Settled)?,
                    false,
                )?);
                kinds.push(TxItem::Other);
            }

            match self.transact(tx).await {
                Ok(()) => {
                    for &i in &todo {
                        outcomes[i] = Some(RecordOutcome::Recorded);
                    }
                    return Ok(());
                }
                Err(TxError::Store(e)) => return Err(e),
                Err(TxError::Canceled(reasons)) => {
                    let mut existing = Vec::new();
                    for (kind, reason) in kinds.iter().zip(&reasons) {
                        match (reason_code(reason), kind) {
                            ("None", _) => {}
                            ("ConditionalCheckFailed", TxItem::Event(i)) => {
                                existing.push((*i, reason.item().cloned()))
                            }
                            // `billed_to` is after an event's period (a late event), or
                            // moved, or a reservation closed meanwhile: re-read both and
                            // record with what they are now.
                            ("ConditionalCheckFailed", TxItem::State) => reread = true,
                            ("ConditionalCheckFailed", TxItem::Other) => {}
                            (
                                "TransactionConflict"
                                | "ThrottlingError"
                                | "ProvisionedThroughputExceeded",
                                _,
                            ) => {}
                            (code, _) => {
                                return Err(StoreError::Unavailable(format!(
                                    "TransactWriteItems cancelled: {code}: {}",
                                    reason.message().unwrap_or_default()
                                )))
                            }
                        }
                    }
                    let progressed = !existing.is_empty();
                    for (i, old) in existing {
                        let stored = match old.as_ref().and_then(|o| get_s(o, "fingerprint")) {
                            Some(fp) => Some(fp.to_owned()),
                            None => self
                                .get_event(tenant, &events[i].event_id)
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
                    if !progressed {
                        backoff(attempt).await;
                    }
                }
            }
        }
        Err(gave_up("recording events"))
    }

    /// Records the events of one (tenant, user), `idxs` in input order.
    async fn record_user_events(
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

    /// Closes an open reservation (returning its hold) with `status`; `false` if it was
    /// no longer open. One transaction: the state update and the tombstone.
    async fn close_reservation(
        &self,
        r: &Reservation,
        status: ReservationStatus,
    ) -> StoreResult<bool> {
        let attr = keys::reservation_attr(&r.id);
        let mut inc = Increments::default();
        inc.unhold(r.period_start, &r.provider, &r.held)?;
        let mut u = Update::new();
        for (a, by) in inc.nonzero() {
            u.add(a, n(by));
        }
        u.add(keys::OPEN_HOLDS, n(-1)).remove(&attr);
        u.condition(|x| format!("attribute_exists({})", x.name(&attr)));
        self.conditional_transact("closing a reservation", first_condition_failed, || {
            Ok(vec![
                self.tx_update(
                    keys::user_pk(&r.tenant, r.user.as_str()),
                    keys::STATE_SK,
                    &u,
                )?,
                self.tx_put(records::tombstone_item(r, status)?, false)?,
            ])
        })
        .await
    }

    async fn tombstone(
        &self,
        tenant: &TenantId,
        user: &UserId,
        id: &str,
    ) -> StoreResult<Option<Reservation>> {
        let item = self
            .get_item(
                keys::user_pk(tenant, user.as_str()),
                &keys::tombstone_sk(id),
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
        let fired_alerts = match item.get(&keys::fired(period)) {
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
        let pk = keys::user_pk(tenant, user.as_str());
        let items = self
            .query_all(
                || {
                    self.query()
                        .key_condition_expression("#pk = :pk AND #sk BETWEEN :from AND :to")
                        .expression_attribute_names("#pk", keys::PK)
                        .expression_attribute_names("#sk", keys::SK)
                        .expression_attribute_values(":pk", s(pk.clone()))
                        .expression_attribute_values(":from", s(keys::day_sk(from)))
                        .expression_attribute_values(":to", s(keys::day_sk(to)))
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
            .get_item(keys::event_pk(tenant, event_id), keys::EVENT_SK, &[])
            .await?;
        item.as_ref().map(records::event_of).transpose()
    }

    async fn reserve(&self, r: &Reservation, guards: &[Guard]) -> StoreResult<ReserveOutcome> {
        let pk = keys::user_pk(&r.tenant, r.user.as_str());
        let attr = keys::reservation_attr(&r.id);
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
        u.add(keys::OPEN_HOLDS, n(1))
            .set(&attr, records::reservation_map(r))
            .set(keys::HOLDS_PK, s(keys::holds_shard(&pk)))
            .set(keys::HOLDS_SK, s(pk.clone()));

        for _ in 0..MAX_ATTEMPTS {
            let old = match self.update(pk.clone(), keys::STATE_SK, &u, true).await? {
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
                keys::OUTBOX_INDEX,
                keys::OUTBOX_PK,
                keys::UNPRICED_PARTITION,
                cursor.as_deref(),
                limit,
            )
            .await?;
        let items = items
            .iter()
            .map(records::event_of)
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
        let event_pk = keys::event_pk(tenant, event_id);
        let Some(item) = self.get_item(event_pk.clone(), keys::EVENT_SK, &[]).await? else {
            return Ok(false);
        };
        let e = records::event_of(&item)?;
        if e.cost_usd.is_some() {
            return Ok(false);
        }
        let mut event = Update::new();
        event
            .set("cost_usd", s(cost.to_string()))
            .set("price_version", s(price_version))
            .remove(keys::OUTBOX_PK)
            .remove(keys::OUTBOX_SK);
        event.condition(|x| {
            let (pk, c) = (x.name(keys::PK), x.name("cost_usd"));
            let null = x.value(s("NULL"));
            format!(
                "attribute_exists({pk}) AND (attribute_not_exists({c}) OR attribute_type({c}, {null}))"
            )
        });
        let mut day = Update::new();
        day.add(&keys::day_attr("cost", &e.provider), n(cost));
        let state_pk = keys::user_pk(tenant, e.user.as_str());
        for _ in 0..MAX_ATTEMPTS {
            let state = self.get_state(tenant, &e.user, &[keys::BILLED_TO]).await?;
            let billed = get_s(&state, keys::BILLED_TO).map(str::to_owned);
            let mut inc = Increments::default();
            inc.price(e.period_start, &e.provider, cost)?;
            let late = billed
                .as_ref()
                .is_some_and(|b| keys::billed_to(e.period_start) < *b);
            if late {
                inc.adjust(e.period_start, cost)?;
            }
            let mut u = Update::new();
            for (attr, by) in inc.nonzero() {
                u.add(attr, n(by));
            }
            if late {
                u.add(keys::ADJ_VERSION, n(1));
            }
            u.condition(|x| {
                let b = x.name(keys::BILLED_TO);
                match &billed {
                    Some(v) => format!("{b} = {}", x.value(s(v.clone()))),
                    None => format!("attribute_not_exists({b})"),
                }
            });
            let res = self
                .transact_until_decided("pricing an event", || {
                    let mut tx = vec![
                        self.tx_update(event_pk.clone(), keys::EVENT_SK, &event)?,
                        self.tx_update(state_pk.clone(), keys::STATE_SK, &u)?,
                    ];
                    if !cost.is_zero() {
                        tx.push(self.tx_update(
                            state_pk.clone(),
                            &keys::day_sk(e.timestamp.date_naive()),
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
        for shard in 0..keys::HOLDS_SHARDS {
            let partition = format!("HOLDS#{shard}");
            let mut start: Option<Item> = None;
            loop {
                let page = self
                    .query()
                    .index_name(keys::HOLDS_INDEX)
                    .key_condition_expression("#h = :h")
                    .expression_attribute_names("#h", keys::HOLDS_PK)
                    .expression_attribute_values(":h", s(partition.clone()))
                    .set_exclusive_start_key(start.take())
                    .send()
                    .await
                    .map_err(|e| sdk_err("Query", e))?;
                for entry in page.items() {
                    if expired >= limit {
                        return Ok(expired);
                    }
                    let Some(pk) = get_s(entry, keys::PK) else {
                        continue;
                    };
                    let Some(state) = self.get_item(pk.to_owned(), keys::STATE_SK, &[]).await?
                    else {
                        continue;
                    };
                    let open = records::open_reservations(&state)?;
                    if open.is_empty() {
                        // No open holds left: drop the item from the sparse index, unless
                        // a reservation arrived meanwhile.
                        let mut u = Update::new();
                        u.remove(keys::HOLDS_PK).remove(keys::HOLDS_SK);
                        u.condition(|x| {
                            let (o, z) = (x.name(keys::OPEN_HOLDS), x.value(n(0)));
                            format!("attribute_not_exists({o}) OR {o} <= {z}")
                        });
                        let _ = self
                            .update(pk.to_owned(), keys::STATE_SK, &u, false)
                            .await?;
                        continue;
                    }
                    for r in open.iter().filter(|r| r.expires_at <= now) {
                        if expired >= limit {
                            return Ok(expired);
                        }
                        if self
                            .close_reservation(r, ReservationStatus::Expired)
                            .await?
                        {
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

// ---------------------------------------------------------------------------------------
// Tenants, catalog, subscriptions
// ---------------------------------------------------------------------------------------

#[async_trait]
impl TenantStore for DynamoStore {
    async fn create_tenant_if_absent(
        &self,
        tenant: &TenantId,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut item = key(keys::tenant_pk(tenant), keys::TENANT_SK);
        item.insert("tenant".into(), s(tenant.as_str()));
        item.insert("created_at".into(), s(at.to_rfc3339()));
        self.put_new(item).await
    }

    async fn put_api_key(&self, k: &ApiKeyRecord) -> StoreResult<()> {
        let mut item = to_item(k)?;
        item.extend(key(keys::api_key_pk(&k.hash), keys::API_KEY_SK));
        self.put(item).await
    }

    async fn get_api_key(&self, hash: &str) -> StoreResult<Option<ApiKeyRecord>> {
        let item = self
            .get_item(keys::api_key_pk(hash), keys::API_KEY_SK, &[])
            .await?;
        item.as_ref().map(from_item).transpose()
    }

    async fn delete_api_key(&self, hash: &str) -> StoreResult<Option<ApiKeyRecord>> {
        let old = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(keys::api_key_pk(hash), keys::API_KEY_SK)))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| sdk_err("DeleteItem", e))?;
        match old.attributes() {
            Some(item) if !item.is_empty() => from_item(item).map(Some),
            _ => Ok(None),
        }
    }
}

#[async_trait]
impl CatalogStore for DynamoStore {
    async fn put_plan(&self, tenant: &TenantId, plan: &Plan) -> StoreResult<()> {
        let mut item = to_item(plan)?;
        item.extend(key(
            keys::tenant_pk(tenant),
            keys::plan_sk(plan.name.as_str()),
        ));
        self.put(item).await
    }

    async fn get_plan(&self, tenant: &TenantId, name: &PlanName) -> StoreResult<Option<Plan>> {
        let item = self
            .get_item(keys::tenant_pk(tenant), &keys::plan_sk(name.as_str()), &[])
            .await?;
        item.as_ref().map(from_item).transpose()
    }

    async fn list_plans(&self, tenant: &TenantId) -> StoreResult<Vec<Plan>> {
        let items = self
            .query_prefix(keys::tenant_pk(tenant), keys::PLAN_PREFIX, true)
            .await?;
        items.iter().map(from_item).collect()
    }

    async fn put_price_version(
        &self,
        scope: Option<&TenantId>,
        id: &str,
        json: &serde_json::Value,
    ) -> StoreResult<()> {
        let mut item = key(keys::prices_pk(scope), id);
        item.insert("doc".into(), s(json.to_string()));
        self.put(item).await
    }

    async fn list_price_versions(
        &self,
        scope: Option<&TenantId>,
    ) -> StoreResult<Vec<serde_json::Value>> {
        let items = self.query_prefix(keys::prices_pk(scope), "", true).await?;
        items
            .iter()
            .map(|item| {
                let doc = get_s(item, "doc")
                    .ok_or_else(|| StoreError::Corrupt("price version without doc".into()))?;
                serde_json::from_str(doc).map_err(|e| StoreError::Corrupt(e.to_string()))
            })
            .collect()
    }
}

#[async_trait]
impl SubscriptionStore for DynamoStore {
    async fn get_subscription(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> StoreResult<Option<Subscription>> {
        subscription_of(&self.get_state(tenant, user, &[keys::SUB]).await?)
    }

    async fn put_subscription(
        &self,
        sub: &Subscription,
        expected_version: Option<u64>,
    ) -> StoreResult<()> {
        let pk = keys::user_pk(&sub.tenant, sub.user.as_str());
        let json = serde_json::to_value(sub).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut u = Update::new();
        u.set(keys::SUB, json_to_av(&json))
            .set(keys::SUB_VERSION, n(sub.version))
            .set(keys::SUBS_PK, s(keys::SUBS_PARTITION))
            .set(keys::SUBS_SK, s(pk.clone()));
        u.condition(|x| {
            let v = x.name(keys::SUB_VERSION);
            match expected_version {
                None => format!("attribute_not_exists({v})"),
                Some(expected) => format!("{v} = {}", x.value(n(expected))),
            }
        });
        match self.update(pk, keys::STATE_SK, &u, false).await? {
            Ok(()) => Ok(()),
            Err(_) => Err(StoreError::VersionConflict),
        }
    }

    async fn list_users(&self, cursor: Option<String>, limit: usize) -> StoreResult<Page<UserRef>> {
        let (page, next) = self
            .index_page(
                keys::SUBS_INDEX,
                keys::SUBS_PK,
                keys::SUBS_PARTITION,
                cursor.as_deref(),
                limit,
            )
            .await?;
        let mut items = Vec::new();
        for item in &page {
            let sk = get_s(item, keys::SUBS_SK).unwrap_or_default();
            let (tenant, user) = keys::parse_user_pk(sk)
                .ok_or_else(|| StoreError::Corrupt(format!("users index key `{sk}`")))?;
            items.push(UserRef {
                tenant,
                user,
                subscription: subscription_of(item)?,
            });
        }
        Ok(Page { items, next })
    }
}

// ---------------------------------------------------------------------------------------
// Alerts and invoices
// ---------------------------------------------------------------------------------------

#[async_trait]
impl AlertStore for DynamoStore {
    async fn create_alert_once(&self, alert: &Alert) -> StoreResult<bool> {
        let fired = keys::fired(alert.period_start);
        let mut u = Update::new();
        u.add(&fired, AttributeValue::Ss(vec![alert.key.clone()]));
        if !alert.read {
            u.add(keys::ALERTS_UNREAD, n(1));
        }
        u.condition(|x| {
            let (f, k) = (x.name(&fired), x.value(s(alert.key.clone())));
            format!("attribute_not_exists({f}) OR NOT contains({f}, {k})")
        });
        self.conditional_transact("creating an alert", any_condition_failed, || {
            Ok(vec![
                self.tx_put(records::alert_item(alert)?, true)?,
                self.tx_update(
                    keys::user_pk(&alert.tenant, alert.user.as_str()),
                    keys::STATE_SK,
                    &u,
                )?,
            ])
        })
        .await
    }

    async fn list_alerts(
        &self,
        tenant: &TenantId,
        user: &UserId,
        unread_only: bool,
        limit: usize,
    ) -> StoreResult<(Vec<Alert>, u64)> {
        let state = self.get_state(tenant, user, &[keys::ALERTS_UNREAD]).await?;
        let unread = decimal_attr(&state, keys::ALERTS_UNREAD)?;
        let unread = count_of(unread.max(Decimal::ZERO), keys::ALERTS_UNREAD)?;
        if limit == 0 {
            return Ok((Vec::new(), unread));
        }
        let pk = keys::user_pk(tenant, user.as_str());
        let page_size = i32::try_from(limit.min(1000)).unwrap_or(1000);
        let items = self
            .query_all(
                || {
                    let q = self
                        .query()
                        .index_name(keys::USER_INDEX)
                        .key_condition_expression("#u = :u AND begins_with(#s, :prefix)")
                        .expression_attribute_names("#u", keys::USER_PK)
                        .expression_attribute_names("#s", keys::USER_SK)
                        .expression_attribute_values(":u", s(pk.clone()))
                        .expression_attribute_values(":prefix", s("ALERT#"))
                        .scan_index_forward(false)
                        .limit(page_size);
                    if unread_only {
                        q.filter_expression("#read = :no")
                            .expression_attribute_names("#read", "read")
                            .expression_attribute_values(":no", AttributeValue::Bool(false))
                    } else {
                        q
                    }
                },
                Some(limit),
            )
            .await?;
        let alerts = items
            .iter()
            .map(from_item)
            .collect::<StoreResult<Vec<Alert>>>()?;
        Ok((alerts, unread))
    }

    async fn mark_alert_read(&self, tenant: &TenantId, alert_id: &str) -> StoreResult<bool> {
        let pk = keys::alert_pk(tenant, alert_id);
        let Some(item) = self.get_item(pk.clone(), keys::ALERT_SK, &[]).await? else {
            return Ok(false);
        };
        let alert: Alert = from_item(&item)?;
        if alert.read {
            return Ok(true);
        }
        let mut read = Update::new();
        read.set("read", AttributeValue::Bool(true));
        read.condition(|x| {
            format!(
                "{} = {}",
                x.name("read"),
                x.value(AttributeValue::Bool(false))
            )
        });
        let mut count = Update::new();
        count.add(keys::ALERTS_UNREAD, n(-1));
        // A failed condition means it was marked read meanwhile: still a success.
        self.conditional_transact("marking an alert read", first_condition_failed, || {
            Ok(vec![
                self.tx_update(pk.clone(), keys::ALERT_SK, &read)?,
                self.tx_update(
                    keys::user_pk(tenant, alert.user.as_str()),
                    keys::STATE_SK,
                    &count,
                )?,
            ])
        })
        .await
        .map(|_| true)
    }

    async fn unpublished_alerts(&self, limit: usize) -> StoreResult<Vec<Alert>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let page_size = i32::try_from(limit.min(1000)).unwrap_or(1000);
        let items = self
            .query_all(
                || {
                    self.query()
                        .index_name(keys::OUTBOX_INDEX)
                        .key_condition_expression("#o = :o")
                        .expression_attribute_names("#o", keys::OUTBOX_PK)
                        .expression_attribute_values(":o", s(keys::OUTBOX_PARTITION))
                        .limit(page_size)
                },
                Some(limit),
            )
            .await?;
        items.iter().map(from_item).collect()
    }

    async fn mark_alert_published(&self, tenant: &TenantId, alert_id: &str) -> StoreResult<()> {
        let mut u = Update::new();
        u.set("published", AttributeValue::Bool(true))
            .remove(keys::OUTBOX_PK)
            .remove(keys::OUTBOX_SK);
        u.condition(|x| format!("attribute_exists({})", x.name(keys::PK)));
        // A missing alert (another tenant's id) changes nothing.
        let _ = self
            .update(keys::alert_pk(tenant, alert_id), keys::ALERT_SK, &u, false)
            .await?;
        Ok(())
    }

    async fn rearm_alerts(
        &self,
        tenant: &TenantId,
        user: &UserId,
        period_start: DateTime<Utc>,
        alert_keys: &[String],
    ) -> StoreResult<()> {
        // A string set holds each value once; DynamoDB refuses duplicates in the operand.
        let unique: BTreeSet<&String> = alert_keys.iter().collect();
        if unique.is_empty() {
            return Ok(());
        }
        let mut u = Update::new();
        u.delete(
            &keys::fired(period_start),
            AttributeValue::Ss(unique.into_iter().cloned().collect()),
        );
        u.condition(|x| format!("attribute_exists({})", x.name(keys::PK)));
        // No state item: nothing was fired, nothing to forget.
        let _ = self
            .update(
                keys::user_pk(tenant, user.as_str()),
                keys::STATE_SK,
                &u,
                false,
            )
            .await?;
        Ok(())
    }
}

#[async_trait]
impl InvoiceStore for DynamoStore {
    async fn put_invoice_once(&self, invoice: &Invoice) -> StoreResult<bool> {
        let mut item = to_item(invoice)?;
        item.extend(key(
            keys::user_pk(&invoice.tenant, &invoice.user),
            keys::invoice_sk(invoice.period.start),
        ));
        self.put_new(item).await
    }

    async fn billing_state(
        &self,
        tenant: &TenantId,
        user: &UserId,
        period_start: DateTime<Utc>,
    ) -> StoreResult<BillingState> {
        let item = self.get_state(tenant, user, &[]).await?;
        let version = BillingVersion::of(&item, period_start)?;
        Ok(BillingState {
            tenant: tenant.clone(),
            user: user.clone(),
            billed_to: version.billed_to.as_deref().map(time_of).transpose()?,
            period_start,
            usage: period_usage(&item, period_start)?,
            adjustments: adjustments(&item)?,
            version: version.text(),
        })
    }

    async fn close_period(
        &self,
        invoice: &Invoice,
        state: &BillingState,
    ) -> StoreResult<CloseOutcome> {
        // A version this store did not write cannot be the current one.
        let Some(version) = BillingVersion::parse(&state.version) else {
            return Ok(CloseOutcome::Changed);
        };
        let mut u = Update::new();
        u.set(keys::BILLED_TO, s(keys::billed_to(invoice.period.end)));
        // Equal to the stored values (adjv is in the condition): removed, not subtracted.
        for period in state.adjustments.keys() {
            u.remove(&keys::adjustment(*period, AdjustmentPart::Events))
                .remove(&keys::adjustment(*period, AdjustmentPart::Cost));
        }
        u.add(keys::ADJ_VERSION, n(1));
        u.condition(|x| version.condition(x, state.period_start));
        let state_pk = keys::user_pk(&state.tenant, state.user.as_str());
        let res = self
            .transact_until_decided("closing a period", || {
                Ok(vec![
                    self.tx_put(records::invoice_item(invoice)?, true)?,
                    self.tx_update(state_pk.clone(), keys::STATE_SK, &u)?,
                ])
            })
            .await?;
        Ok(match res {
            Ok(()) => CloseOutcome::Closed,
            Err(reasons) if first_condition_failed(&reasons) => CloseOutcome::AlreadyInvoiced,
            Err(_) => CloseOutcome::Changed,
        })
    }

    async fn unpublished_invoices(&self, limit: usize) -> StoreResult<Vec<Invoice>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let items = self
            .query_all(
                || {
                    self.query()
                        .index_name(keys::OUTBOX_INDEX)
                        .key_condition_expression("#o = :o")
                        .expression_attribute_names("#o", keys::OUTBOX_PK)
                        .expression_attribute_values(":o", s(keys::INVOICES_PARTITION))
                        .limit(page_size(limit))
                },
                Some(limit),
            )
            .await?;
        items.iter().map(from_item).collect()
    }

    async fn mark_invoice_published(&self, invoice: &Invoice) -> StoreResult<()> {
        let mut u = Update::new();
        u.set("published", AttributeValue::Bool(true))
            .remove(keys::OUTBOX_PK)
            .remove(keys::OUTBOX_SK);
        u.condition(|x| format!("attribute_exists({})", x.name(keys::PK)));
        // A missing invoice changes nothing.
        let _ = self
            .update(
                keys::user_pk(&invoice.tenant, &invoice.user),
                &keys::invoice_sk(invoice.period.start),
                &u,
                false,
            )
            .await?;
        Ok(())
    }

    async fn get_job_cursor(&self, job: &str) -> StoreResult<Option<String>> {
        let item = self
            .get_item(keys::job_pk(job), keys::JOB_SK, &[keys::JOB_CURSOR])
            .await?;
        Ok(item
            .as_ref()
            .and_then(|i| get_s(i, keys::JOB_CURSOR))
            .map(str::to_owned))
    }

    async fn put_job_cursor(&self, job: &str, cursor: Option<&str>) -> StoreResult<()> {
        match cursor {
            Some(c) => {
                let mut item = key(keys::job_pk(job), keys::JOB_SK);
                item.insert(keys::JOB_CURSOR.into(), s(c));
                self.put(item).await
            }
            None => {
                self.client
                    .delete_item()
                    .table_name(&self.table)
                    .set_key(Some(key(keys::job_pk(job), keys::JOB_SK)))
                    .send()
                    .await
                    .map_err(|e| sdk_err("DeleteItem", e))?;
                Ok(())
            }
        }
    }

    async fn list_invoices(&self, tenant: &TenantId, user: &UserId) -> StoreResult<Vec<Invoice>> {
        let items = self
            .query_prefix(
                keys::user_pk(tenant, user.as_str()),
                keys::INVOICE_PREFIX,
                false,
            )
            .await?;
        items.iter().map(from_item).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn guard(limit: Decimal, increment: Decimal, strict: bool) -> Guard {
        Guard {
            metric: Metric::CostUsd,
            increment,
            limit,
            strict,
        }
    }

    #[test]
    fn guard_bounds_are_limit_minus_increment_or_fail_without_a_write() {
        // (limit, increment, strict) -> bound
        let table = [
            (dec!(60), dec!(1), false, Some(dec!(59))),
            (dec!(1), dec!(1), false, Some(dec!(0))),
            (dec!(0), dec!(1), false, None),
            (dec!(0), dec!(0), false, Some(dec!(0))),
            (dec!(0.35), dec!(0), true, Some(dec!(0.35))),
            (dec!(0), dec!(0), true, None),
            (dec!(0.40), dec!(0.40), true, None),
        ];
        for (limit, inc, strict, want) in table {
            assert_eq!(
                guard_bound(&guard(limit, inc, strict)),
                want,
                "{limit} {inc} {strict}"
            );
        }
    }

    #[test]
    fn guard_holds_matches_the_stored_condition() {
        assert!(guard_holds(&guard(dec!(60), dec!(1), false), dec!(59)));
        assert!(!guard_holds(&guard(dec!(60), dec!(1), false), dec!(60)));
        assert!(!guard_holds(&guard(dec!(0.35), dec!(0), true), dec!(0.35)));
        assert!(guard_holds(&guard(dec!(0.35), dec!(0), true), dec!(0.34)));
    }

    #[test]
    fn guards_compare_the_provider_or_total_used_counter() {
        let p = chrono::TimeZone::with_ymd_and_hms(&Utc, 2025, 3, 1, 0, 0, 0).unwrap();
        let gemini = ProviderId::parse("gemini").unwrap();
        assert_eq!(
            guard_attr(p, &Metric::Calls(Some(gemini))),
            "c|2025-03-01T00:00:00Z|calls_used|gemini"
        );
        assert_eq!(
            guard_attr(p, &Metric::Tokens(None)),
            "c|2025-03-01T00:00:00Z|tokens_used|*"
        );
        assert_eq!(
            guard_attr(p, &Metric::CostUsd),
            "c|2025-03-01T00:00:00Z|cost_used|*"
        );
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_rejected() {
        let k = HashMap::from([
            ("PK".to_owned(), s("T#a#U#b")),
            ("SUBS_PK".to_owned(), s("SUBS")),
        ]);
        assert_eq!(decode_cursor(&encode_cursor(&k).unwrap()).unwrap(), k);
        assert!(decode_cursor("not a cursor!").is_err());
    }

    #[test]
    fn billing_versions_round_trip_and_foreign_text_is_rejected() {
        let v = BillingVersion {
            billed_to: Some(keys::billed_to(
                chrono::TimeZone::with_ymd_and_hms(&Utc, 2025, 4, 1, 0, 0, 0).unwrap(),
            )),
            writes: dec!(7),
            adjv: dec!(2),
        };
        assert_eq!(v.text(), "2025-04-01T00:00:00.000000000Z|7|2");
        assert_eq!(BillingVersion::parse(&v.text()), Some(v));
        let none = BillingVersion {
            billed_to: None,
            writes: Decimal::ZERO,
            adjv: Decimal::ZERO,
        };
        assert_eq!(none.text(), "-|0|0");
        assert_eq!(BillingVersion::parse("-|0|0"), Some(none));
        for bad in ["", "-|0", "-|0|0|0", "-|x|0", "v3"] {
            assert_eq!(BillingVersion::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn billing_version_condition_requires_each_part_unchanged() {
        let p = chrono::TimeZone::with_ymd_and_hms(&Utc, 2025, 3, 1, 0, 0, 0).unwrap();
        let v = BillingVersion {
            billed_to: None,
            writes: dec!(3),
            adjv: Decimal::ZERO,
        };
        let mut x = convert::Expr::default();
        assert_eq!(
            v.condition(&mut x, p),
            "attribute_not_exists(#n0) AND #n1 = :v0 AND (attribute_not_exists(#n2) OR #n2 = :v1)"
        );
        let names = x.names().unwrap();
        assert_eq!(names["#n0"], "billed_to");
        assert_eq!(names["#n1"], "w|2025-03-01T00:00:00Z");
        assert_eq!(names["#n2"], "adjv");
    }

    #[test]
    fn daily_rollup_items_read_back_per_provider() {
        let mut item = key("T#a#U#b", "D#2025-03-05");
        item.insert("calls|openai".into(), n(2));
        item.insert("tokens|openai".into(), n(70));
        item.insert("cost|openai".into(), n("0.25"));
        let d = day_of(&item).unwrap();
        assert_eq!(d.day, NaiveDate::from_ymd_opt(2025, 3, 5).unwrap());
        let t = &d.by_provider[&ProviderId::parse("openai").unwrap()];
        assert_eq!(
            *t,
            Tally {
                calls: 2,
                tokens: 70,
                cost_usd: dec!(0.25)
            }
        );
    }
}

/// The request budget, against the emulator:
/// `scripts/with-moto cargo test -p meter-core --lib store::dynamo -- --ignored`.
#[cfg(test)]
mod budget {
    use super::*;
    use crate::domain::ModelId;
    use crate::usage::UsageCounts;
    use chrono::TimeZone;
    use rust_decimal_macros::dec;

    fn at(d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 3, d, h, 0, 0).unwrap()
    }

    fn event(t: &TenantId, u: &UserId, id: &str) -> UsageEvent {
        UsageEvent {
            tenant: t.clone(),
            user: u.clone(),
            event_id: EventId::parse(id).unwrap(),
            fingerprint: format!("fp-{id}"),
            provider: ProviderId::parse("gemini").unwrap(),
            model: Some(ModelId::parse("gemini-2.5-flash").unwrap()),
            timestamp: at(10, 12),
            period_start: at(1, 0),
            counts: UsageCounts {
                input_tokens: 10,
                ..UsageCounts::default()
            },
            cost_usd: Some(dec!(0.0000001)),
            price_version: None,
            estimated: false,
            endpoint: None,
            status_code: Some(200),
            latency_ms: None,
            reservation_id: None,
            metadata: None,
            recorded_at: at(10, 12),
        }
    }

    fn only(counter: &RequestCounter, op: &str) {
        let taken: Vec<_> = counter.take().into_iter().collect();
        assert_eq!(taken, vec![(op.to_owned(), 1)]);
    }

    #[tokio::test]
    #[ignore = "needs the emulator: run through scripts/with-moto with --ignored"]
    async fn check_reads_one_item_reserve_is_one_update_and_events_one_transaction() {
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let table = format!("meter-budget-{}", uuid::Uuid::new_v4().simple());
        let (store, counter) = DynamoStore::with_request_counter(&config, table.clone());
        create_table(store.client(), &table).await.unwrap();
        let (t, u) = (
            TenantId::parse("acme").unwrap(),
            UserId::parse("alice").unwrap(),
        );
        counter.take();

        store.get_user_usage(&t, &u, &|_| at(1, 0)).await.unwrap();
        only(&counter, "GetItem");

        let r = Reservation {
            id: Reservation::new_id(&u),
            tenant: t.clone(),
            user: u.clone(),
            provider: ProviderId::parse("gemini").unwrap(),
            period_start: at(1, 0),
            held: Tally {
                calls: 1,
                tokens: 10,
                cost_usd: dec!(0.01),
            },
            status: ReservationStatus::Held,
            created_at: at(10, 12),
            expires_at: at(10, 13),
        };
        let guard = Guard {
            metric: Metric::Calls(None),
            increment: Decimal::ONE,
            limit: dec!(5),
            strict: false,
        };
        assert_eq!(
            store.reserve(&r, &[guard]).await.unwrap(),
            ReserveOutcome::Reserved
        );
        only(&counter, "UpdateItem");

        let out = store.record_events(&[event(&t, &u, "one")]).await.unwrap();
        assert_eq!(out, vec![RecordOutcome::Recorded]);
        only(&counter, "TransactWriteItems");

        let batch: Vec<_> = (0..40).map(|i| event(&t, &u, &format!("b-{i}"))).collect();
        let out = store.record_events(&batch).await.unwrap();
        assert!(out.iter().all(|o| *o == RecordOutcome::Recorded));
        only(&counter, "TransactWriteItems");

        let usage = store
            .get_user_usage(&t, &u, &|_| at(1, 0))
            .await
            .unwrap()
            .usage;
        let gemini = &usage.by_provider[&ProviderId::parse("gemini").unwrap()];
        assert_eq!(
            gemini.recorded,
            Tally {
                calls: 41,
                tokens: 410,
                cost_usd: dec!(0.0000041)
            }
        );
        assert_eq!(gemini.held, r.held);
    }
}

/// The request budget of the billing methods, against the emulator:
/// `scripts/with-moto cargo test -p meter-core --lib store::dynamo -- --ignored`.
#[cfg(test)]
mod billing_budget {
    use super::*;
    use crate::domain::{InvoiceStatus, ModelId};
    use crate::periods::Period;
    use crate::usage::UsageCounts;
    use chrono::TimeZone;
    use rust_decimal_macros::dec;

    fn at(m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, m, d, 0, 0, 0).unwrap()
    }

    fn event(t: &TenantId, u: &UserId, id: &str, cost: Option<Decimal>) -> UsageEvent {
        UsageEvent {
            tenant: t.clone(),
            user: u.clone(),
            event_id: EventId::parse(id).unwrap(),
            fingerprint: format!("fp-{id}"),
            provider: ProviderId::parse("gemini").unwrap(),
            model: Some(ModelId::parse("gemini-2.5-flash").unwrap()),
            timestamp: at(3, 10),
            period_start: at(3, 1),
            counts: UsageCounts {
                input_tokens: 10,
                ..UsageCounts::default()
            },
            cost_usd: cost,
            price_version: None,
            estimated: false,
            endpoint: None,
            status_code: Some(200),
            latency_ms: None,
            reservation_id: None,
            metadata: None,
            recorded_at: at(3, 10),
        }
    }

    fn invoice(s: &BillingState) -> Invoice {
        let month = chrono::Datelike::month(&s.period_start);
        let adjustments: Decimal = s.adjustments.values().map(|a| a.cost_usd).sum();
        Invoice {
            id: uuid::Uuid::new_v4().to_string(),
            tenant: s.tenant.clone(),
            user: s.user.to_string(),
            period: Period {
                start: s.period_start,
                end: at(month + 1, 1),
            },
            plan: PlanName::free(),
            base_usd: Decimal::ZERO,
            usage_usd: Decimal::ZERO,
            overage_usd: Decimal::ZERO,
            proration_usd: Decimal::ZERO,
            adjustments_usd: adjustments,
            total_usd: adjustments,
            line_items: Vec::new(),
            status: InvoiceStatus::Pending,
            created_at: at(month + 1, 1),
            published: false,
            extra: Default::default(),
        }
    }

    fn took(counter: &RequestCounter, want: &[(&str, u64)]) {
        let want: BTreeMap<String, u64> = want.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect();
        assert_eq!(counter.take(), want);
    }

    #[tokio::test]
    #[ignore = "needs the emulator: run through scripts/with-moto with --ignored"]
    async fn billing_methods_stay_within_their_request_budget() {
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let table = format!("meter-budget-{}", uuid::Uuid::new_v4().simple());
        let (store, counter) = DynamoStore::with_request_counter(&config, table.clone());
        create_table(store.client(), &table).await.unwrap();
        let (t, u) = (
            TenantId::parse("acme").unwrap(),
            UserId::parse("alice").unwrap(),
        );
        store
            .record_events(&[
                event(&t, &u, "priced", Some(dec!(1))),
                event(&t, &u, "unpriced", None),
            ])
            .await
            .unwrap();
        counter.take();

        let users = store.list_users(None, 10).await.unwrap();
        assert_eq!(users.items.len(), 1);
        took(&counter, &[("Query", 1)]);
        let unpriced = store.unpriced_events(None, 10).await.unwrap();
        assert_eq!(unpriced.items.len(), 1);
        took(&counter, &[("Query", 1)]);

        let state = store.billing_state(&t, &u, at(3, 1)).await.unwrap();
        took(&counter, &[("GetItem", 1)]);
        let inv = invoice(&state);
        assert_eq!(
            store.close_period(&inv, &state).await.unwrap(),
            CloseOutcome::Closed
        );
        took(&counter, &[("TransactWriteItems", 1)]);

        // A late event: the common-path transaction fails, one read, one retry.
        store
            .record_events(&[event(&t, &u, "late", Some(dec!(0.5)))])
            .await
            .unwrap();
        took(&counter, &[("GetItem", 1), ("TransactWriteItems", 2)]);

        let id = EventId::parse("unpriced").unwrap();
        assert!(store.price_event(&t, &id, dec!(2), "v1").await.unwrap());
        took(&counter, &[("GetItem", 2), ("TransactWriteItems", 1)]);
        let april = store.billing_state(&t, &u, at(4, 1)).await.unwrap();
        assert_eq!(
            april.adjustments[&at(3, 1)],
            crate::store::Adjustment {
                events: 2,
                cost_usd: dec!(2.5)
            }
        );
        assert_eq!(april.billed_to, Some(at(4, 1)));
        counter.take();

        assert_eq!(
            store.unpublished_invoices(10).await.unwrap(),
            vec![inv.clone()]
        );
        took(&counter, &[("Query", 1)]);
        store.mark_invoice_published(&inv).await.unwrap();
        took(&counter, &[("UpdateItem", 1)]);
        assert!(store.unpublished_invoices(10).await.unwrap().is_empty());
        counter.take();

        store.put_job_cursor("aggregate", Some("c1")).await.unwrap();
        took(&counter, &[("PutItem", 1)]);
        assert_eq!(
            store.get_job_cursor("aggregate").await.unwrap().as_deref(),
            Some("c1")
        );
        took(&counter, &[("GetItem", 1)]);
        store.put_job_cursor("aggregate", None).await.unwrap();
        took(&counter, &[("DeleteItem", 1)]);
    }

    /// Closes the period starting in `month`, reading the state again while it changes.
    async fn close(store: &DynamoStore, t: &TenantId, u: &UserId, month: u32) -> Invoice {
        loop {
            let s = store.billing_state(t, u, at(month, 1)).await.unwrap();
            let inv = invoice(&s);
            match store.close_period(&inv, &s).await.unwrap() {
                CloseOutcome::Closed => return inv,
                CloseOutcome::Changed => continue,
                CloseOutcome::AlreadyInvoiced => panic!("month {month} closed twice"),
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    #[ignore = "needs the emulator: run through scripts/with-moto with --ignored"]
    async fn late_events_racing_closes_are_billed_exactly_once() {
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let table = format!("meter-races-{}", uuid::Uuid::new_v4().simple());
        let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&config), table.clone());
        create_table(store.client(), &table).await.unwrap();
        let (t, u) = (
            TenantId::parse("acme").unwrap(),
            UserId::parse("alice").unwrap(),
        );
        store
            .record_events(&[event(&t, &u, "on-time", Some(dec!(1)))])
            .await
            .unwrap();
        let march = close(&store, &t, &u, 3).await;
        assert_eq!(march.adjustments_usd, Decimal::ZERO);

        // 3 writers × 10 late March events of 0.5 each, while April … August close.
        let mut writers = Vec::new();
        for w in 0..3 {
            let (store, t, u) = (store.clone(), t.clone(), u.clone());
            writers.push(tokio::spawn(async move {
                for i in 0..10 {
                    let e = event(&t, &u, &format!("late-{w}-{i}"), Some(dec!(0.5)));
                    let out = store.record_events(&[e]).await.unwrap();
                    assert_eq!(out, vec![RecordOutcome::Recorded]);
                }
            }));
        }
        let mut billed = Decimal::ZERO;
        for month in 4..=8 {
            billed += close(&store, &t, &u, month).await.adjustments_usd;
        }
        for w in writers {
            w.await.unwrap();
        }
        billed += close(&store, &t, &u, 9).await.adjustments_usd;

        assert_eq!(billed, dec!(15));
        let usage = store
            .get_period_usage(&t, &u, &[at(3, 1)])
            .await
            .unwrap()
            .remove(0);
        let gemini = &usage.by_provider[&ProviderId::parse("gemini").unwrap()];
        assert_eq!(
            (gemini.recorded.calls, gemini.recorded.cost_usd),
            (31, dec!(16))
        );
        let after = store.billing_state(&t, &u, at(10, 1)).await.unwrap();
        assert!(after.adjustments.is_empty(), "{:?}", after.adjustments);
        assert_eq!(store.list_invoices(&t, &u).await.unwrap().len(), 7);
    }
}
