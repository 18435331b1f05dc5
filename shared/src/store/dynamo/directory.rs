//! Tenant-wide reads of the admin view on the single table (docs/dynamodb.md, "The admin
//! view").
//!
//! - A tenant's users: the GSI `subs` already lists every user with a subscription or
//!   recorded usage in partition `SUBS`, sort key = the user's `PK`
//!   (`T#<tenant>#U#<user>`), so one `Query` with `begins_with(SUBS_SK, "T#<tenant>#U#")`
//!   pages the tenant's users in user-id order; one `BatchGetItem` then reads their state
//!   items (subscription, the open periods' limit counters, unread count — one item each).
//! - A tenant's latest alerts: every alert item also carries `SUBS_PK = ALERTS#<tenant>`,
//!   `SUBS_SK = <created_at, 9 fraction digits>#<alert id>`, a partition of the same
//!   `subs` index of its own (only keys are projected there, the alert has no `sub`), so
//!   one `Query` newest first and one `BatchGetItem` of the alert items read them.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};

use super::codec::{count_of, decimal_attr, from_item, get_s, s, Item};
use super::errors::sdk_err;
use super::period_items::UserItems;
use super::requests::key;
use super::subscriptions::subscription_of;
use super::{keys, DynamoStore};
use crate::domain::{Alert, TenantId, UserId};
use crate::store::{
    DirectoryStore, Page, PeriodPicker, StoreError, StoreResult, TenantUser, UserUsage,
};

/// The `subs` partition of a tenant's alert feed.
pub fn alert_feed_pk(tenant: &TenantId) -> String {
    format!("ALERTS#{tenant}")
}

/// The feed keys every alert item carries (added by `records::alert_item`).
pub fn alert_feed_keys(a: &Alert) -> [(String, AttributeValue); 2] {
    [
        (keys::SUBS_PK.to_owned(), s(alert_feed_pk(&a.tenant))),
        (
            keys::SUBS_SK.to_owned(),
            s(format!("{}#{}", keys::sortable(a.created_at), a.id)),
        ),
    ]
}

fn user_usage(items: &UserItems, period: DateTime<Utc>) -> StoreResult<(UserUsage, u64)> {
    let subscription = subscription_of(&items.state)?;
    let unread = decimal_attr(&items.state, keys::ALERTS_UNREAD)?;
    let unread = count_of(unread.max(rust_decimal::Decimal::ZERO), keys::ALERTS_UNREAD)?;
    Ok((
        UserUsage {
            subscription,
            period_start: Some(period),
            usage: items.limits(period)?,
            fired_alerts: items.fired(period),
            user_budgets: false,
        },
        unread,
    ))
}

#[async_trait]
impl DirectoryStore for DynamoStore {
    async fn list_tenant_users(
        &self,
        tenant: &TenantId,
        after: Option<&UserId>,
        limit: usize,
        pick: PeriodPicker<'_>,
    ) -> StoreResult<Page<TenantUser>> {
        let prefix = keys::user_pk(tenant, "");
        // The key of the last user listed, as the index's start key: index keys and the
        // table's keys of its state item.
        let start = after.map(|u| {
            let pk = keys::user_pk(tenant, u.as_str());
            let mut k = key(pk.clone(), keys::STATE_SK);
            k.insert(keys::SUBS_PK.to_owned(), s(keys::SUBS_PARTITION));
            k.insert(keys::SUBS_SK.to_owned(), s(pk));
            k
        });
        let page = self
            .query()
            .index_name(keys::SUBS_INDEX)
            .key_condition_expression("#p = :p AND begins_with(#s, :prefix)")
            .expression_attribute_names("#p", keys::SUBS_PK)
            .expression_attribute_names("#s", keys::SUBS_SK)
            .expression_attribute_values(":p", s(keys::SUBS_PARTITION))
            .expression_attribute_values(":prefix", s(prefix))
            .projection_expression("#s")
            .limit(i32::try_from(limit.clamp(1, 1000)).unwrap_or(1000))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| sdk_err("Query", e))?;
        let more = page.last_evaluated_key().is_some_and(|k| !k.is_empty());
        let mut users = Vec::new();
        for item in page.items() {
            let sk = get_s(item, keys::SUBS_SK).unwrap_or_default();
            let (_, user) = keys::parse_user_pk(sk)
                .ok_or_else(|| StoreError::Corrupt(format!("users index key `{sk}`")))?;
            users.push(user);
        }
        let wanted = users
            .iter()
            .map(|u| key(keys::user_pk(tenant, u.as_str()), keys::STATE_SK))
            .collect();
        let mut states: HashMap<String, Item> = self
            .batch_get(wanted, false)
            .await?
            .into_iter()
            .filter_map(|item| Some((get_s(&item, keys::PK)?.to_owned(), item)))
            .collect();
        // The period each user's subscription picks; a closed one's counters are on its
        // period item (a second read, only for those).
        let mut picked = Vec::with_capacity(users.len());
        for user in users {
            // A user erased between the two reads has no state item any more: left out.
            let Some(state) = states.remove(&keys::user_pk(tenant, user.as_str())) else {
                continue;
            };
            let items = UserItems {
                state,
                periods: Default::default(),
            };
            let period = pick(subscription_of(&items.state)?.as_ref());
            picked.push((user, items, period));
        }
        let closed: Vec<Item> = picked
            .iter()
            .filter(|(_, items, period)| items.closed(*period))
            .map(|(u, _, period)| key(keys::user_pk(tenant, u.as_str()), keys::period_sk(*period)))
            .collect();
        if !closed.is_empty() {
            for item in self.batch_get(closed, false).await? {
                let (Some(pk), Some(start)) = (
                    get_s(&item, keys::PK).map(str::to_owned),
                    get_s(&item, keys::SK).and_then(keys::parse_period_sk),
                ) else {
                    continue;
                };
                if let Some((_, items, _)) = picked
                    .iter_mut()
                    .find(|(u, _, _)| keys::user_pk(tenant, u.as_str()) == pk)
                {
                    items.periods.insert(start, item);
                }
            }
        }
        let mut items = Vec::with_capacity(picked.len());
        for (user, state, period) in picked {
            let (usage, unread_alerts) = user_usage(&state, period)?;
            items.push(TenantUser {
                user,
                usage,
                unread_alerts,
            });
        }
        let next = if more {
            items.last().map(|u| u.user.to_string())
        } else {
            None
        };
        Ok(Page { items, next })
    }

    async fn tenant_alerts(&self, tenant: &TenantId, limit: usize) -> StoreResult<Vec<Alert>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let entries = self
            .query_all(
                || {
                    self.query()
                        .index_name(keys::SUBS_INDEX)
                        .key_condition_expression("#p = :p")
                        .expression_attribute_names("#p", keys::SUBS_PK)
                        .expression_attribute_values(":p", s(alert_feed_pk(tenant)))
                        .scan_index_forward(false)
                        .limit(i32::try_from(limit.min(1000)).unwrap_or(1000))
                },
                Some(limit),
            )
            .await?;
        let wanted = entries
            .iter()
            .filter_map(|e| Some(key(get_s(e, keys::PK)?, keys::ALERT_SK)))
            .collect();
        let mut alerts = self
            .batch_get(wanted, false)
            .await?
            .iter()
            .map(from_item::<Alert>)
            .collect::<StoreResult<Vec<_>>>()?;
        alerts.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
        Ok(alerts)
    }

    async fn get_alert(&self, tenant: &TenantId, alert_id: &str) -> StoreResult<Option<Alert>> {
        self.get_item(keys::alert_pk(tenant, alert_id), keys::ALERT_SK, &[])
            .await?
            .map(|item| from_item(&item))
            .transpose()
    }
}
