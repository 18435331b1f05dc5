//! An event batch's reads over budgets on DynamoDB (issue 18, SPEC §12: a batch is one
//! `TransactWriteItems` per ≤ 100 items plus at most 2 reads; docs/dynamodb.md, "The
//! check's read"): one consistent `BatchGetItem` each, of the user's state item and
//!
//! - before the write ([`ViewPart::Definitions`]): the org's subscription item and the
//!   scope items of the named scopes (their budgets), not the counter items (the write
//!   needs no usage);
//! - after it ([`ViewPart::Counters`]): the counter items the given counters are on
//!   (any scope), not the definitions.
//!
//! Each key is read for something: the units are those of the items that matter.

use std::collections::HashMap;

use super::budget_counters::{counter_pk, counter_usage, place_of, COUNTER_SK};
use super::budgets::{budgets_of_scope_item, scope_item_key};
use super::codec::{get_s, Item};
use super::requests::key;
use super::{layout, orgs, DynamoStore};
use crate::budgets::CallScopes;
use crate::domain::TenantId;
use crate::store::{CheckView, PeriodPicker, StoreResult, ViewPart};

impl DynamoStore {
    /// [`crate::store::CheckViewStore::read_view_part`] on DynamoDB.
    pub(super) async fn read_part(
        &self,
        tenant: &TenantId,
        call: &CallScopes,
        part: ViewPart,
        pick: PeriodPicker<'_>,
    ) -> StoreResult<CheckView> {
        let user = call.user();
        let state_pk = layout::user_pk(tenant, user.as_str());
        let mut keys = vec![key(state_pk.clone(), layout::STATE_SK)];
        let org_pk = call.org().map(|o| orgs::org_pk(tenant, o));
        let scopes = call.scopes();
        let mut counter_pks = Vec::new();
        match &part {
            ViewPart::Definitions => {
                if let Some(pk) = &org_pk {
                    keys.push(key(pk.clone(), orgs::ORG_SUB_SK));
                }
                keys.extend(scopes.iter().map(|s| scope_item_key(tenant, s)));
            }
            ViewPart::Counters(wanted) => {
                for c in wanted {
                    let (item, _) = place_of(&c.key())?;
                    let pk = counter_pk(tenant, &item);
                    if !counter_pks.contains(&pk) {
                        keys.push(key(pk.clone(), COUNTER_SK));
                        counter_pks.push(pk);
                    }
                }
            }
        }
        let mut read: HashMap<(String, String), Item> = HashMap::new();
        for item in self.batch_get(keys, true).await? {
            let pk = get_s(&item, layout::PK).unwrap_or_default().to_owned();
            let sk = get_s(&item, layout::SK).unwrap_or_default().to_owned();
            read.insert((pk, sk), item);
        }
        let mut take = |pk: &str, sk: &str| read.remove(&(pk.to_owned(), sk.to_owned()));
        let state = take(&state_pk, layout::STATE_SK).unwrap_or_default();
        let mut view = CheckView::default();
        match part {
            ViewPart::Definitions => {
                if let Some(pk) = &org_pk {
                    if let Some(item) = take(pk, orgs::ORG_SUB_SK) {
                        view.org_subscription = orgs::subscription_of(&item)?;
                    }
                }
                let mut scope_items = Vec::with_capacity(scopes.len());
                for scope in &scopes {
                    let k = scope_item_key(tenant, scope);
                    let (pk, sk) = (
                        get_s(&k, layout::PK).unwrap_or_default().to_owned(),
                        get_s(&k, layout::SK).unwrap_or_default().to_owned(),
                    );
                    scope_items.push(take(&pk, &sk));
                }
                for (scope, item) in scopes.iter().zip(&scope_items) {
                    let listed = budgets_of_scope_item(scope, item.as_ref())?;
                    view.budgets
                        .extend(self.with_legacy_budgets(tenant, scope, listed).await?);
                }
            }
            ViewPart::Counters(wanted) => {
                let mut items: HashMap<String, Item> = HashMap::new();
                for pk in &counter_pks {
                    if let Some(item) = take(pk, COUNTER_SK) {
                        self.stale.note(pk, &item);
                        items.insert(pk.clone(), item);
                    }
                }
                for c in wanted {
                    let usage = counter_usage(tenant, &items, &c)?;
                    view.counters.insert(c, usage);
                }
            }
        }
        // Decoding the state (a closed period of the user's may take one more read).
        view.user = self.user_limits_of(tenant, user, state, pick).await?;
        Ok(view)
    }
}
