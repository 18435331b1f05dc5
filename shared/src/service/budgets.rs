//! Budget definitions (§10): create or replace, read, list by scope, delete. The rules of
//! a budget live in [`crate::budgets`]; the store keeps the promises that need atomicity
//! (a scope fixed per id, at most [`MAX_BUDGETS_PER_SCOPE`] per scope, versions in order).
//! Enforcement (the check over every applicable budget) comes on top of these records.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Caller, Error, Meter, Result};
use crate::budgets::{AppliesTo, Budget, Mode, Scope, Window, MAX_BUDGETS_PER_SCOPE};
use crate::domain::{BudgetId, Role};
use crate::limits::{Limits, MetricAmounts};
use crate::store::BudgetPut;

/// A budget as the admin writes it (the id comes from the path; the version and the time
/// of the change are the service's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetInput {
    pub scope: Scope,
    pub applies_to: AppliesTo,
    pub limits: Limits,
    pub window: Window,
    pub mode: Mode,
    pub alert_thresholds: Vec<u8>,
}

/// A stored budget as clients see it: limits as amounts (counts as integers, `cost_usd`
/// as an exact decimal string).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BudgetView {
    pub budget_id: BudgetId,
    pub scope: Scope,
    pub applies_to: AppliesTo,
    pub limits: MetricAmounts,
    pub window: Window,
    pub mode: Mode,
    pub alert_thresholds: Vec<u8>,
    pub version: u64,
    pub updated_at: DateTime<Utc>,
}

impl From<&Budget> for BudgetView {
    fn from(b: &Budget) -> Self {
        BudgetView {
            budget_id: b.id.clone(),
            scope: b.scope.clone(),
            applies_to: b.applies_to,
            limits: MetricAmounts(b.limits.0.clone()),
            window: b.window,
            mode: b.mode,
            alert_thresholds: b.alert_thresholds.clone(),
            version: b.version,
            updated_at: b.updated_at,
        }
    }
}

/// What a PUT did: the stored budget, and whether it is new.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BudgetWritten {
    pub budget: BudgetView,
    pub created: bool,
}

/// The budgets on one scope, in id order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BudgetList {
    pub scope: Scope,
    pub budgets: Vec<BudgetView>,
    /// How many budgets the scope may hold.
    pub max_budgets: usize,
}

/// What a DELETE removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BudgetDeleted {
    pub deleted: bool,
    pub budget: BudgetView,
}

impl Meter {
    /// PUT /budgets/{budget_id} (admin): creates or replaces the budget after validating
    /// it ([`Budget::validate`]). Answers 409 (`Error::StateConflict`) when the id is
    /// taken on another scope, 422 `too_many_budgets` when a new budget would be the
    /// 33rd of its scope; nothing changes then.
    pub async fn put_budget(
        &self,
        caller: &Caller,
        id: &BudgetId,
        input: BudgetInput,
    ) -> Result<BudgetWritten> {
        caller.require(Role::Admin)?;
        let budget = Budget {
            id: id.clone(),
            scope: input.scope,
            applies_to: input.applies_to,
            limits: input.limits,
            window: input.window,
            mode: input.mode,
            alert_thresholds: input.alert_thresholds,
            version: 0,
            updated_at: self.now(),
        };
        budget
            .validate()
            .map_err(|e| Error::invalid(e.field(), e.code(), e.to_string()))?;
        let (stored, created) = match self.store.put_budget(&caller.tenant, &budget).await? {
            BudgetPut::Created(b) => (b, true),
            BudgetPut::Replaced(b) => (b, false),
            BudgetPut::ScopeMismatch { stored } => {
                return Err(Error::StateConflict(format!(
                    "budget `{id}` is on scope {stored}; a budget's scope cannot change \
                     (delete the budget first, or use another id)"
                )))
            }
            BudgetPut::ScopeFull => {
                return Err(Error::invalid(
                    "scope",
                    "too_many_budgets",
                    format!(
                        "scope {} already holds {MAX_BUDGETS_PER_SCOPE} budgets; delete one first",
                        budget.scope
                    ),
                ))
            }
        };
        tracing::info!(tenant = %caller.tenant, budget = %id, scope = %stored.scope,
            version = stored.version, created, "budget stored");
        Ok(BudgetWritten {
            budget: (&stored).into(),
            created,
        })
    }

    /// GET /budgets/{budget_id} (service key).
    pub async fn get_budget(&self, caller: &Caller, id: &BudgetId) -> Result<BudgetView> {
        caller.require(Role::Service)?;
        self.store
            .get_budget(&caller.tenant, id)
            .await?
            .map(|b| (&b).into())
            .ok_or(Error::NotFound("budget"))
    }

    /// GET /budgets?user_id=|org_id=[&team_id=] (service key): the budgets on exactly
    /// that scope.
    pub async fn list_budgets(&self, caller: &Caller, scope: &Scope) -> Result<BudgetList> {
        caller.require(Role::Service)?;
        let budgets = self.store.list_budgets(&caller.tenant, scope).await?;
        Ok(BudgetList {
            scope: scope.clone(),
            budgets: budgets.iter().map(BudgetView::from).collect(),
            max_budgets: MAX_BUDGETS_PER_SCOPE,
        })
    }

    /// DELETE /budgets/{budget_id} (admin): 404 when the tenant has no such budget.
    pub async fn delete_budget(&self, caller: &Caller, id: &BudgetId) -> Result<BudgetDeleted> {
        caller.require(Role::Admin)?;
        let deleted = self
            .store
            .delete_budget(&caller.tenant, id)
            .await?
            .ok_or(Error::NotFound("budget"))?;
        tracing::info!(tenant = %caller.tenant, budget = %id, "budget deleted");
        Ok(BudgetDeleted {
            deleted: true,
            budget: (&deleted).into(),
        })
    }
}
