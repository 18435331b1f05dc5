//! Org subscriptions: one item per org, `PK = T#<tenant>#U#org#<org_id>`, `SK = ORGSUB`
//! (`sub` as a map, versioned by `sub_version`), listed for the aggregation in the sparse
//! GSI `subs` under its own partition `ORGSUBS`. The org's invoices are ordinary invoice
//! items in the same partition (`SK = INV#<period start>`, see `items::invoice_item`):
//! `org#<org_id>` is not a user id (`#`), so no user's partition can be the same.
//!
//! Closing a period is one `TransactWriteItems` of two items in that partition: the
//! invoice put under `attribute_not_exists(PK)` and the subscription update under its
//! version.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;

use super::codec::{av_to_json, get_s, json_to_av, n, s, Item};
use super::expressions::Update;
use super::items::invoice_item;
use super::requests::any_condition_failed;
use super::{layout, DynamoStore};
use crate::domain::{Invoice, OrgId, Subscription, TenantId};
use crate::store::{org_subscriber, OrgClose, OrgRef, OrgStore, Page, StoreError, StoreResult};

/// The sort key of an org's subscription item.
pub const ORG_SUB_SK: &str = "ORGSUB";
/// The `subs` index partition of org subscription items.
pub const ORG_SUBS_PARTITION: &str = "ORGSUBS";

pub(super) fn org_pk(tenant: &TenantId, org: &OrgId) -> String {
    layout::user_pk(tenant, &org_subscriber(org))
}

/// `(tenant, org)` of an org partition key.
fn parse_org_pk(pk: &str) -> Option<(TenantId, OrgId)> {
    let rest = pk.strip_prefix("T#")?;
    let (tenant, org) = rest.split_once("#U#org#")?;
    Some((TenantId::parse(tenant).ok()?, OrgId::parse(org).ok()?))
}

pub(super) fn subscription_of(item: &Item) -> StoreResult<Option<Subscription>> {
    match item.get(layout::SUB) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(av) => serde_json::from_value(av_to_json(av)?)
            .map(Some)
            .map_err(|e| StoreError::Corrupt(format!("org subscription: {e}"))),
    }
}

/// The update writing `sub` under `expected` (`None`: the item must not hold one).
fn sub_update(pk: &str, sub: &Subscription, expected: Option<u64>) -> StoreResult<Update> {
    let json = serde_json::to_value(sub).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let mut u = Update::new();
    u.set(layout::SUB, json_to_av(&json))
        .set(layout::SUB_VERSION, n(sub.version))
        .set(layout::SUBS_PK, s(ORG_SUBS_PARTITION))
        .set(layout::SUBS_SK, s(pk));
    u.condition(|x| {
        let v = x.name(layout::SUB_VERSION);
        match expected {
            None => format!("attribute_not_exists({v})"),
            Some(expected) => format!("{v} = {}", x.value(n(expected))),
        }
    });
    Ok(u)
}

#[async_trait]
impl OrgStore for DynamoStore {
    async fn get_org_subscription(
        &self,
        tenant: &TenantId,
        org: &OrgId,
    ) -> StoreResult<Option<Subscription>> {
        let item = self
            .get_item(org_pk(tenant, org), ORG_SUB_SK, &[layout::SUB])
            .await?;
        item.as_ref().map_or(Ok(None), subscription_of)
    }

    async fn put_org_subscription(
        &self,
        org: &OrgId,
        sub: &Subscription,
        expected_version: Option<u64>,
    ) -> StoreResult<()> {
        let pk = org_pk(&sub.tenant, org);
        let u = sub_update(&pk, sub, expected_version)?;
        match self.update(pk, ORG_SUB_SK, &u, false).await? {
            Ok(()) => Ok(()),
            Err(_) => Err(StoreError::VersionConflict),
        }
    }

    async fn list_org_subscriptions(
        &self,
        cursor: Option<String>,
        limit: usize,
    ) -> StoreResult<Page<OrgRef>> {
        let (page, next) = self
            .index_page(
                layout::SUBS_INDEX,
                layout::SUBS_PK,
                ORG_SUBS_PARTITION,
                cursor.as_deref(),
                limit,
            )
            .await?;
        let mut items = Vec::new();
        for item in &page {
            let sk = get_s(item, layout::SUBS_SK).unwrap_or_default();
            let (tenant, org) = parse_org_pk(sk)
                .ok_or_else(|| StoreError::Corrupt(format!("org subscriptions key `{sk}`")))?;
            if let Some(subscription) = subscription_of(item)? {
                items.push(OrgRef {
                    tenant,
                    org,
                    subscription,
                });
            }
        }
        Ok(Page { items, next })
    }

    async fn close_org_period(
        &self,
        org: &OrgId,
        invoice: &Invoice,
        next: &Subscription,
        expected_version: u64,
    ) -> StoreResult<OrgClose> {
        self.close_org_period_with(org, invoice, next, expected_version, &[])
            .await
    }

    async fn list_org_invoices(&self, tenant: &TenantId, org: &OrgId) -> StoreResult<Vec<Invoice>> {
        let items = self
            .query_prefix(org_pk(tenant, org), layout::INVOICE_PREFIX, false)
            .await?;
        items.iter().map(super::codec::from_item).collect()
    }
}

impl DynamoStore {
    /// [`OrgStore::close_org_period`], with `extra` items in its transaction (issue 19:
    /// the org wallet's charge, `org_wallets`); any failing condition is `Changed`.
    pub(super) async fn close_org_period_with(
        &self,
        org: &OrgId,
        invoice: &Invoice,
        next: &Subscription,
        expected_version: u64,
        extra: &[aws_sdk_dynamodb::types::TransactWriteItem],
    ) -> StoreResult<OrgClose> {
        let pk = org_pk(&next.tenant, org);
        let committed = self
            .transact_until_decided("closing an org period", || {
                let u = sub_update(&pk, next, Some(expected_version))?;
                let mut tx = vec![
                    self.tx_update(pk.clone(), ORG_SUB_SK, &u)?,
                    self.tx_put(invoice_item(invoice)?, true)?,
                ];
                tx.extend(extra.iter().cloned());
                Ok(tx)
            })
            .await?;
        Ok(match committed {
            Ok(()) => OrgClose::Closed,
            Err(reasons) if any_condition_failed(&reasons) => OrgClose::Changed,
            Err(_) => OrgClose::Changed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn org_keys_round_trip_and_differ_from_users() {
        let t = TenantId::parse("acme-tenant").unwrap();
        let o = OrgId::parse("acme").unwrap();
        let pk = org_pk(&t, &o);
        assert_eq!(pk, "T#acme-tenant#U#org#acme");
        assert_eq!(parse_org_pk(&pk), Some((t, o)));
        // No user id contains `#`, so no user partition parses as this one.
        assert!(layout::parse_user_pk(&pk).is_none());
    }
}
