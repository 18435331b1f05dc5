//! Where budgets live (see [`crate::budgets`]): one record per (tenant, budget id), listed
//! by the scope it is on.
//!
//! Promises every adapter keeps (the conformance suite checks them under concurrency):
//! - a budget's scope is fixed for its id: a put that names another scope changes nothing
//!   and answers [`BudgetPut::ScopeMismatch`];
//! - a scope holds at most [`MAX_BUDGETS_PER_SCOPE`] budgets: a put that would create one
//!   more changes nothing and answers [`BudgetPut::ScopeFull`], however many creations race;
//! - puts and deletes of one id are atomic and ordered: each put stores version
//!   `previous + 1` (1 for a new budget), a delete removes exactly the version it saw;
//! - the check path's reads are one request each: [`BudgetStore::list_budgets`] (one
//!   query of one partition in DynamoDB) and [`BudgetStore::get_budget`] (one `GetItem`).

use async_trait::async_trait;

use super::StoreResult;
pub use crate::budgets::MAX_BUDGETS_PER_SCOPE;
use crate::budgets::{Budget, Scope};
use crate::domain::{BudgetId, TenantId};

/// What a put did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BudgetPut {
    /// A new budget, stored with version 1.
    Created(Budget),
    /// The budget replaced the stored one of the same id (same scope); its version is the
    /// stored one's plus 1.
    Replaced(Budget),
    /// A budget with this id exists on another scope: nothing changed.
    ScopeMismatch { stored: Scope },
    /// The scope already holds [`MAX_BUDGETS_PER_SCOPE`] budgets: nothing changed.
    ScopeFull,
}

#[async_trait]
pub trait BudgetStore: Send + Sync {
    /// Creates or replaces the tenant's budget `budget.id` (see the module's promises). The
    /// stored budget takes `budget`'s fields but `version`, which the store sets.
    async fn put_budget(&self, tenant: &TenantId, budget: &Budget) -> StoreResult<BudgetPut>;

    /// One budget of the tenant; `None` if it has none with this id.
    async fn get_budget(&self, tenant: &TenantId, id: &BudgetId) -> StoreResult<Option<Budget>>;

    /// Deletes the tenant's budget `id`; the budget deleted, `None` if there was none.
    async fn delete_budget(&self, tenant: &TenantId, id: &BudgetId) -> StoreResult<Option<Budget>>;

    /// The budgets on exactly `scope` (an org's list holds none of its teams' budgets), in
    /// budget-id order (bytes); at most [`MAX_BUDGETS_PER_SCOPE`].
    async fn list_budgets(&self, tenant: &TenantId, scope: &Scope) -> StoreResult<Vec<Budget>>;
}
