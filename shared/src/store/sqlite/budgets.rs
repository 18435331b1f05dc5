//! Budgets: one row per (tenant, budget id) holding the budget as JSON, with its scope key
//! ([`Scope::key`]) and version in columns; the index `budgets_by_scope` lists a scope's
//! budgets in id order. Every put and delete runs on the writer thread, so "read the
//! stored scope and the scope's count, then write" is atomic.

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};

use super::SqliteStore;
use crate::budgets::{Budget, Scope, MAX_BUDGETS_PER_SCOPE};
use crate::domain::{BudgetId, TenantId};
use crate::store::{BudgetPut, BudgetStore, StoreError, StoreResult};

pub(super) fn decode(text: &str) -> StoreResult<Budget> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("budget: {e}")))
}

fn encode(budget: &Budget) -> StoreResult<String> {
    serde_json::to_string(budget).map_err(|e| StoreError::Corrupt(format!("budget: {e}")))
}

fn version(v: u64) -> StoreResult<i64> {
    i64::try_from(v).map_err(|_| StoreError::Overflow("budget version".to_owned()))
}

fn get(conn: &Connection, tenant: &TenantId, id: &BudgetId) -> StoreResult<Option<Budget>> {
    let text: Option<String> = conn
        .prepare_cached("SELECT budget FROM budgets WHERE tenant = ?1 AND id = ?2")?
        .query_row(params![tenant.as_str(), id.as_str()], |r| r.get(0))
        .optional()?;
    text.as_deref().map(decode).transpose()
}

fn put(conn: &Connection, tenant: &TenantId, budget: &Budget) -> StoreResult<BudgetPut> {
    let stored = get(conn, tenant, &budget.id)?;
    if let Some(stored) = &stored {
        if stored.scope != budget.scope {
            return Ok(BudgetPut::ScopeMismatch {
                stored: stored.scope.clone(),
            });
        }
    } else {
        let count: i64 = conn
            .prepare_cached("SELECT count(*) FROM budgets WHERE tenant = ?1 AND scope = ?2")?
            .query_row(params![tenant.as_str(), budget.scope.key()], |r| r.get(0))?;
        if usize::try_from(count).unwrap_or(usize::MAX) >= MAX_BUDGETS_PER_SCOPE {
            return Ok(BudgetPut::ScopeFull);
        }
    }
    let next = match &stored {
        Some(s) => s
            .version
            .checked_add(1)
            .ok_or_else(|| StoreError::Overflow("budget version".to_owned()))?,
        None => 1,
    };
    let new = Budget {
        version: next,
        ..budget.clone()
    };
    conn.prepare_cached(
        "INSERT INTO budgets (tenant, id, scope, version, budget) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (tenant, id) DO UPDATE SET version = excluded.version, budget = excluded.budget",
    )?
    .execute(params![
        tenant.as_str(),
        new.id.as_str(),
        new.scope.key(),
        version(next)?,
        encode(&new)?
    ])?;
    Ok(match stored {
        Some(_) => BudgetPut::Replaced(new),
        None => BudgetPut::Created(new),
    })
}

#[async_trait]
impl BudgetStore for SqliteStore {
    async fn put_budget(&self, tenant: &TenantId, budget: &Budget) -> StoreResult<BudgetPut> {
        let (tenant, budget) = (tenant.clone(), budget.clone());
        self.write(move |c| put(c, &tenant, &budget)).await
    }

    async fn get_budget(&self, tenant: &TenantId, id: &BudgetId) -> StoreResult<Option<Budget>> {
        let (tenant, id) = (tenant.clone(), id.clone());
        self.read(move |c| get(c, &tenant, &id)).await
    }

    async fn delete_budget(&self, tenant: &TenantId, id: &BudgetId) -> StoreResult<Option<Budget>> {
        let (tenant, id) = (tenant.clone(), id.clone());
        self.write(move |c| {
            let stored = get(c, &tenant, &id)?;
            if stored.is_some() {
                c.prepare_cached("DELETE FROM budgets WHERE tenant = ?1 AND id = ?2")?
                    .execute(params![tenant.as_str(), id.as_str()])?;
            }
            Ok(stored)
        })
        .await
    }

    async fn list_budgets(&self, tenant: &TenantId, scope: &Scope) -> StoreResult<Vec<Budget>> {
        let (tenant, scope) = (tenant.clone(), scope.key());
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT budget FROM budgets WHERE tenant = ?1 AND scope = ?2 ORDER BY id",
            )?;
            let rows =
                stmt.query_map(params![tenant.as_str(), scope], |r| r.get::<_, String>(0))?;
            rows.map(|text| decode(&text?)).collect()
        })
        .await
    }
}
