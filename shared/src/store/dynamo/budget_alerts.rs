//! Budget alerts' once-only write: one `TransactWriteItems` of the alert item under
//! `attribute_not_exists(PK)` (its id is derived from the user and the once-only key, so
//! racing writers collide on it) and `ADD alerts_unread 1` on the user's state item. No
//! fired key is kept on the state item (budget windows are too many for it).

use async_trait::async_trait;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};

use super::codec::{from_item, n, s, to_item, Item};
use super::expressions::Update;
use super::items;
use super::requests::first_condition_failed;
use super::{layout, DynamoStore};
use crate::domain::{Alert, OrgId, TenantId};
use crate::store::{org_subscriber, BudgetAlertStore, DeniedLimit, StoreResult};

#[async_trait]
impl BudgetAlertStore for DynamoStore {
    async fn create_budget_alert_once(&self, alert: &Alert) -> StoreResult<bool> {
        let pk = layout::user_pk(&alert.tenant, &alert.owner_key());
        let mut unread = Update::new();
        unread.add(layout::ALERTS_UNREAD, n(u8::from(!alert.read)));
        let res = self
            .transact_until_decided("creating a budget alert", || {
                Ok(vec![
                    self.tx_put(items::alert_item(alert)?, true)?,
                    self.tx_update(pk.clone(), layout::STATE_SK, &unread)?,
                ])
            })
            .await?;
        match res {
            Ok(()) => Ok(true),
            Err(reasons) if first_condition_failed(&reasons) => Ok(false),
            // Only the alert item has a condition.
            Err(_) => Ok(false),
        }
    }
    async fn list_org_alerts(
        &self,
        tenant: &TenantId,
        org: &OrgId,
        unread_only: bool,
        limit: usize,
    ) -> StoreResult<(Vec<Alert>, u64)> {
        self.list_owner_alerts(tenant, &org_subscriber(org), unread_only, limit)
            .await
    }

    async fn note_denied_limit(&self, denied: &DeniedLimit) -> StoreResult<bool> {
        let item = denied_item(denied)?;
        let res = self
            .transact_until_decided("remembering a denial", || {
                Ok(vec![self.tx_put(item.clone(), true)?])
            })
            .await?;
        Ok(res.is_ok())
    }

    async fn denied_limits(
        &self,
        after: Option<&DeniedLimit>,
        limit: usize,
    ) -> StoreResult<Vec<DeniedLimit>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let page_size = i32::try_from(limit.min(1000)).unwrap_or(1000);
        // The index's sort key orders the notes as (denied_at, tenant, key): past the
        // note `after`, or from the start.
        let past = after.map(denied_sort_key);
        let items = self
            .query_all(
                || {
                    let q = self
                        .query()
                        .index_name(layout::OUTBOX_INDEX)
                        .expression_attribute_names("#o", layout::OUTBOX_PK)
                        .expression_attribute_values(":o", s(DENIED_PARTITION))
                        .limit(page_size);
                    match &past {
                        None => q.key_condition_expression("#o = :o"),
                        Some(past) => q
                            .key_condition_expression("#o = :o AND #s > :past")
                            .expression_attribute_names("#s", layout::OUTBOX_SK)
                            .expression_attribute_values(":past", s(past.clone())),
                    }
                },
                Some(limit),
            )
            .await?;
        items.iter().map(from_item).collect()
    }

    async fn expired_alerts(&self, now: DateTime<Utc>, limit: usize) -> StoreResult<Vec<Alert>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let page_size = i32::try_from(limit.min(1000)).unwrap_or(1000);
        // `#` sorts after every character of a sortable time's end `Z`: `~` bounds the
        // sort keys of every alert whose retention ended at `now`.
        let upto = format!("{}~", layout::sortable(now));
        let keys = self
            .query_all(
                || {
                    self.query()
                        .index_name(layout::HOLDS_INDEX)
                        .key_condition_expression("#h = :h AND #s <= :upto")
                        .expression_attribute_names("#h", layout::HOLDS_PK)
                        .expression_attribute_names("#s", layout::HOLDS_SK)
                        .expression_attribute_values(":h", s(layout::ALERTS_RETAIN_PARTITION))
                        .expression_attribute_values(":upto", s(upto.clone()))
                        .limit(page_size)
                },
                Some(limit),
            )
            .await?;
        // The index holds keys only: the alerts themselves in one batch read.
        let wanted = keys
            .into_iter()
            .filter_map(|k| {
                let pk = k.get(layout::PK)?.clone();
                let sk = k.get(layout::SK)?.clone();
                Some(Item::from([
                    (layout::PK.to_owned(), pk),
                    (layout::SK.to_owned(), sk),
                ]))
            })
            .collect();
        let mut alerts: Vec<Alert> = self
            .batch_get(wanted, true)
            .await?
            .iter()
            .map(from_item)
            .collect::<StoreResult<_>>()?;
        alerts.retain(|a| a.published);
        alerts.sort_by_key(|a| {
            (
                crate::alerts::retain_until(a),
                a.tenant.clone(),
                a.id.clone(),
            )
        });
        Ok(alerts)
    }

    async fn delete_expired_alert(&self, alert: &Alert) -> StoreResult<bool> {
        let pk = layout::alert_pk(&alert.tenant, &alert.id);
        let owner = layout::user_pk(&alert.tenant, &alert.owner_key());
        // The read flag the deletion is decided on: as listed, then as re-read when a
        // "mark read" changed it in between (at most once: an alert is never unread again).
        let mut read = alert.read;
        for _ in 0..2 {
            let mut gone = Update::new();
            gone.condition(|x| {
                format!(
                    "attribute_exists({}) AND {} = {} AND {} = {}",
                    x.name(layout::PK),
                    x.name("read"),
                    x.value(AttributeValue::Bool(read)),
                    x.name("published"),
                    x.value(AttributeValue::Bool(true)),
                )
            });
            let mut count = Update::new();
            count.add(layout::ALERTS_UNREAD, n(-1));
            let deleted = self
                .conditional_transact("deleting an expired alert", first_condition_failed, || {
                    let mut tx = vec![self.tx_delete_when(pk.clone(), layout::ALERT_SK, &gone)?];
                    if !read {
                        tx.push(self.tx_update(owner.clone(), layout::STATE_SK, &count)?);
                    }
                    Ok(tx)
                })
                .await?;
            if deleted {
                return Ok(true);
            }
            match self.get_item(pk.clone(), layout::ALERT_SK, &[]).await? {
                Some(item) => {
                    let now: Alert = from_item(&item)?;
                    if now.read == read || !now.published {
                        return Ok(false);
                    }
                    read = now.read;
                }
                None => return Ok(false),
            }
        }
        Ok(false)
    }

    async fn resolve_denied_limit(
        &self,
        denied: &DeniedLimit,
        resolved: &Alert,
    ) -> StoreResult<bool> {
        let mut gone = Update::new();
        gone.condition(|x| {
            format!(
                "attribute_exists({}) AND {} = {}",
                x.name(layout::PK),
                x.name("denied_at"),
                x.value(s(denied
                    .denied_at
                    .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)))
            )
        });
        let pk = layout::user_pk(&resolved.tenant, &resolved.owner_key());
        let mut unread = Update::new();
        unread.add(layout::ALERTS_UNREAD, n(1));
        let res = self
            .transact_until_decided("resolving a denial", || {
                Ok(vec![
                    self.tx_delete_when(denied_pk(&denied.tenant), &denied.key, &gone)?,
                    self.tx_put(items::alert_item(resolved)?, true)?,
                    self.tx_update(pk.clone(), layout::STATE_SK, &unread)?,
                ])
            })
            .await?;
        Ok(res.is_ok())
    }
}

/// The partition of the `outbox` index listing remembered denials (oldest first).
const DENIED_PARTITION: &str = "DENIED";

fn denied_pk(tenant: &TenantId) -> String {
    format!("{}#DENIED", layout::tenant_pk(tenant))
}

/// A remembered denial's sort key in the `outbox` index: oldest first.
fn denied_sort_key(d: &DeniedLimit) -> String {
    format!("{}#{}#{}", layout::sortable(d.denied_at), d.tenant, d.key)
}

/// A remembered denial: under `T#<tenant>#DENIED` / its key, in the `outbox` index
/// partition `DENIED`, expiring (TTL) 30 days after its window's end should no pass
/// resolve it.
fn denied_item(d: &DeniedLimit) -> StoreResult<super::codec::Item> {
    let mut item = to_item(d)?;
    item.insert(layout::PK.into(), s(denied_pk(&d.tenant)));
    item.insert(layout::SK.into(), s(d.key.clone()));
    item.insert(layout::OUTBOX_PK.into(), s(DENIED_PARTITION));
    item.insert(layout::OUTBOX_SK.into(), s(denied_sort_key(d)));
    item.insert(
        layout::TTL.into(),
        n((d.resets_at + chrono::Duration::days(30)).timestamp()),
    );
    Ok(item)
}

impl DynamoStore {
    /// A transactional delete of (`pk`, `sk`) under the conditions of `when`.
    fn tx_delete_when(
        &self,
        pk: String,
        sk: &str,
        when: &Update,
    ) -> StoreResult<aws_sdk_dynamodb::types::TransactWriteItem> {
        let delete = aws_sdk_dynamodb::types::Delete::builder()
            .table_name(&self.table)
            .set_key(Some(super::requests::key(pk, sk)))
            .set_condition_expression(when.condition_expression())
            .set_expression_attribute_names(when.expr.names())
            .set_expression_attribute_values(when.expr.values())
            .build()
            .map_err(super::errors::build_err)?;
        Ok(aws_sdk_dynamodb::types::TransactWriteItem::builder()
            .delete(delete)
            .build())
    }
}
