//! Alerts: one item per alert (in the GSI `by_user`, and in `outbox` until published);
//! the once-only keys fired per period and the unread count live on the user state item.

use std::collections::BTreeSet;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::claims;
use super::codec::{count_of, decimal_attr, from_item, n, s};
use super::expressions::Update;
use super::items;
use super::layout;
use super::requests::{any_condition_failed, first_condition_failed};
use super::DynamoStore;
use crate::domain::{Alert, TenantId, UserId};
use crate::store::{AlertStore, StoreResult};

#[async_trait]
impl AlertStore for DynamoStore {
    async fn create_alert_once(&self, alert: &Alert) -> StoreResult<bool> {
        let fired = layout::fired(alert.period_start);
        let mut u = Update::new();
        u.add(&fired, AttributeValue::Ss(vec![alert.key.clone()]));
        if !alert.read {
            u.add(layout::ALERTS_UNREAD, n(1));
        }
        u.condition(|x| {
            let (f, k) = (x.name(&fired), x.value(s(alert.key.clone())));
            format!("attribute_not_exists({f}) OR NOT contains({f}, {k})")
        });
        self.conditional_transact("creating an alert", any_condition_failed, || {
            Ok(vec![
                self.tx_put(items::alert_item(alert)?, true)?,
                self.tx_update(
                    layout::user_pk(&alert.tenant, alert.user.as_str()),
                    layout::STATE_SK,
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
        let state = self
            .get_state(tenant, user, &[layout::ALERTS_UNREAD])
            .await?;
        let unread = decimal_attr(&state, layout::ALERTS_UNREAD)?;
        let unread = count_of(unread.max(Decimal::ZERO), layout::ALERTS_UNREAD)?;
        if limit == 0 {
            return Ok((Vec::new(), unread));
        }
        let pk = layout::user_pk(tenant, user.as_str());
        let page_size = i32::try_from(limit.min(1000)).unwrap_or(1000);
        let items = self
            .query_all(
                || {
                    let q = self
                        .query()
                        .index_name(layout::USER_INDEX)
                        .key_condition_expression("#u = :u AND begins_with(#s, :prefix)")
                        .expression_attribute_names("#u", layout::USER_PK)
                        .expression_attribute_names("#s", layout::USER_SK)
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
        let pk = layout::alert_pk(tenant, alert_id);
        let Some(item) = self.get_item(pk.clone(), layout::ALERT_SK, &[]).await? else {
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
        count.add(layout::ALERTS_UNREAD, n(-1));
        // A failed condition means it was marked read meanwhile: still a success.
        self.conditional_transact("marking an alert read", first_condition_failed, || {
            Ok(vec![
                self.tx_update(pk.clone(), layout::ALERT_SK, &read)?,
                self.tx_update(
                    layout::user_pk(tenant, alert.user.as_str()),
                    layout::STATE_SK,
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
                        .index_name(layout::OUTBOX_INDEX)
                        .key_condition_expression("#o = :o")
                        .expression_attribute_names("#o", layout::OUTBOX_PK)
                        .expression_attribute_values(":o", s(layout::OUTBOX_PARTITION))
                        .limit(page_size)
                },
                Some(limit),
            )
            .await?;
        items.iter().map(from_item).collect()
    }

    async fn mark_alert_published(&self, tenant: &TenantId, alert_id: &str) -> StoreResult<()> {
        // A missing alert (another tenant's id) changes nothing.
        let _ = self
            .update(
                layout::alert_pk(tenant, alert_id),
                layout::ALERT_SK,
                &claims::published(),
                false,
            )
            .await?;
        Ok(())
    }

    async fn claim_alert(
        &self,
        tenant: &TenantId,
        alert_id: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let res = self
            .update(
                layout::alert_pk(tenant, alert_id),
                layout::ALERT_SK,
                &claims::claim(now, until),
                false,
            )
            .await?;
        Ok(res.is_ok())
    }

    async fn release_alert_claim(
        &self,
        tenant: &TenantId,
        alert_id: &str,
        until: DateTime<Utc>,
    ) -> StoreResult<()> {
        // Another claim replaced it (or the alert is gone): nothing to give back.
        let _ = self
            .update(
                layout::alert_pk(tenant, alert_id),
                layout::ALERT_SK,
                &claims::release(until),
                false,
            )
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
            &layout::fired(period_start),
            AttributeValue::Ss(unique.into_iter().cloned().collect()),
        );
        u.condition(|x| format!("attribute_exists({})", x.name(layout::PK)));
        // No state item: nothing was fired, nothing to forget.
        let _ = self
            .update(
                layout::user_pk(tenant, user.as_str()),
                layout::STATE_SK,
                &u,
                false,
            )
            .await?;
        Ok(())
    }
}
