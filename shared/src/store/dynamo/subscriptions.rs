//! Subscriptions, on the user state item (`sub`, versioned by `sub_version`), and the
//! users the aggregation pages through (the sparse GSI `subs`).

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;

use super::codec::{av_to_json, get_s, json_to_av, n, s, Item};
use super::expressions::Update;
use super::layout;
use super::DynamoStore;
use crate::domain::{Subscription, TenantId, UserId};
use crate::store::{Page, StoreError, StoreResult, SubscriptionStore, UserRef};

pub(super) fn subscription_of(item: &Item) -> StoreResult<Option<Subscription>> {
    match item.get(layout::SUB) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(av) => serde_json::from_value(av_to_json(av)?)
            .map(Some)
            .map_err(|e| StoreError::Corrupt(format!("subscription: {e}"))),
    }
}

#[async_trait]
impl SubscriptionStore for DynamoStore {
    async fn get_subscription(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> StoreResult<Option<Subscription>> {
        subscription_of(&self.get_state(tenant, user, &[layout::SUB]).await?)
    }

    async fn put_subscription(
        &self,
        sub: &Subscription,
        expected_version: Option<u64>,
    ) -> StoreResult<()> {
        let pk = layout::user_pk(&sub.tenant, sub.user.as_str());
        let json = serde_json::to_value(sub).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut u = Update::new();
        u.set(layout::SUB, json_to_av(&json))
            .set(layout::SUB_VERSION, n(sub.version))
            .set(layout::SUBS_PK, s(layout::SUBS_PARTITION))
            .set(layout::SUBS_SK, s(pk.clone()));
        u.condition(|x| {
            let v = x.name(layout::SUB_VERSION);
            match expected_version {
                None => format!("attribute_not_exists({v})"),
                Some(expected) => format!("{v} = {}", x.value(n(expected))),
            }
        });
        match self.update(pk, layout::STATE_SK, &u, false).await? {
            Ok(()) => Ok(()),
            Err(_) => Err(StoreError::VersionConflict),
        }
    }

    async fn list_users(&self, cursor: Option<String>, limit: usize) -> StoreResult<Page<UserRef>> {
        let (page, next) = self
            .index_page(
                layout::SUBS_INDEX,
                layout::SUBS_PK,
                layout::SUBS_PARTITION,
                cursor.as_deref(),
                limit,
            )
            .await?;
        let mut items = Vec::new();
        for item in &page {
            let sk = get_s(item, layout::SUBS_SK).unwrap_or_default();
            let (tenant, user) = layout::parse_user_pk(sk)
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
