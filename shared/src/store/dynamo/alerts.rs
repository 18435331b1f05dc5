//! Alerts: one item per alert (in the GSI `by_user`, and in `outbox` until published);
//! the once-only keys fired per period live on the user state item while the period is
//! open (on its period item once closed), the unread count on the state item.

use std::collections::BTreeSet;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::claims;
use super::codec::{count_of, decimal_attr, from_item, n, s};
use super::counters::open_condition;
use super::expressions::Update;
use super::items;
use super::layout;
use super::period_items::UserItems;
use super::requests::{any_condition_failed, first_condition_failed, gave_up, MAX_ATTEMPTS};
use super::DynamoStore;
use crate::domain::{Alert, TenantId, UserId};
use crate::store::{AlertStore, StoreResult};

#[async_trait]
impl AlertStore for DynamoStore {
    async fn create_alert_once(&self, alert: &Alert) -> StoreResult<bool> {
        let period = alert.period_start;
        let pk = layout::user_pk(&alert.tenant, alert.user.as_str());
        let mut unread = Update::new();
        if !alert.read {
            unread.add(layout::ALERTS_UNREAD, n(1));
        }
        // While the period is open, its fired keys are on the state item: one transaction.
        let fired = layout::fired(period);
        let mut u = unread.clone();
        u.add(&fired, AttributeValue::Ss(vec![alert.key.clone()]))
            .add(&layout::writes(period), n(1));
        u.condition(|x| open_condition(x, period));
        u.condition(|x| {
            let (f, k) = (x.name(&fired), x.value(s(alert.key.clone())));
            format!("attribute_not_exists({f}) OR NOT contains({f}, {k})")
        });
        for _ in 0..MAX_ATTEMPTS {
            let res = self
                .transact_until_decided("creating an alert", || {
                    Ok(vec![
                        self.tx_put(items::alert_item(alert)?, true)?,
                        self.tx_update(pk.clone(), layout::STATE_SK, &u)?,
                    ])
                })
                .await?;
            let reasons = match res {
                Ok(()) => return Ok(true),
                Err(reasons) => reasons,
            };
            if first_condition_failed(&reasons) {
                return Ok(false);
            }
            let state = self
                .get_state(&alert.tenant, &alert.user, &[layout::BILLED_TO, &fired])
                .await?;
            let items = UserItems {
                state,
                periods: Default::default(),
            };
            if items.fired(period).contains(&alert.key) {
                return Ok(false);
            }
            if items.closed(period) {
                return self.create_closed_period_alert(alert, &unread).await;
            }
            // The state changed between the write and the read: again.
        }
        Err(gave_up("creating an alert"))
    }

    async fn list_alerts(
        &self,
        tenant: &TenantId,
        user: &UserId,
        unread_only: bool,
        limit: usize,
    ) -> StoreResult<(Vec<Alert>, u64)> {
        self.list_owner_alerts(tenant, user.as_str(), unread_only, limit)
            .await
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
                    layout::user_pk(tenant, &alert.owner_key()),
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
        let keys = AttributeValue::Ss(unique.into_iter().cloned().collect());
        let pk = layout::user_pk(tenant, user.as_str());
        let mut u = Update::new();
        u.delete(&layout::fired(period_start), keys.clone())
            .add(&layout::writes(period_start), n(1));
        u.condition(|x| format!("attribute_exists({})", x.name(layout::PK)));
        u.condition(|x| open_condition(x, period_start));
        let old = match self.update(pk.clone(), layout::STATE_SK, &u, true).await? {
            Ok(()) => return Ok(()),
            Err(Some(old)) => old,
            Err(None) => self.get_state(tenant, user, &[]).await?,
        };
        let items = UserItems {
            state: old,
            periods: Default::default(),
        };
        if !items.closed(period_start) {
            return Ok(()); // no state item: nothing was fired, nothing to forget
        }
        // A closed period's keys are on its period item.
        let mut u = Update::new();
        u.delete(layout::PERIOD_FIRED, keys);
        u.condition(|x| format!("attribute_exists({})", x.name(layout::PK)));
        let _ = self
            .update(pk, &layout::period_sk(period_start), &u, false)
            .await?;
        Ok(())
    }
}

impl DynamoStore {
    /// Stores an alert of a closed period: its once-only key on the period item.
    async fn create_closed_period_alert(
        &self,
        alert: &Alert,
        unread: &Update,
    ) -> StoreResult<bool> {
        let pk = layout::user_pk(&alert.tenant, alert.user.as_str());
        let mut u = Update::new();
        u.add(
            layout::PERIOD_FIRED,
            AttributeValue::Ss(vec![alert.key.clone()]),
        )
        .set(layout::PERIOD_CLOSED, AttributeValue::Bool(true));
        u.condition(|x| {
            let (f, k) = (x.name(layout::PERIOD_FIRED), x.value(s(alert.key.clone())));
            format!("attribute_not_exists({f}) OR NOT contains({f}, {k})")
        });
        let has_unread = !unread.update_expression().is_empty();
        self.conditional_transact("creating an alert", any_condition_failed, || {
            let mut tx = vec![
                self.tx_put(items::alert_item(alert)?, true)?,
                self.tx_update(pk.clone(), &layout::period_sk(alert.period_start), &u)?,
            ];
            if has_unread {
                tx.push(self.tx_update(pk.clone(), layout::STATE_SK, unread)?);
            }
            Ok(tx)
        })
        .await
    }
}

impl DynamoStore {
    /// The alerts listed under `owner` (`Alert::owner_key`: a user id or `org#<org_id>`)
    /// and the owner's unread count (on the owner's state item).
    pub(super) async fn list_owner_alerts(
        &self,
        tenant: &TenantId,
        owner: &str,
        unread_only: bool,
        limit: usize,
    ) -> StoreResult<(Vec<Alert>, u64)> {
        let pk = layout::user_pk(tenant, owner);
        let state = self
            .get_item(pk.clone(), layout::STATE_SK, &[layout::ALERTS_UNREAD])
            .await?
            .unwrap_or_default();
        let unread = decimal_attr(&state, layout::ALERTS_UNREAD)?;
        let unread = count_of(unread.max(Decimal::ZERO), layout::ALERTS_UNREAD)?;
        if limit == 0 {
            return Ok((Vec::new(), unread));
        }
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
}
