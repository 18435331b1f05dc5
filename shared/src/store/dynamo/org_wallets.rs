//! Org wallets on DynamoDB (see [`crate::store::OrgWalletStore`], docs/dynamodb.md,
//! "Wallets"). An org's wallet is a wallet partition like a user's (head and grants); what
//! is new:
//!
//! - the check's `BatchGetItem` carries the org wallet's head as one more key;
//! - a reservation holding org credit keeps the org on the reservation (`co` in its
//!   inline map, `credit_org` on a spilled item), so that its close gives the credit back
//!   to the org's head in the close's transaction;
//! - an event the org pays for keeps its draws as `org_draws` on the event item (not
//!   `draws`: those are what the user's own wallet paid) and adds one item to the org's
//!   draw ledger (`<wallet pk>#DRAWS`, `SK = <timestamp>#<event id>`, expiring with the
//!   events), in the event's transaction: the org's invoices and burn read the ledger with
//!   one `Query`.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};

use super::codec::{get_s, n, s, Item};
use super::layout;
use super::prepaid::{credit_state_of, HEAD_SK};
use super::requests::key;
use super::wallets::wallet_pk;
use super::DynamoStore;
use crate::budgets::CounterWrite;
use crate::credits::{Draws, Subscriber};
use crate::domain::{Invoice, OrgId, Subscription, TenantId, UsageEvent, UserId};
use crate::store::{
    CreditState, EventDraws, InvoiceCharge, OrgClose, OrgWalletStore, PeriodPicker, PrepaidStore,
    RecordOutcome, StoreError, StoreResult, UserUsage,
};

/// The key, in a reservation's inline map, of the org whose wallet holds its credit.
pub(super) const INLINE_CREDIT_ORG: &str = "co";
/// The attribute, on a spilled reservation's item, of the org whose wallet holds its credit.
pub(super) const SPILLED_CREDIT_ORG: &str = "credit_org";
/// The event item's attribute holding the draws an org's wallet paid (JSON of [`Draws`]).
pub(super) const EVENT_ORG_DRAWS: &str = "org_draws";

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("org wallet: {what}"))
}

/// The org whose wallet holds a reservation's credit (from its inline map or spilled
/// item); `None`: the user's own wallet.
pub(super) fn credit_org_of(map_or_item: &Item) -> StoreResult<Option<OrgId>> {
    map_or_item
        .get(INLINE_CREDIT_ORG)
        .or_else(|| map_or_item.get(SPILLED_CREDIT_ORG))
        .and_then(|v| v.as_s().ok())
        .map(|o| OrgId::parse(o).map_err(corrupt))
        .transpose()
}

/// [`credit_org_of`] of an inline reservation's map attribute.
pub(super) fn credit_org_of_map(
    av: &aws_sdk_dynamodb::types::AttributeValue,
) -> StoreResult<Option<OrgId>> {
    match av.as_m() {
        Ok(m) => credit_org_of(m),
        Err(_) => Ok(None),
    }
}

/// The wallet head key of the wallet that holds a reservation's credit.
pub(super) fn credit_wallet_pk(tenant: &TenantId, user: &UserId, org: Option<&OrgId>) -> String {
    match org {
        Some(o) => wallet_pk(tenant, &Subscriber::Org(o.clone())),
        None => super::prepaid::user_wallet_pk(tenant, user),
    }
}

/// The partition of an org wallet's draw ledger.
fn ledger_pk(tenant: &TenantId, org: &OrgId) -> String {
    format!("{}#DRAWS", wallet_pk(tenant, &Subscriber::Org(org.clone())))
}

/// The ledger item of event `e`'s draws from `org`'s wallet.
pub(super) fn ledger_item(e: &UsageEvent, org: &OrgId, draws: &Draws) -> StoreResult<Item> {
    let mut item = Item::new();
    item.insert(layout::PK.into(), s(ledger_pk(&e.tenant, org)));
    item.insert(
        layout::SK.into(),
        s(format!(
            "{}#{}",
            layout::sortable(e.timestamp),
            e.event_id.as_str()
        )),
    );
    item.insert("event_id".into(), s(e.event_id.as_str()));
    item.insert("timestamp".into(), s(layout::sortable(e.timestamp)));
    item.insert(EVENT_ORG_DRAWS.into(), super::prepaid::draws_attr(draws)?);
    let expires = e.recorded_at + Duration::days(super::items::EVENT_RETENTION_DAYS);
    item.insert(layout::TTL.into(), n(expires.timestamp()));
    Ok(item)
}

#[async_trait]
impl OrgWalletStore for DynamoStore {
    async fn get_user_limits_with_wallets(
        &self,
        tenant: &TenantId,
        user: &UserId,
        org: Option<&OrgId>,
        pick: PeriodPicker<'_>,
    ) -> StoreResult<(UserUsage, CreditState, Option<CreditState>)> {
        let Some(org) = org else {
            let (usage, mine) = self.get_user_limits_with_credit(tenant, user, pick).await?;
            return Ok((usage, mine, None));
        };
        // One BatchGetItem: the state item and both wallet heads.
        let state_pk = layout::user_pk(tenant, user.as_str());
        let mine_pk = super::prepaid::user_wallet_pk(tenant, user);
        let org_pk = wallet_pk(tenant, &Subscriber::Org(org.clone()));
        let items = self
            .batch_get(
                vec![
                    key(state_pk.clone(), layout::STATE_SK),
                    key(mine_pk.clone(), HEAD_SK),
                    key(org_pk.clone(), HEAD_SK),
                ],
                true,
            )
            .await?;
        let (mut state, mut mine, mut theirs) = (Item::new(), Item::new(), Item::new());
        for item in items {
            match get_s(&item, layout::PK) {
                Some(pk) if pk == state_pk => state = item,
                Some(pk) if pk == mine_pk => mine = item,
                Some(pk) if pk == org_pk => theirs = item,
                _ => return Err(corrupt("a batch read returned an unasked item")),
            }
        }
        let usage = self.user_limits_of(tenant, user, state, pick).await?;
        Ok((
            usage,
            credit_state_of(&mine)?,
            Some(credit_state_of(&theirs)?),
        ))
    }

    async fn record_events_paying(
        &self,
        events: &[UsageEvent],
        writes: &[Vec<CounterWrite>],
        payers: &[Option<Subscriber>],
    ) -> StoreResult<Vec<RecordOutcome>> {
        if payers.len() != events.len() || (!writes.is_empty() && writes.len() != events.len()) {
            return Err(StoreError::Corrupt(
                "one payer and one list of counter writes per event are expected".to_owned(),
            ));
        }
        self.record_with(events, writes, payers).await
    }

    async fn wallet_draws(
        &self,
        tenant: &TenantId,
        wallet: &Subscriber,
        since: Option<DateTime<Utc>>,
    ) -> StoreResult<Vec<EventDraws>> {
        let org = match wallet {
            Subscriber::User(u) => return self.event_draws(tenant, u, since).await,
            Subscriber::Org(o) => o,
        };
        let pk = ledger_pk(tenant, org);
        // Timestamps sort as text: "0000-00-00" is before any of them (an empty key is
        // refused; moto also refuses a bare "0").
        let from = since.map_or_else(|| "0000-00-00".to_owned(), layout::sortable);
        let items = self
            .query_all(
                || {
                    self.query()
                        .key_condition_expression("#p = :p AND #s BETWEEN :from AND :to")
                        .expression_attribute_names("#p", layout::PK)
                        .expression_attribute_names("#s", layout::SK)
                        .expression_attribute_values(":p", s(pk.clone()))
                        .expression_attribute_values(":from", s(from.clone()))
                        .expression_attribute_values(":to", s("~"))
                        .consistent_read(true)
                },
                None,
            )
            .await?;
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            // A ledger item always keeps its draws.
            let d = super::prepaid::event_draws_of(&item, EVENT_ORG_DRAWS, wallet)?
                .ok_or_else(|| corrupt("no draws"))?;
            out.push(d);
        }
        Ok(out)
    }

    async fn close_org_period_charging(
        &self,
        org: &OrgId,
        invoice: &Invoice,
        next: &Subscription,
        expected_version: u64,
        charge: &InvoiceCharge,
    ) -> StoreResult<OrgClose> {
        let extra = self.charge_items(&next.tenant, charge)?;
        self.close_org_period_with(org, invoice, next, expected_version, &extra)
            .await
    }
}
