//! Plans and price versions (per tenant, and the shared catalog).
//!
//! Like `usage`, every function runs on one connection inside a transaction its caller owns.

use rusqlite::{params, Connection, OptionalExtension};

use super::codec::{from_json, to_json};
use crate::domain::{PlanName, TenantId};
use crate::limits::Plan;
use crate::store::StoreResult;

pub(super) fn put_plan(conn: &Connection, tenant: &TenantId, plan: &Plan) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO plans (tenant, name, plan) VALUES (?1, ?2, ?3)
         ON CONFLICT (tenant, name) DO UPDATE SET plan = excluded.plan",
    )?
    .execute(params![tenant.as_str(), plan.name.as_str(), to_json(plan)?])?;
    Ok(())
}

pub(super) fn get_plan(
    conn: &Connection,
    tenant: &TenantId,
    name: &PlanName,
) -> StoreResult<Option<Plan>> {
    let json: Option<String> = conn
        .prepare_cached("SELECT plan FROM plans WHERE tenant = ?1 AND name = ?2")?
        .query_row(params![tenant.as_str(), name.as_str()], |r| r.get(0))
        .optional()?;
    json.map(|j| from_json(&j)).transpose()
}

/// The tenant's plans by name.
pub(super) fn list_plans(conn: &Connection, tenant: &TenantId) -> StoreResult<Vec<Plan>> {
    let rows: Vec<String> = conn
        .prepare_cached("SELECT plan FROM plans WHERE tenant = ?1 ORDER BY name")?
        .query_map([tenant.as_str()], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    rows.iter().map(|j| from_json(j)).collect()
}

/// The shared catalog is stored under scope `''` (a tenant id is never empty).
fn scope_key(scope: Option<&TenantId>) -> &str {
    scope.map_or("", TenantId::as_str)
}

pub(super) fn put_price_version(
    conn: &Connection,
    scope: Option<&TenantId>,
    vid: &str,
    json: &serde_json::Value,
) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO price_versions (scope, id, version) VALUES (?1, ?2, ?3)
         ON CONFLICT (scope, id) DO UPDATE SET version = excluded.version",
    )?
    .execute(params![scope_key(scope), vid, to_json(json)?])?;
    Ok(())
}

/// A scope's price versions in the order they were first added.
pub(super) fn list_price_versions(
    conn: &Connection,
    scope: Option<&TenantId>,
) -> StoreResult<Vec<serde_json::Value>> {
    let rows: Vec<String> = conn
        .prepare_cached("SELECT version FROM price_versions WHERE scope = ?1 ORDER BY rowid")?
        .query_map([scope_key(scope)], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    rows.iter().map(|j| from_json(j)).collect()
}
