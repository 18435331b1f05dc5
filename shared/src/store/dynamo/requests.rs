//! The requests every port method is made of: get, put, update, delete, transactions and
//! queries on the one table, the retry of writes that lost a race or were throttled
//! (jittered backoff), the reading of a cancelled transaction's reasons, and page cursors.
//!
//! Every write goes through these helpers, so every write gets the same retries: a plain
//! write (`PutItem`, `UpdateItem`, `DeleteItem`, `BatchWriteItem`) that meets a
//! transaction on its item (`TransactionConflictException`, which the SDK does not retry)
//! or throttling that outlasted the SDK's own attempts is sent again after [`backoff`],
//! like a cancelled transaction, up to [`MAX_ATTEMPTS`] attempts and [`RETRY_BUDGET`].

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    CancellationReason, KeysAndAttributes, Put, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem, Update as TxUpdate,
};
use base64::Engine as _;

use super::codec::{s, Item};
use super::errors::{build_err, sdk_err};
use super::expressions::Update;
use super::layout;
use super::DynamoStore;
use crate::domain::{TenantId, UserId};
use crate::store::{StoreError, StoreResult};

/// How often a write that lost a race (TransactionConflict, throttling inside a
/// transaction) is retried, with jittered exponential backoff, before `Unavailable`.
pub(super) const MAX_ATTEMPTS: u32 = 12;
/// No new attempt starts after this long: a request in a Lambda (10 s timeout) still
/// answers `Unavailable` (503) in time when throttling never stops (each throttled
/// attempt is itself up to 3 SDK attempts, ≈ 3 s). Contention alone never reaches it:
/// the backoffs of 12 attempts add up to at most 5.3 s.
pub(super) const RETRY_BUDGET: Duration = Duration::from_secs(6);

/// Service error codes a plain write is retried on: a transaction is writing the item,
/// or the table, partition or account is throttled.
const RETRIED_CODES: [&str; 4] = [
    "TransactionConflictException",
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
];
/// Keys of one `BatchGetItem`.
pub(super) const BATCH_GET: usize = 100;
/// A transaction holds at most 100 items.
pub(super) const MAX_TX_ITEMS: usize = 100;

pub(super) fn key(pk: impl Into<String>, sk: impl Into<String>) -> Item {
    HashMap::from([
        (layout::PK.to_owned(), s(pk)),
        (layout::SK.to_owned(), s(sk)),
    ])
}

/// Why a transaction did not commit.
pub(super) enum TxError {
    /// Cancelled: one reason per item, in request order.
    Canceled(Vec<CancellationReason>),
    Store(StoreError),
}

pub(super) fn reason_code(r: &CancellationReason) -> &str {
    r.code().unwrap_or("None")
}

pub(super) async fn backoff(attempt: u32) {
    let cap_ms: u64 = (10u64 << attempt.min(7)).min(1000);
    let ms = rand::random_range(cap_ms / 2..=cap_ms);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// The attempts of one write: [`Retries::again`] backs off before the next one, or says
/// there is none left.
pub(super) struct Retries {
    attempt: u32,
    started: Instant,
}

impl Retries {
    pub(super) fn new() -> Self {
        Self {
            attempt: 0,
            started: Instant::now(),
        }
    }

    /// After a failed attempt: `false` when [`MAX_ATTEMPTS`] were made or the
    /// [`RETRY_BUDGET`] is spent; else waits [`backoff`] and answers `true`.
    pub(super) async fn again(&mut self) -> bool {
        self.attempt += 1;
        if self.attempt >= MAX_ATTEMPTS || self.started.elapsed() >= RETRY_BUDGET {
            return false;
        }
        backoff(self.attempt - 1).await;
        true
    }
}

/// Whether a failed request is worth sending again (see [`RETRIED_CODES`]).
fn retried<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    e.code().is_some_and(|code| RETRIED_CODES.contains(&code))
}

/// Sends a write (`send` builds and sends one attempt), sending it again while it fails
/// with one of [`RETRIED_CODES`]; the last failure when attempts run out.
pub(super) async fn send_write<T, E, R, Fut>(
    operation: &str,
    send: impl Fn() -> Fut,
) -> Result<T, SdkError<E, R>>
where
    E: ProvideErrorMetadata,
    Fut: Future<Output = Result<T, SdkError<E, R>>>,
{
    let mut retries = Retries::new();
    loop {
        match send().await {
            Err(e) if retried(&e) => {
                tracing::debug!(operation, code = e.code(), "write contended; retrying");
                if !retries.again().await {
                    return Err(e);
                }
            }
            other => return other,
        }
    }
}

pub(super) fn gave_up(what: &str) -> StoreError {
    StoreError::Unavailable(format!(
        "{what}: still contended after {MAX_ATTEMPTS} attempts"
    ))
}

pub(super) fn first_condition_failed(reasons: &[CancellationReason]) -> bool {
    reasons
        .first()
        .is_some_and(|r| reason_code(r) == "ConditionalCheckFailed")
}

pub(super) fn any_condition_failed(reasons: &[CancellationReason]) -> bool {
    reasons
        .iter()
        .any(|r| reason_code(r) == "ConditionalCheckFailed")
}

impl DynamoStore {
    pub(super) async fn get_item(
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

    pub(super) async fn get_state(
        &self,
        tenant: &TenantId,
        user: &UserId,
        projection: &[&str],
    ) -> StoreResult<Item> {
        Ok(self
            .get_item(
                layout::user_pk(tenant, user.as_str()),
                layout::STATE_SK,
                projection,
            )
            .await?
            .unwrap_or_default())
    }

    /// `PutItem` under `attribute_not_exists(PK)`; `false` if the item existed.
    pub(super) async fn put_new(&self, item: Item) -> StoreResult<bool> {
        let req = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", layout::PK);
        let res = send_write("PutItem", || req.clone().send()).await;
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

    pub(super) async fn put(&self, item: Item) -> StoreResult<()> {
        let req = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        send_write("PutItem", || req.clone().send())
            .await
            .map_err(|e| sdk_err("PutItem", e))?;
        Ok(())
    }

    /// `DeleteItem` of (`pk`, `sk`); the deleted item, `None` if there was none.
    pub(super) async fn delete(&self, pk: String, sk: &str) -> StoreResult<Option<Item>> {
        let req = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld);
        let out = send_write("DeleteItem", || req.clone().send())
            .await
            .map_err(|e| sdk_err("DeleteItem", e))?;
        Ok(out.attributes.filter(|item| !item.is_empty()))
    }

    /// A transactional update of (`pk`, `sk`); an update that changes nothing but has a
    /// condition is that condition's check (DynamoDB refuses an empty update expression:
    /// e.g. pricing an event whose period is invoiced and whose user does not pay for it
    /// writes nothing on the user's state item, only requires its `billed_to`).
    pub(super) fn tx_update(
        &self,
        pk: String,
        sk: &str,
        u: &Update,
    ) -> StoreResult<TransactWriteItem> {
        if u.update_expression().is_empty() {
            let check = aws_sdk_dynamodb::types::ConditionCheck::builder()
                .table_name(&self.table)
                .set_key(Some(key(pk, sk)))
                .set_condition_expression(u.condition_expression())
                .set_expression_attribute_names(u.expr.names())
                .set_expression_attribute_values(u.expr.values())
                .build()
                .map_err(build_err)?;
            return Ok(TransactWriteItem::builder().condition_check(check).build());
        }
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

    /// A transactional delete of (`pk`, `sk`); with `must_exist`, under
    /// `attribute_exists(PK)`.
    pub(super) fn tx_delete(
        &self,
        pk: String,
        sk: &str,
        must_exist: bool,
    ) -> StoreResult<TransactWriteItem> {
        let mut delete = aws_sdk_dynamodb::types::Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)));
        if must_exist {
            delete = delete
                .condition_expression("attribute_exists(#pk)")
                .expression_attribute_names("#pk", layout::PK);
        }
        Ok(TransactWriteItem::builder()
            .delete(delete.build().map_err(build_err)?)
            .build())
    }

    /// A transactional put; with `only_new`, under `attribute_not_exists(PK)` returning the
    /// existing item in the cancellation reason.
    pub(super) fn tx_put(&self, item: Item, only_new: bool) -> StoreResult<TransactWriteItem> {
        let mut put = Put::builder().table_name(&self.table).set_item(Some(item));
        if only_new {
            put = put
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", layout::PK)
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
    pub(super) async fn conditional_transact(
        &self,
        what: &str,
        decided: fn(&[CancellationReason]) -> bool,
        build: impl Fn() -> StoreResult<Vec<TransactWriteItem>>,
    ) -> StoreResult<bool> {
        let mut retries = Retries::new();
        loop {
            match self.transact(build()?).await {
                Ok(()) => return Ok(true),
                Err(TxError::Store(e)) => return Err(e),
                Err(TxError::Canceled(reasons)) if decided(&reasons) => return Ok(false),
                Err(TxError::Canceled(_)) => {
                    if !retries.again().await {
                        return Err(gave_up(what));
                    }
                }
            }
        }
    }

    /// Runs a transaction, retrying cancellations in which no condition failed (conflicts
    /// with concurrent transactions, throttling) with backoff; `Ok(Err(reasons))` when a
    /// condition failed (one reason per item, in request order).
    pub(super) async fn transact_until_decided(
        &self,
        what: &str,
        build: impl Fn() -> StoreResult<Vec<TransactWriteItem>>,
    ) -> StoreResult<Result<(), Vec<CancellationReason>>> {
        let mut retries = Retries::new();
        loop {
            match self.transact(build()?).await {
                Ok(()) => return Ok(Ok(())),
                Err(TxError::Store(e)) => return Err(e),
                Err(TxError::Canceled(reasons)) if any_condition_failed(&reasons) => {
                    return Ok(Err(reasons))
                }
                Err(TxError::Canceled(_)) => {
                    if !retries.again().await {
                        return Err(gave_up(what));
                    }
                }
            }
        }
    }

    /// One transaction (throttled attempts sent again as in [`send_write`]; a
    /// cancellation is the caller's to retry).
    pub(super) async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<(), TxError> {
        // One token for every attempt: a retried request that did commit is not applied twice.
        let req = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .client_request_token(uuid::Uuid::new_v4().to_string());
        let res = send_write("TransactWriteItems", || req.clone().send()).await;
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
    pub(super) async fn update(
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
        match send_write("UpdateItem", || req.clone().send()).await {
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
    pub(super) async fn query_all(
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

    pub(super) fn query(&self) -> QueryFluentBuilder {
        self.client.query().table_name(&self.table)
    }

    /// Items of partition `pk` whose sort key begins with `prefix` (all when empty).
    pub(super) async fn query_prefix(
        &self,
        pk: String,
        prefix: &str,
        forward: bool,
    ) -> StoreResult<Vec<Item>> {
        self.query_all(
            || {
                let q = self
                    .query()
                    .expression_attribute_names("#pk", layout::PK)
                    .expression_attribute_values(":pk", s(pk.clone()))
                    .consistent_read(true)
                    .scan_index_forward(forward);
                if prefix.is_empty() {
                    q.key_condition_expression("#pk = :pk")
                } else {
                    q.key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                        .expression_attribute_names("#sk", layout::SK)
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
    pub(super) async fn index_page(
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

impl DynamoStore {
    /// The items with these keys (any order; missing ones left out), by `BatchGetItem`s
    /// of up to 100 keys, unprocessed keys retried with backoff; strongly consistent or not.
    pub(super) async fn batch_get(
        &self,
        wanted: Vec<Item>,
        consistent: bool,
    ) -> StoreResult<Vec<Item>> {
        let mut out = Vec::with_capacity(wanted.len());
        for chunk in wanted.chunks(BATCH_GET) {
            let mut pending = KeysAndAttributes::builder()
                .set_keys(Some(chunk.to_vec()))
                .consistent_read(consistent)
                .build()
                .map_err(build_err)?;
            let mut attempt = 0;
            loop {
                let res = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, pending)
                    .send()
                    .await
                    .map_err(|e| sdk_err("BatchGetItem", e))?;
                if let Some(mut responses) = res.responses {
                    out.extend(responses.remove(&self.table).unwrap_or_default());
                }
                match res.unprocessed_keys.and_then(|mut u| u.remove(&self.table)) {
                    Some(rest) if !rest.keys().is_empty() => {
                        if attempt + 1 >= MAX_ATTEMPTS {
                            return Err(gave_up("BatchGetItem"));
                        }
                        backoff(attempt).await;
                        attempt += 1;
                        pending = rest;
                    }
                    _ => break,
                }
            }
        }
        Ok(out)
    }
}

pub(super) fn encode_cursor(k: &Item) -> StoreResult<String> {
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

pub(super) fn decode_cursor(c: &str) -> StoreResult<Item> {
    let bad = || StoreError::Corrupt("invalid page cursor".into());
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c)
        .map_err(|_| bad())?;
    let m: BTreeMap<String, String> = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    Ok(m.into_iter().map(|(k, v)| (k, s(v))).collect())
}

/// `i32` page size of a `limit` (1..=1000).
pub(super) fn page_size(limit: usize) -> i32 {
    i32::try_from(limit.clamp(1, 1000)).unwrap_or(1000)
}

pub(super) fn next_cursor(last: Option<&Item>) -> StoreResult<Option<String>> {
    match last {
        Some(k) if !k.is_empty() => Ok(Some(encode_cursor(k)?)),
        _ => Ok(None),
    }
}
