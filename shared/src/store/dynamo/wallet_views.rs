//! The views of wallets on the single table (see [`crate::store::WalletViewsStore`],
//! docs/dynamodb.md "The admin view"):
//!
//! - a user's draws: the user's events in the `by_user` index (one `Query`, as the export
//!   reads them), each keeping `draws` (the user's wallet paid) or `org_draws` (the wallet
//!   of the org the event names paid);
//! - the tenant's wallets: a wallet's head carries `SUBS_PK = WALLETS#<tenant>` and
//!   `SUBS_SK = <user|org>/<id>`, set by every grant PUT, so one `Query` of the `subs`
//!   index pages the tenant's wallets in key order (keys only) and one `BatchGetItem` reads
//!   their heads (figures and low-balance level, one item each).

use async_trait::async_trait;

use super::codec::{decimal_of, get_s, s, Item};
use super::errors::sdk_err;
use super::expressions::Update;
use super::layout;
use super::prepaid::{credit_state_of, event_draws_of, EVENT_DRAWS, HEAD_SK};
use super::requests::key;
use super::wallets::{wallet_pk, LOW_BALANCE};
use super::DynamoStore;
use crate::credits::Subscriber;
use crate::domain::{OrgId, TenantId, UserId};
use crate::store::{EventDraws, Page, StoreError, StoreResult, WalletSummary, WalletViewsStore};

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("wallet views: {what}"))
}

/// The `subs` index partition listing a tenant's wallets.
fn listing_pk(tenant: &TenantId) -> String {
    format!("WALLETS#{tenant}")
}

/// Puts the wallet's head in the tenant's listing (a grant PUT's head update).
pub(super) fn listed(head: &mut Update, tenant: &TenantId, wallet: &Subscriber) {
    head.set(layout::SUBS_PK, s(listing_pk(tenant)))
        .set(layout::SUBS_SK, s(wallet.to_string()));
}

/// The draws an event item keeps, naming the wallet that paid: `draws` the user's,
/// `org_draws` the org's the event names.
fn draws_of_event(item: &Item, user: &Subscriber) -> StoreResult<Vec<EventDraws>> {
    let mut out = Vec::new();
    if let Some(d) = event_draws_of(item, EVENT_DRAWS, user)? {
        out.push(d);
    }
    if item.contains_key(super::org_wallets::EVENT_ORG_DRAWS) {
        let org = get_s(item, "org_id")
            .ok_or_else(|| corrupt("org draws on an event naming no org"))
            .and_then(|o| OrgId::parse(o).map_err(corrupt))?;
        if let Some(d) = event_draws_of(
            item,
            super::org_wallets::EVENT_ORG_DRAWS,
            &Subscriber::Org(org),
        )? {
            out.push(d);
        }
    }
    Ok(out)
}

#[async_trait]
impl WalletViewsStore for DynamoStore {
    async fn user_event_draws(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> StoreResult<Vec<EventDraws>> {
        let own = Subscriber::User(user.clone());
        let pk = layout::user_pk(tenant, user.as_str());
        let items = self
            .query_all(
                || {
                    self.query()
                        .index_name(layout::USER_INDEX)
                        .key_condition_expression("#u = :u AND begins_with(#s, :e)")
                        .expression_attribute_names("#u", layout::USER_PK)
                        .expression_attribute_names("#s", layout::USER_SK)
                        .expression_attribute_values(":u", s(pk.clone()))
                        .expression_attribute_values(":e", s("EVENT#"))
                },
                None,
            )
            .await?;
        let mut out = Vec::new();
        for item in &items {
            out.extend(draws_of_event(item, &own)?);
        }
        out.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.event_id.cmp(&b.event_id)));
        Ok(out)
    }

    async fn list_wallets(
        &self,
        tenant: &TenantId,
        after: Option<&Subscriber>,
        limit: usize,
    ) -> StoreResult<Page<WalletSummary>> {
        let listing = listing_pk(tenant);
        // The last wallet listed, as the index's start key: its index keys and its head's.
        let start = after.map(|w| {
            let mut k = key(wallet_pk(tenant, w), HEAD_SK);
            k.insert(layout::SUBS_PK.to_owned(), s(listing.clone()));
            k.insert(layout::SUBS_SK.to_owned(), s(w.to_string()));
            k
        });
        let page = self
            .query()
            .index_name(layout::SUBS_INDEX)
            .key_condition_expression("#p = :p")
            .expression_attribute_names("#p", layout::SUBS_PK)
            .expression_attribute_values(":p", s(listing))
            .limit(i32::try_from(limit.clamp(1, 1000)).unwrap_or(1000))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| sdk_err("Query", e))?;
        let more = page.last_evaluated_key().is_some_and(|k| !k.is_empty());
        let mut wallets = Vec::new();
        for item in page.items() {
            let sk = get_s(item, layout::SUBS_SK).ok_or_else(|| corrupt("no listing key"))?;
            wallets.push(sk.parse::<Subscriber>().map_err(corrupt)?);
        }
        let wanted = wallets
            .iter()
            .map(|w| key(wallet_pk(tenant, w), HEAD_SK))
            .collect();
        let heads = self.batch_get(wanted, false).await?;
        let last = wallets.last().map(ToString::to_string);
        let mut items = Vec::with_capacity(wallets.len());
        for wallet in wallets {
            let pk = wallet_pk(tenant, &wallet);
            let Some(head) = heads
                .iter()
                .find(|h| get_s(h, layout::PK) == Some(pk.as_str()))
            else {
                continue;
            };
            items.push(WalletSummary {
                credit: credit_state_of(head)?,
                low_balance_usd: head.get(LOW_BALANCE).map(decimal_of).transpose()?,
                wallet,
            });
        }
        let next = if more { last } else { None };
        Ok(Page { items, next })
    }
}
