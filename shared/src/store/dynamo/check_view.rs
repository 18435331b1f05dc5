//! The check's read over budgets on DynamoDB (docs/dynamodb.md, "The check's read"): one
//! consistent `BatchGetItem` of items whose keys follow from the call alone — the user's
//! state item, the wallet head when asked, the org's subscription item, the item of
//! every named scope (its budgets) and the counter items of those scopes (pooled, and the
//! user's as a member of the org and of the team). Which counters apply is decided after
//! the read ([`CounterPicker`]); their usage is taken from the items read.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;

use super::budget_counters::{counter_pk, counter_usage, COUNTER_SK};
use super::budgets::{budgets_of_scope_item, scope_item_key};
use super::codec::{get_s, Item};
use super::requests::key;
use super::{layout, orgs, prepaid, DynamoStore};
use crate::budgets::{CallScopes, CounterKey, Scope};
use crate::domain::TenantId;
use crate::store::{
    BudgetCounterStore, CheckView, CheckViewStore, CounterPicker, PeriodPicker, StoreResult,
    ViewPart,
};

/// The counter items a call may count on: each named scope's pooled item and, for an
/// org or a team, the user's item as its member.
fn counter_items(call: &CallScopes) -> Vec<String> {
    let mut out = Vec::new();
    for scope in call.scopes() {
        out.push(scope.key());
        if !matches!(scope, Scope::User { .. }) {
            out.push(format!("{}#member#{}", scope.key(), call.user()));
        }
    }
    out
}

#[async_trait]
impl CheckViewStore for DynamoStore {
    async fn read_view_part(
        &self,
        tenant: &TenantId,
        call: &CallScopes,
        part: ViewPart,
        pick: PeriodPicker<'_>,
    ) -> StoreResult<CheckView> {
        // Issue 18: an event batch's reads (store/dynamo/view_parts.rs).
        self.read_part(tenant, call, part, pick).await
    }

    async fn read_definitions(
        &self,
        tenant: &TenantId,
        user: &crate::domain::UserId,
        calls: &[CallScopes],
        pick: PeriodPicker<'_>,
    ) -> StoreResult<crate::store::CallDefinitions> {
        // Issue 18: all of a user's calls in one read (store/dynamo/batch_definitions.rs).
        self.read_batch_definitions(tenant, user, calls, pick).await
    }

    async fn read_check_view(
        &self,
        tenant: &TenantId,
        call: &CallScopes,
        with_credit: bool,
        pick: PeriodPicker<'_>,
        counters: CounterPicker<'_>,
    ) -> StoreResult<CheckView> {
        let user = call.user();
        let state_pk = layout::user_pk(tenant, user.as_str());
        let head_pk = prepaid::user_wallet_pk(tenant, user);
        let org_pk = call.org().map(|o| orgs::org_pk(tenant, o));
        let mut keys = vec![key(state_pk.clone(), layout::STATE_SK)];
        // Issue 19: the named org's wallet head too (a prepaid org plan pays from it).
        let org_head_pk = match (with_credit, call.org()) {
            (true, Some(org)) => Some(super::wallets::wallet_pk(
                tenant,
                &crate::credits::Subscriber::Org(org.clone()),
            )),
            _ => None,
        };
        if with_credit {
            keys.push(key(head_pk.clone(), prepaid::HEAD_SK));
        }
        if let Some(pk) = &org_head_pk {
            keys.push(key(pk.clone(), prepaid::HEAD_SK));
        }
        if let Some(pk) = &org_pk {
            keys.push(key(pk.clone(), orgs::ORG_SUB_SK));
        }
        let scopes = call.scopes();
        for scope in &scopes {
            keys.push(scope_item_key(tenant, scope));
        }
        let counter_pks: Vec<String> = counter_items(call)
            .iter()
            .map(|item| counter_pk(tenant, item))
            .collect();
        for pk in &counter_pks {
            keys.push(key(pk.clone(), COUNTER_SK));
        }
        // Every key is distinct: (PK, SK) pairs of different kinds never collide.
        let mut read: HashMap<(String, String), Item> = HashMap::new();
        for item in self.batch_get(keys, true).await? {
            let pk = get_s(&item, layout::PK).unwrap_or_default().to_owned();
            let sk = get_s(&item, layout::SK).unwrap_or_default().to_owned();
            read.insert((pk, sk), item);
        }
        let mut take = |pk: &str, sk: &str| read.remove(&(pk.to_owned(), sk.to_owned()));

        let state = take(&state_pk, layout::STATE_SK).unwrap_or_default();
        let credit = match with_credit {
            true => Some(prepaid::credit_state_of(
                &take(&head_pk, prepaid::HEAD_SK).unwrap_or_default(),
            )?),
            false => None,
        };
        let org_credit = match &org_head_pk {
            Some(pk) => Some(prepaid::credit_state_of(
                &take(pk, prepaid::HEAD_SK).unwrap_or_default(),
            )?),
            None => None,
        };
        let org_subscription = match &org_pk {
            Some(pk) => match take(pk, orgs::ORG_SUB_SK) {
                Some(item) => orgs::subscription_of(&item)?,
                None => None,
            },
            None => None,
        };
        let mut scope_items = Vec::with_capacity(scopes.len());
        for scope in &scopes {
            let k = scope_item_key(tenant, scope);
            let (pk, sk) = (
                get_s(&k, layout::PK).unwrap_or_default().to_owned(),
                get_s(&k, layout::SK).unwrap_or_default().to_owned(),
            );
            scope_items.push(take(&pk, &sk));
        }
        let mut counter_read: HashMap<String, Item> = HashMap::new();
        for pk in &counter_pks {
            if let Some(item) = take(pk, COUNTER_SK) {
                self.stale.note(pk, &item);
                counter_read.insert(pk.clone(), item);
            }
        }

        // Decoding (a closed period of the user's may take one more read).
        let user_usage = self.user_limits_of(tenant, user, state, pick).await?;
        let mut budgets = Vec::new();
        for (scope, item) in scopes.iter().zip(&scope_items) {
            let listed = budgets_of_scope_item(scope, item.as_ref())?;
            budgets.extend(self.with_legacy_budgets(tenant, scope, listed).await?);
        }
        let wanted = counters(&user_usage, org_subscription.as_ref(), &budgets);
        let mut out: BTreeMap<CounterKey, crate::usage::PeriodUsage> = BTreeMap::new();
        let mut elsewhere = Vec::new();
        for c in wanted {
            let (item, _) = super::budget_counters::place_of(&c.key())?;
            if counter_pks.contains(&counter_pk(tenant, &item)) {
                let usage = counter_usage(tenant, &counter_read, &c)?;
                out.insert(c, usage);
            } else {
                elsewhere.push(c);
            }
        }
        if !elsewhere.is_empty() {
            // Not a counter of the named scopes (no caller asks for one): read it.
            let usage = self.get_budget_counters(tenant, &elsewhere).await?;
            out.extend(elsewhere.into_iter().zip(usage));
        }
        Ok(CheckView {
            user: user_usage,
            credit,
            org_credit,
            org_subscription,
            budgets,
            counters: out,
        })
    }
}
