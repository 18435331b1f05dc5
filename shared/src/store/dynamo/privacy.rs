//! Export and erasure of one user on the single table.
//!
//! A user's items: the partition `T#<tenant>#U#<user>` (state item, period items, daily
//! rollups, spilled reservations and reservation tombstones, invoices) and, through the GSI `by_user`, its alerts
//! (`USER_SK = ALERT#…`) and raw events (`USER_SK = EVENT#…`). Erasure deletes them in
//! bounded steps with `BatchWriteItem` (25 keys per request) and moves invoices to the
//! pseudonym's partition, keyed by period and id (a `Put` of the rewritten invoice and a
//! `Delete` of the original in one transaction); the state item goes last.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{DeleteRequest, WriteRequest};

use super::codec::{from_item, get_s, s, Item};
use super::errors::{build_err, sdk_err};
use super::period_items::UserItems;
use super::requests::{backoff, send_write, MAX_ATTEMPTS};
use super::usage::day_of;
use super::{items, layout, DynamoStore};
use crate::domain::{Invoice, TenantId, UserId};
use crate::store::{EraseProgress, PrivacyStore, StoreError, StoreResult, UserRecords};

/// Items written by one `BatchWriteItem`.
const BATCH: usize = 25;

impl DynamoStore {
    /// Base-table keys of the user's items in the GSI `by_user` (alerts, events), up to `max`.
    pub(super) async fn user_index_items(
        &self,
        pk: &str,
        prefix: Option<&str>,
        max: Option<usize>,
    ) -> StoreResult<Vec<Item>> {
        self.query_all(
            || {
                let q = self
                    .query()
                    .index_name(layout::USER_INDEX)
                    .expression_attribute_names("#u", layout::USER_PK)
                    .expression_attribute_values(":u", s(pk));
                match prefix {
                    Some(p) => q
                        .key_condition_expression("#u = :u AND begins_with(#s, :p)")
                        .expression_attribute_names("#s", layout::USER_SK)
                        .expression_attribute_values(":p", s(p)),
                    None => q.key_condition_expression("#u = :u"),
                }
            },
            max,
        )
        .await
    }

    /// Deletes the items with these base-table keys, retrying unprocessed ones.
    async fn batch_delete(&self, items: &[Item]) -> StoreResult<usize> {
        for chunk in items.chunks(BATCH) {
            let mut requests = chunk
                .iter()
                .map(|item| {
                    let key = [layout::PK, layout::SK]
                        .iter()
                        .filter_map(|k| item.get(*k).map(|v| ((*k).to_owned(), v.clone())))
                        .collect();
                    DeleteRequest::builder()
                        .set_key(Some(key))
                        .build()
                        .map(|d| WriteRequest::builder().delete_request(d).build())
                        .map_err(build_err)
                })
                .collect::<StoreResult<Vec<_>>>()?;
            let mut attempt = 0;
            while !requests.is_empty() {
                let req = self
                    .client
                    .batch_write_item()
                    .request_items(self.table.clone(), requests);
                let out = send_write("BatchWriteItem", || req.clone().send())
                    .await
                    .map_err(|e| sdk_err("BatchWriteItem", e))?;
                requests = out
                    .unprocessed_items
                    .and_then(|mut m| m.remove(&self.table))
                    .unwrap_or_default();
                if requests.is_empty() {
                    break;
                }
                attempt += 1;
                if attempt >= MAX_ATTEMPTS {
                    return Err(StoreError::Unavailable(
                        "BatchWriteItem kept leaving items unprocessed".into(),
                    ));
                }
                backoff(attempt).await;
            }
        }
        Ok(items.len())
    }

    /// Moves an invoice to the pseudonym's partition, keyed by its period and id: an
    /// invoice the pseudonym already holds for that period (the user was erased before,
    /// came back and was invoiced for the same period again) is kept, and moving the same
    /// invoice again writes the same item.
    async fn pseudonymise_invoice(&self, item: &Item, pseudonym: &UserId) -> StoreResult<()> {
        let mut invoice: Invoice = from_item(item)?;
        invoice.user = pseudonym.to_string();
        let mut moved = items::invoice_item(&invoice)?;
        moved.insert(
            layout::SK.into(),
            s(layout::pseudonymised_invoice_sk(
                invoice.period.start,
                &invoice.id,
            )),
        );
        if let Some(claimed) = item.get(layout::CLAIMED_UNTIL) {
            moved.insert(layout::CLAIMED_UNTIL.into(), claimed.clone());
        }
        let original = item.clone();
        self.conditional_transact(
            "pseudonymising an invoice",
            |_| false,
            || {
                let delete = aws_sdk_dynamodb::types::Delete::builder()
                    .table_name(&self.table)
                    .set_key(Some(
                        [layout::PK, layout::SK]
                            .iter()
                            .filter_map(|k| original.get(*k).map(|v| ((*k).to_owned(), v.clone())))
                            .collect(),
                    ))
                    .build()
                    .map_err(build_err)?;
                Ok(vec![
                    self.tx_put(moved.clone(), false)?,
                    aws_sdk_dynamodb::types::TransactWriteItem::builder()
                        .delete(delete)
                        .build(),
                ])
            },
        )
        .await
        .map(|_| ())
    }
}

#[async_trait]
impl PrivacyStore for DynamoStore {
    async fn user_records(&self, tenant: &TenantId, user: &UserId) -> StoreResult<UserRecords> {
        let pk = layout::user_pk(tenant, user.as_str());
        let mut out = UserRecords::default();
        let mut periods = Vec::new();
        for item in self.query_prefix(pk.clone(), "", true).await? {
            let sk = get_s(&item, layout::SK).unwrap_or_default().to_owned();
            if sk == layout::STATE_SK {
                out.reservations.extend(items::open_reservations(&item)?);
                periods.push(item);
            } else if sk.starts_with(layout::PERIOD_PREFIX) {
                periods.push(item);
            } else if sk.starts_with("D#") {
                out.daily.push(day_of(&item)?);
            } else if sk.starts_with("RSV#") {
                out.reservations.push(from_item(&item)?);
            }
        }
        let mut user_items = UserItems::from_items(periods);
        let starts: Vec<_> = user_items.all_periods().into_iter().collect();
        self.settle_reads(&pk, &mut user_items, &starts).await?;
        for start in starts {
            if user_items.has_counters(start) {
                out.periods.insert(start, user_items.usage(start)?);
            }
        }
        for item in self.user_index_items(&pk, Some("EVENT#"), None).await? {
            out.events.push(items::event_of(&item)?);
        }
        out.events
            .sort_by(|a, b| (a.timestamp, &a.event_id).cmp(&(b.timestamp, &b.event_id)));
        out.reservations
            .sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(out)
    }

    async fn erase_user(
        &self,
        tenant: &TenantId,
        user: &UserId,
        pseudonym: &UserId,
        limit: usize,
    ) -> StoreResult<EraseProgress> {
        let limit = limit.max(1);
        let pk = layout::user_pk(tenant, user.as_str());
        // Events and alerts first (found through the index).
        let indexed = self.user_index_items(&pk, None, Some(limit)).await?;
        if !indexed.is_empty() {
            let changed = self.batch_delete(&indexed).await?;
            return Ok(EraseProgress {
                changed,
                done: false,
            });
        }
        // Then the partition: invoices move, everything else goes, the state item last.
        let items = self.query_prefix(pk.clone(), "", true).await?;
        let mut changed = 0;
        let (mut state, mut others): (Vec<Item>, Vec<Item>) = (Vec::new(), Vec::new());
        for item in items.into_iter().take(limit) {
            match get_s(&item, layout::SK) {
                Some(sk) if sk.starts_with(layout::INVOICE_PREFIX) => {
                    self.pseudonymise_invoice(&item, pseudonym).await?;
                    changed += 1;
                }
                Some(sk) if sk == layout::STATE_SK => state.push(item),
                _ => others.push(item),
            }
        }
        changed += self.batch_delete(&others).await?;
        let rest = self.query_prefix(pk, "", true).await?;
        let done = rest.len() <= state.len();
        if done {
            changed += self.batch_delete(&state).await?;
        }
        Ok(EraseProgress { changed, done })
    }
}
