//! The definitions an event batch's write needs, for every call one user's events make,
//! in one read on DynamoDB (issue 18, SPEC §12: a batch is one `TransactWriteItems` per
//! ≤ 100 items plus at most 2 reads; docs/dynamodb.md, "The check's read"): one
//! consistent `BatchGetItem` of the user's state item, the subscription item of each
//! named org and the scope item (its budgets) of each distinct named scope. Keys past
//! 100 (a user's batch naming about 30 orgs with a team each) take one more request per
//! 100 keys. In the room the last request has left, the counter items of the org reads
//! that this process has not read today go too, for their ended windows alone
//! (`stale_windows::Sweeps`): the batch's write removes them.

use std::collections::{BTreeSet, HashMap};

use super::budget_counters::{counter_pk, place_of, COUNTER_SK};
use super::budgets::{budgets_of_scope_item, scope_item_key};
use super::codec::{get_s, Item};
use super::requests::{key, BATCH_GET};
use super::{layout, orgs, DynamoStore};
use crate::budgets::{CallScopes, CounterKey, Scope, Window};
use crate::domain::{OrgId, TenantId, UserId};
use crate::store::{CallDefinitions, PeriodPicker, StoreResult};

fn pk_sk(item: &Item) -> (String, String) {
    (
        get_s(item, layout::PK).unwrap_or_default().to_owned(),
        get_s(item, layout::SK).unwrap_or_default().to_owned(),
    )
}

impl DynamoStore {
    /// [`crate::store::CheckViewStore::read_definitions`] on DynamoDB.
    pub(super) async fn read_batch_definitions(
        &self,
        tenant: &TenantId,
        user: &UserId,
        calls: &[CallScopes],
        pick: PeriodPicker<'_>,
    ) -> StoreResult<CallDefinitions> {
        let own = [CallScopes::user_only(user.clone())];
        let calls = if calls.is_empty() { &own[..] } else { calls };
        let state_pk = layout::user_pk(tenant, user.as_str());
        let mut keys = vec![key(state_pk.clone(), layout::STATE_SK)];
        let named_orgs: BTreeSet<OrgId> = calls.iter().filter_map(|c| c.org().cloned()).collect();
        for org in &named_orgs {
            keys.push(key(orgs::org_pk(tenant, org), orgs::ORG_SUB_SK));
        }
        let mut scopes: Vec<Scope> = Vec::new();
        for call in calls {
            for scope in call.scopes() {
                if !scopes.contains(&scope) {
                    keys.push(scope_item_key(tenant, &scope));
                    scopes.push(scope);
                }
            }
        }
        let room = (BATCH_GET - keys.len() % BATCH_GET) % BATCH_GET;
        let swept = self.counters_due_for_a_sweep(tenant, calls, room)?;
        keys.extend(swept.iter().map(|pk| key(pk.clone(), COUNTER_SK)));
        let mut read: HashMap<(String, String), Item> = HashMap::new();
        for item in self.batch_get(keys, true).await? {
            let (pk, sk) = pk_sk(&item);
            if sk == COUNTER_SK && swept.contains(&pk) {
                self.stale.note(&pk, &item);
                continue;
            }
            read.insert((pk, sk), item);
        }
        let mut take = |pk: &str, sk: &str| read.remove(&(pk.to_owned(), sk.to_owned()));
        let state = take(&state_pk, layout::STATE_SK).unwrap_or_default();
        let mut out = CallDefinitions::default();
        for org in named_orgs {
            let sub = match take(&orgs::org_pk(tenant, &org), orgs::ORG_SUB_SK) {
                Some(item) => orgs::subscription_of(&item)?,
                None => None,
            };
            out.org_subscriptions.insert(org, sub);
        }
        let mut scope_items = Vec::with_capacity(scopes.len());
        for scope in &scopes {
            let (pk, sk) = pk_sk(&scope_item_key(tenant, scope));
            scope_items.push(take(&pk, &sk));
        }
        for (scope, item) in scopes.iter().zip(&scope_items) {
            let listed = budgets_of_scope_item(scope, item.as_ref())?;
            out.budgets
                .extend(self.with_legacy_budgets(tenant, scope, listed).await?);
        }
        // Decoding the state (a closed period of the user's may take one more read).
        out.user = self.user_limits_of(tenant, user, state, pick).await?;
        Ok(out)
    }

    /// Up to `room` counter items of the org reads of `calls` (the org's, the member's
    /// and the team's) due for a read of their stale windows, by `PK`.
    fn counters_due_for_a_sweep(
        &self,
        tenant: &TenantId,
        calls: &[CallScopes],
        room: usize,
    ) -> StoreResult<BTreeSet<String>> {
        let mut due = BTreeSet::new();
        for call in calls {
            let Some(org) = call.org() else { continue };
            let org_scope = Scope::Org {
                org_id: org.clone(),
            };
            // The window is not part of the item: any start names it.
            let (window, window_start) = (Window::Period, chrono::DateTime::UNIX_EPOCH);
            let mut counters = vec![
                CounterKey::Scope {
                    scope: org_scope.clone(),
                    window,
                    window_start,
                },
                CounterKey::Member {
                    scope: org_scope,
                    user: call.user().clone(),
                    window,
                    window_start,
                },
            ];
            if let Some(team) = call.team() {
                counters.push(CounterKey::Scope {
                    scope: Scope::Team {
                        org_id: org.clone(),
                        team_id: team.clone(),
                    },
                    window,
                    window_start,
                });
            }
            for counter in counters {
                if due.len() == room {
                    return Ok(due);
                }
                let pk = counter_pk(tenant, &place_of(&counter.key())?.0);
                if !due.contains(&pk) && self.sweeps.take_due(&pk) {
                    due.insert(pk);
                }
            }
        }
        Ok(due)
    }
}
