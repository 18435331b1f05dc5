//! Tenants, API keys, plans, price versions, subscriptions, alerts and invoices.
//!
//! Like `usage`, every function runs on one connection inside a transaction its caller owns.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::codec::{from_json, id, parse_severity, parse_ts, severity, to_json, ts};
use crate::domain::{Alert, ApiKeyRecord, Invoice, PlanName, Subscription, TenantId, UserId};
use crate::limits::Plan;
use crate::store::{StoreError, StoreResult};

pub(super) fn create_tenant_if_absent(
    conn: &Connection,
    tenant: &TenantId,
    at: DateTime<Utc>,
) -> StoreResult<bool> {
    let n = conn
        .prepare_cached("INSERT INTO tenants (tenant, created_at) VALUES (?1, ?2) ON CONFLICT (tenant) DO NOTHING")?
        .execute(params![tenant.as_str(), ts(&at)])?;
    Ok(n == 1)
}

pub(super) fn put_api_key(conn: &Connection, key: &ApiKeyRecord) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO api_keys (hash, tenant, record) VALUES (?1, ?2, ?3)
         ON CONFLICT (hash) DO UPDATE SET tenant = excluded.tenant, record = excluded.record",
    )?
    .execute(params![key.hash, key.tenant.as_str(), to_json(key)?])?;
    Ok(())
}

pub(super) fn get_api_key(conn: &Connection, hash: &str) -> StoreResult<Option<ApiKeyRecord>> {
    let json: Option<String> = conn
        .prepare_cached("SELECT record FROM api_keys WHERE hash = ?1")?
        .query_row([hash], |r| r.get(0))
        .optional()?;
    json.map(|j| from_json(&j)).transpose()
}

pub(super) fn delete_api_key(conn: &Connection, hash: &str) -> StoreResult<Option<ApiKeyRecord>> {
    let json: Option<String> = conn
        .prepare_cached("DELETE FROM api_keys WHERE hash = ?1 RETURNING record")?
        .query_row([hash], |r| r.get(0))
        .optional()?;
    json.map(|j| from_json(&j)).transpose()
}

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

pub(super) fn get_subscription(
    conn: &Connection,
    tenant: &TenantId,
    user: &UserId,
) -> StoreResult<Option<Subscription>> {
    let json: Option<String> = conn
        .prepare_cached("SELECT subscription FROM subscriptions WHERE tenant = ?1 AND user = ?2")?
        .query_row(params![tenant.as_str(), user.as_str()], |r| r.get(0))
        .optional()?;
    json.map(|j| from_json(&j)).transpose()
}

pub(super) fn put_subscription(
    conn: &Connection,
    sub: &Subscription,
    expected: Option<u64>,
) -> StoreResult<()> {
    let version = i64::try_from(sub.version)
        .map_err(|_| StoreError::Overflow(format!("version {}", sub.version)))?;
    let json = to_json(sub)?;
    let written = match expected {
        None => conn
            .prepare_cached(
                "INSERT INTO subscriptions (tenant, user, version, subscription) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (tenant, user) DO NOTHING",
            )?
            .execute(params![sub.tenant.as_str(), sub.user.as_str(), version, json])?,
        Some(expected) => {
            // A version past i64 cannot be stored, so it cannot match.
            let Ok(expected) = i64::try_from(expected) else {
                return Err(StoreError::VersionConflict);
            };
            conn.prepare_cached(
                "UPDATE subscriptions SET version = ?3, subscription = ?4
                 WHERE tenant = ?1 AND user = ?2 AND version = ?5",
            )?
            .execute(params![sub.tenant.as_str(), sub.user.as_str(), version, json, expected])?
        }
    };
    if written == 1 {
        Ok(())
    } else {
        Err(StoreError::VersionConflict)
    }
}

pub(super) fn create_alert_once(conn: &Connection, a: &Alert) -> StoreResult<bool> {
    let n = conn
        .prepare_cached(
            "INSERT INTO alerts (tenant, id, user, period_start, key, metric, threshold, severity, title, message,
                 created_at, read, published)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
             ON CONFLICT DO NOTHING",
        )?
        .execute(params![
            a.tenant.as_str(),
            a.id,
            a.user.as_str(),
            ts(&a.period_start),
            a.key,
            a.metric,
            a.threshold,
            severity(a.severity),
            a.title,
            a.message,
            ts(&a.created_at),
            a.read,
            a.published,
        ])?;
    Ok(n == 1)
}

pub(super) const ALERT_COLUMNS: &str =
    "tenant, id, user, period_start, key, metric, threshold, severity, title, message, created_at, read, published";

/// The raw columns of an alert row (decoded outside the rusqlite callback, so that a bad
/// value is a `Corrupt` error rather than a conversion error).
struct AlertRow {
    tenant: String,
    id: String,
    user: String,
    period_start: String,
    key: String,
    metric: Option<String>,
    threshold: Option<u8>,
    severity: String,
    title: String,
    message: String,
    created_at: String,
    read: bool,
    published: bool,
}

impl AlertRow {
    fn read(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            tenant: r.get(0)?,
            id: r.get(1)?,
            user: r.get(2)?,
            period_start: r.get(3)?,
            key: r.get(4)?,
            metric: r.get(5)?,
            threshold: r.get(6)?,
            severity: r.get(7)?,
            title: r.get(8)?,
            message: r.get(9)?,
            created_at: r.get(10)?,
            read: r.get(11)?,
            published: r.get(12)?,
        })
    }
}

impl TryFrom<AlertRow> for Alert {
    type Error = StoreError;

    fn try_from(r: AlertRow) -> StoreResult<Alert> {
        Ok(Alert {
            id: r.id,
            tenant: id(r.tenant, TenantId::parse)?,
            user: id(r.user, UserId::parse)?,
            period_start: parse_ts(&r.period_start)?,
            key: r.key,
            metric: r.metric,
            threshold: r.threshold,
            severity: parse_severity(&r.severity)?,
            title: r.title,
            message: r.message,
            created_at: parse_ts(&r.created_at)?,
            read: r.read,
            published: r.published,
        })
    }
}

pub(super) fn alerts(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> StoreResult<Vec<Alert>> {
    let rows: Vec<AlertRow> = conn
        .prepare_cached(sql)?
        .query_map(params, AlertRow::read)?
        .collect::<Result<_, _>>()?;
    rows.into_iter().map(Alert::try_from).collect()
}

pub(super) fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

pub(super) fn list_alerts(
    conn: &Connection,
    tenant: &TenantId,
    user: &UserId,
    unread_only: bool,
    limit: usize,
) -> StoreResult<(Vec<Alert>, u64)> {
    let items = alerts(
        conn,
        &format!(
            "SELECT {ALERT_COLUMNS} FROM alerts WHERE tenant = ?1 AND user = ?2 AND (?3 = 0 OR read = 0)
             ORDER BY created_at DESC, id DESC LIMIT ?4"
        ),
        params![tenant.as_str(), user.as_str(), unread_only, sql_limit(limit)],
    )?;
    let unread: i64 = conn
        .prepare_cached("SELECT COUNT(*) FROM alerts WHERE tenant = ?1 AND user = ?2 AND read = 0")?
        .query_row(params![tenant.as_str(), user.as_str()], |r| r.get(0))?;
    Ok((items, super::codec::parse_count(unread)?))
}

pub(super) fn mark_alert_read(
    conn: &Connection,
    tenant: &TenantId,
    alert_id: &str,
) -> StoreResult<bool> {
    let n = conn
        .prepare_cached("UPDATE alerts SET read = 1 WHERE tenant = ?1 AND id = ?2")?
        .execute(params![tenant.as_str(), alert_id])?;
    Ok(n == 1)
}

/// Forgets once-only keys of a period: their rows stay listed but no longer hold the key.
pub(super) fn rearm_alerts(
    conn: &Connection,
    tenant: &TenantId,
    user: &UserId,
    period_start: &DateTime<Utc>,
    keys: &[String],
) -> StoreResult<()> {
    let mut stmt = conn.prepare_cached(
        "UPDATE alerts SET rearmed = 1
         WHERE tenant = ?1 AND user = ?2 AND period_start = ?3 AND key = ?4 AND rearmed = 0",
    )?;
    for key in keys {
        stmt.execute(params![
            tenant.as_str(),
            user.as_str(),
            ts(period_start),
            key
        ])?;
    }
    Ok(())
}

pub(super) fn unpublished_alerts(conn: &Connection, limit: usize) -> StoreResult<Vec<Alert>> {
    alerts(
        conn,
        &format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE published = 0 ORDER BY created_at, id LIMIT ?1"),
        params![sql_limit(limit)],
    )
}

pub(super) fn mark_alert_published(
    conn: &Connection,
    tenant: &TenantId,
    alert_id: &str,
) -> StoreResult<()> {
    conn.prepare_cached("UPDATE alerts SET published = 1 WHERE tenant = ?1 AND id = ?2")?
        .execute(params![tenant.as_str(), alert_id])?;
    Ok(())
}

pub(super) fn put_invoice_once(conn: &Connection, inv: &Invoice) -> StoreResult<bool> {
    let n = conn
        .prepare_cached(
            "INSERT INTO invoices (tenant, id, user, period_start, invoice, published)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT DO NOTHING",
        )?
        .execute(params![
            inv.tenant.as_str(),
            inv.id,
            inv.user,
            ts(&inv.period.start),
            to_json(inv)?,
            inv.published
        ])?;
    Ok(n == 1)
}

pub(super) fn list_invoices(
    conn: &Connection,
    tenant: &TenantId,
    user: &UserId,
) -> StoreResult<Vec<Invoice>> {
    let rows: Vec<String> = conn
        .prepare_cached("SELECT invoice FROM invoices WHERE tenant = ?1 AND user = ?2 ORDER BY period_start DESC")?
        .query_map(params![tenant.as_str(), user.as_str()], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    rows.iter().map(|j| from_json(j)).collect()
}
