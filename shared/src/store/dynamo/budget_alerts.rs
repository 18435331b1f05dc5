//! Budget alerts' once-only write: one `TransactWriteItems` of the alert item under
//! `attribute_not_exists(PK)` (its id is derived from the user and the once-only key, so
//! racing writers collide on it) and `ADD alerts_unread 1` on the user's state item. No
//! fired key is kept on the state item (budget windows are too many for it).

use async_trait::async_trait;

use super::codec::{from_item, n, s, to_item};
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

    async fn denied_limits(&self, limit: usize) -> StoreResult<Vec<DeniedLimit>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let page_size = i32::try_from(limit.min(1000)).unwrap_or(1000);
        let items = self
            .query_all(
                || {
                    self.query()
                        .index_name(layout::OUTBOX_INDEX)
                        .key_condition_expression("#o = :o")
                        .expression_attribute_names("#o", layout::OUTBOX_PK)
                        .expression_attribute_values(":o", s(DENIED_PARTITION))
                        .limit(page_size)
                },
                Some(limit),
            )
            .await?;
        items.iter().map(from_item).collect()
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

/// A remembered denial: under `T#<tenant>#DENIED` / its key, in the `outbox` index
/// partition `DENIED`, expiring (TTL) 30 days after its window's end should no pass
/// resolve it.
fn denied_item(d: &DeniedLimit) -> StoreResult<super::codec::Item> {
    let mut item = to_item(d)?;
    item.insert(layout::PK.into(), s(denied_pk(&d.tenant)));
    item.insert(layout::SK.into(), s(d.key.clone()));
    item.insert(layout::OUTBOX_PK.into(), s(DENIED_PARTITION));
    item.insert(
        layout::OUTBOX_SK.into(),
        s(format!(
            "{}#{}#{}",
            layout::sortable(d.denied_at),
            d.tenant,
            d.key
        )),
    );
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
