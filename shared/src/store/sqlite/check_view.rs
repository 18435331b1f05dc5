//! The check's read over budgets on SQLite ([`CheckViewStore`]): over the existing tables
//! (no layout change), in one read transaction on the calling thread — the user's limits,
//! the wallet, the org's subscription, the scopes' budgets and the counters the picker
//! names all come from one snapshot (a few indexed lookups, microseconds).

use async_trait::async_trait;
use rusqlite::{params, Connection};

use super::{budget_counters, budgets, orgs, prepaid, user_limits, SqliteStore};
use crate::budgets::{Budget, CallScopes, Scope};
use crate::domain::TenantId;
use crate::store::{CheckView, CheckViewStore, CounterPicker, PeriodPicker, StoreResult};

/// The budgets on exactly `scope`, in id order (`?1` tenant, `?2` scope key).
pub(super) const SCOPE_BUDGETS: &str =
    "SELECT budget FROM budgets WHERE tenant = ?1 AND scope = ?2 ORDER BY id";

/// The budgets on exactly `scope`, in id order.
fn scope_budgets(c: &Connection, tenant: &TenantId, scope: &Scope) -> StoreResult<Vec<Budget>> {
    let mut stmt = c.prepare_cached(SCOPE_BUDGETS)?;
    let rows = stmt.query_map(params![tenant.as_str(), scope.key()], |r| {
        r.get::<_, String>(0)
    })?;
    rows.map(|text| budgets::decode(&text?)).collect()
}

#[async_trait]
impl CheckViewStore for SqliteStore {
    async fn read_check_view(
        &self,
        tenant: &TenantId,
        call: &CallScopes,
        with_credit: bool,
        pick: PeriodPicker<'_>,
        counters: CounterPicker<'_>,
    ) -> StoreResult<CheckView> {
        self.read_now(|c| {
            let user = user_limits(c, tenant, call.user(), pick)?;
            let credit = match with_credit {
                true => {
                    let wallet = crate::credits::Subscriber::User(call.user().clone());
                    Some(prepaid::credit_state(
                        c,
                        tenant.as_str(),
                        &wallet.to_string(),
                    )?)
                }
                false => None,
            };
            // Issue 19: the named org's wallet (a prepaid org plan pays from it).
            let org_credit = match (with_credit, call.org()) {
                (true, Some(org)) => {
                    let wallet = crate::credits::Subscriber::Org(org.clone());
                    Some(prepaid::credit_state(
                        c,
                        tenant.as_str(),
                        &wallet.to_string(),
                    )?)
                }
                _ => None,
            };
            let org_subscription = match call.org() {
                Some(org) => orgs::get(c, tenant, org)?,
                None => None,
            };
            let mut budgets = Vec::new();
            for scope in call.scopes() {
                budgets.extend(scope_budgets(c, tenant, &scope)?);
            }
            let keys = counters(&user, org_subscription.as_ref(), &budgets);
            let mut read = std::collections::BTreeMap::new();
            for k in keys {
                let usage = budget_counters::read_counter(c, tenant.as_str(), &k.key())?;
                read.insert(k, usage);
            }
            Ok(CheckView {
                user,
                credit,
                org_credit,
                org_subscription,
                budgets,
                counters: read,
            })
        })
    }
}
