//! Tenant-wide reads of the admin view on the single table (docs/dynamodb.md, "The admin
//! view").
//!
//! - A tenant's users: the GSI `subs` already lists every user with a subscription or
//!   recorded usage in partition `SUBS`, sort key = the user's `PK`
//!   (`T#<tenant>#U#<user>`), so one `Query` with `begins_with(SUBS_SK, "T#<tenant>#U#")`
//!   pages the tenant's users in user-id order; one `BatchGetItem` then reads their state
//!   items (subscription, counters of every period, unread count — one item each).
//! - A tenant's latest alerts: every alert item also carries `SUBS_PK = ALERTS#<tenant>`,
//!   `SUBS_SK = <created_at, 9 fraction digits>#<alert id>`, a partition of the same
//!   `subs` index of its own (only keys are projected there, the alert has no `sub`), so
//!   one `Query` newest first and one `BatchGetItem` of the alert items read them.

use std::collections::{BTreeSet, HashMap};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};

use super::codec::{count_of, decimal_attr, from_item, get_s, s, Item};
use super::counters::period_usage;
use super::errors::{build_err, sdk_err};
use super::requests::{backoff, gave_up, key, MAX_ATTEMPTS};
use super::subscriptions::subscription_of;
use super::{keys, DynamoStore};
use crate::domain::{Alert, TenantId, UserId};
use crate::store::{
    DirectoryStore, Page, PeriodPicker, StoreError, StoreResult, TenantUser, UserUsage,
};

/// Keys of one `BatchGetItem`.
const BATCH_GET: usize = 100;

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

impl DynamoStore {
    /// The items with these keys (any order; missing ones left out), by `BatchGetItem`s
    /// of up to 100 keys, unprocessed keys retried with backoff. Eventually consistent.
    async fn batch_get(&self, wanted: Vec<Item>) -> StoreResult<Vec<Item>> {
        let mut out = Vec::with_capacity(wanted.len());
        for chunk in wanted.chunks(BATCH_GET) {
            let mut pending = KeysAndAttributes::builder()
                .set_keys(Some(chunk.to_vec()))
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

fn user_usage(item: &Item, pick: PeriodPicker<'_>) -> StoreResult<(UserUsage, u64)> {
    let subscription = subscription_of(item)?;
    let period = pick(subscription.as_ref());
    let usage = period_usage(item, period)?;
    let fired_alerts = match item.get(&keys::fired(period)) {
        Some(AttributeValue::Ss(k)) => k.iter().cloned().collect(),
        _ => BTreeSet::new(),
    };
    let unread = decimal_attr(item, keys::ALERTS_UNREAD)?;
    let unread = count_of(unread.max(rust_decimal::Decimal::ZERO), keys::ALERTS_UNREAD)?;
    Ok((
        UserUsage {
            subscription,
            period_start: Some(period),
            usage,
            fired_alerts,
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
            .batch_get(wanted)
            .await?
            .into_iter()
            .filter_map(|item| Some((get_s(&item, keys::PK)?.to_owned(), item)))
            .collect();
        let mut items = Vec::with_capacity(users.len());
        for user in users {
            // A user erased between the two reads has no state item any more: left out.
            let Some(state) = states.remove(&keys::user_pk(tenant, user.as_str())) else {
                continue;
            };
            let (usage, unread_alerts) = user_usage(&state, pick)?;
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
            .batch_get(wanted)
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
