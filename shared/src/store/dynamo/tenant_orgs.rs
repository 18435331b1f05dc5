//! The tenant's orgs for the admin (`store::TenantOrgsStore`, docs/dynamodb.md "The admin
//! view"), from two partitions of the `subs` index, in org-id order:
//!
//! - orgs with a subscription: the partition `ORGSUBS` (the aggregation's list of org
//!   subscriptions, every tenant's) sorted by the org's `PK` `T#<tenant>#U#org#<org>`, so
//!   one `Query` of the tenant's key range reads them with their `sub` (projected);
//! - orgs with usage lately: every org member directory item (one per org, period and
//!   member bucket, gone a day after its period) carries `SUBS_PK = ORGS#<tenant>`,
//!   `SUBS_SK = <org>#<period start>#<bucket>`, set by the same update that notes a member
//!   (in the event's transaction: no extra request, no extra item), so one `Query` (keys
//!   only) reads the orgs of a page, up to 32 entries an org (16 buckets, two live periods),
//!   a few KB.
//!
//! A page is then two `Query`s (more only for a directory page beyond 1 MB or 1,000
//! entries), whatever the number of orgs.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};

use super::codec::{get_s, s, Item};
use super::errors::sdk_err;
use super::expressions::Update;
use super::orgs::{subscription_of, ORG_SUBS_PARTITION};
use super::{layout, DynamoStore};
use crate::domain::{OrgId, Subscription, TenantId};
use crate::store::{Page, StoreError, StoreResult, TenantOrg, TenantOrgsStore};

/// Entries read per directory `Query` page.
const DIRECTORY_PAGE: i32 = 1000;

fn listing_pk(tenant: &TenantId) -> String {
    format!("ORGS#{tenant}")
}

/// The `subs` index keys of an org member directory item (bucket `bucket`, period from
/// `start`). `#` sorts below every id character, so an org's entries sort together.
pub(super) fn listing_keys(
    tenant: &TenantId,
    org: &OrgId,
    start: DateTime<Utc>,
    bucket: &str,
) -> (String, String) {
    (
        listing_pk(tenant),
        format!(
            "{org}#{}#{bucket}",
            start.to_rfc3339_opts(SecondsFormat::Secs, true)
        ),
    )
}

/// Puts a directory item in the tenant's org listing (its note's update).
pub(super) fn listed(u: &mut Update, pk: &str, sk: &str) {
    u.set(layout::SUBS_PK, s(pk)).set(layout::SUBS_SK, s(sk));
}

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("tenant orgs: {what}"))
}

impl DynamoStore {
    /// Up to `limit` subscribed orgs after `after`; `true` when more may follow.
    async fn subscribed_orgs(
        &self,
        tenant: &TenantId,
        after: Option<&OrgId>,
        limit: usize,
    ) -> StoreResult<(BTreeMap<OrgId, Subscription>, bool)> {
        // Every org's key: `org_pk` of the org, `T#<tenant>#U#org#<org>`.
        let prefix = layout::user_pk(tenant, "org#");
        let lo = after.map_or_else(|| prefix.clone(), |a| format!("{prefix}{a}"));
        // `$` follows `#`: above every key of the tenant's orgs, below the next tenant's.
        let hi = format!("{}$", prefix.strip_suffix('#').unwrap_or(&prefix));
        let page = self
            .query()
            .index_name(layout::SUBS_INDEX)
            .key_condition_expression("#p = :p AND #s BETWEEN :lo AND :hi")
            .expression_attribute_names("#p", layout::SUBS_PK)
            .expression_attribute_names("#s", layout::SUBS_SK)
            .expression_attribute_names("#sub", layout::SUB)
            .expression_attribute_values(":p", s(ORG_SUBS_PARTITION))
            .expression_attribute_values(":lo", s(lo))
            .expression_attribute_values(":hi", s(hi))
            .projection_expression("#s, #sub")
            .limit(i32::try_from(limit.saturating_add(1).min(1000)).unwrap_or(1000))
            .send()
            .await
            .map_err(|e| sdk_err("Query", e))?;
        let more = page.last_evaluated_key().is_some_and(|k| !k.is_empty());
        let mut out = BTreeMap::new();
        for item in page.items() {
            let sk = get_s(item, layout::SUBS_SK).unwrap_or_default();
            let org = sk
                .strip_prefix(prefix.as_str())
                .and_then(|o| OrgId::parse(o).ok())
                .ok_or_else(|| corrupt(format!("org subscriptions key `{sk}`")))?;
            if after == Some(&org) {
                continue;
            }
            if let Some(sub) = subscription_of(item)? {
                out.insert(org, sub);
            }
        }
        Ok((out, more))
    }

    /// Up to `limit` orgs after `after` with a live member directory; `true` when more
    /// may follow.
    async fn directory_orgs(
        &self,
        tenant: &TenantId,
        after: Option<&OrgId>,
        limit: usize,
    ) -> StoreResult<(BTreeSet<OrgId>, bool)> {
        let mut orgs = BTreeSet::new();
        let mut start: Option<Item> = None;
        loop {
            let mut q = self
                .query()
                .index_name(layout::SUBS_INDEX)
                .expression_attribute_names("#p", layout::SUBS_PK)
                .expression_attribute_names("#s", layout::SUBS_SK)
                .expression_attribute_values(":p", s(listing_pk(tenant)))
                .projection_expression("#s")
                .limit(DIRECTORY_PAGE)
                .set_exclusive_start_key(start.take());
            q = match after {
                // `<org>$` is above every entry of that org, below the next org's.
                Some(a) => q
                    .key_condition_expression("#p = :p AND #s > :after")
                    .expression_attribute_values(":after", s(format!("{a}$"))),
                None => q.key_condition_expression("#p = :p"),
            };
            let page = q.send().await.map_err(|e| sdk_err("Query", e))?;
            for item in page.items() {
                let sk = get_s(item, layout::SUBS_SK).unwrap_or_default();
                let org = sk
                    .split_once('#')
                    .and_then(|(o, _)| OrgId::parse(o).ok())
                    .ok_or_else(|| corrupt(format!("org listing key `{sk}`")))?;
                orgs.insert(org);
            }
            let next = page.last_evaluated_key().filter(|k| !k.is_empty()).cloned();
            if orgs.len() > limit {
                while orgs.len() > limit {
                    orgs.pop_last();
                }
                return Ok((orgs, true));
            }
            match next {
                Some(k) => start = Some(k),
                None => return Ok((orgs, false)),
            }
        }
    }
}

#[async_trait]
impl TenantOrgsStore for DynamoStore {
    async fn list_tenant_orgs(
        &self,
        tenant: &TenantId,
        after: Option<&OrgId>,
        limit: usize,
    ) -> StoreResult<Page<TenantOrg>> {
        let (mut subs, subs_more) = self.subscribed_orgs(tenant, after, limit).await?;
        let (seen, seen_more) = self.directory_orgs(tenant, after, limit).await?;
        let all: BTreeSet<OrgId> = subs.keys().cloned().chain(seen).collect();
        let more = subs_more || seen_more || all.len() > limit;
        let items: Vec<TenantOrg> = all
            .into_iter()
            .take(limit)
            .map(|org| TenantOrg {
                subscription: subs.remove(&org),
                org,
            })
            .collect();
        let next = if more {
            items.last().map(|o| o.org.to_string())
        } else {
            None
        };
        Ok(Page { items, next })
    }
}
