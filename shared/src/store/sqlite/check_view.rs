//! The check's read over budgets on SQLite ([`CheckViewStore`]): the reads the check made
//! before, one after the other, over the existing tables (no layout change).

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::SqliteStore;
use crate::budgets::CallScopes;
use crate::credits::Subscriber;
use crate::domain::TenantId;
use crate::store::{
    BudgetCounterStore, BudgetStore, CheckView, CheckViewStore, CounterPicker, OrgStore,
    PeriodPicker, PrepaidStore, StoreResult, UsageStore,
};

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
        let user = self.get_user_limits(tenant, call.user(), pick).await?;
        let credit = if with_credit {
            let wallet = Subscriber::User(call.user().clone());
            Some(self.get_credit_state(tenant, &wallet).await?)
        } else {
            None
        };
        let org_subscription = match call.org() {
            Some(org) => self.get_org_subscription(tenant, org).await?,
            None => None,
        };
        let mut budgets = Vec::new();
        for scope in call.scopes() {
            budgets.extend(self.list_budgets(tenant, &scope).await?);
        }
        let keys = counters(&user, org_subscription.as_ref(), &budgets);
        let read = self.get_budget_counters(tenant, &keys).await?;
        Ok(CheckView {
            user,
            credit,
            org_subscription,
            budgets,
            counters: keys.into_iter().zip(read).collect::<BTreeMap<_, _>>(),
        })
    }
}
