//! Alerts: created once per key, listed, marked read and published, re-armed.
//!
//! Like `usage`, every function runs on one connection inside a transaction its caller owns.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, Row};

use super::codec::{id, parse_severity, parse_ts, severity, sql_limit, ts};
use crate::domain::{Alert, OrgId, TenantId, UserId};
use crate::store::{StoreError, StoreResult};

pub(super) fn create_alert_once(conn: &Connection, a: &Alert) -> StoreResult<bool> {
    let budget = a
        .budget
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let n = conn
        .prepare_cached(
            "INSERT INTO alerts (tenant, id, user, period_start, key, metric, threshold, severity, title, message,
                 created_at, read, published, budget, retain_until)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
             ON CONFLICT DO NOTHING",
        )?
        .execute(params![
            a.tenant.as_str(),
            a.id,
            a.owner_key(),
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
            budget,
            crate::alerts::retain_until(a).map(|t| ts(&t)),
        ])?;
    Ok(n == 1)
}

pub(super) const ALERT_COLUMNS: &str =
    "tenant, id, user, period_start, key, metric, threshold, severity, title, message, created_at, read, published, budget";

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
    /// `Alert::budget` as JSON.
    budget: Option<String>,
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
            budget: r.get(13)?,
        })
    }
}

impl TryFrom<AlertRow> for Alert {
    type Error = StoreError;

    fn try_from(r: AlertRow) -> StoreResult<Alert> {
        // An org's alert is stored under its owner key `org#<org_id>` (`Alert::owner_key`).
        let org = match r.user.strip_prefix("org#") {
            Some(o) => Some(id(o.to_owned(), OrgId::parse)?),
            None => None,
        };
        let user = r.user.strip_prefix("org#").unwrap_or(&r.user).to_owned();
        Ok(Alert {
            id: r.id,
            tenant: id(r.tenant, TenantId::parse)?,
            user: id(user, UserId::parse)?,
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
            org,
            budget: r
                .budget
                .as_deref()
                .map(serde_json::from_str)
                .transpose()
                .map_err(|e| StoreError::Corrupt(format!("alert budget: {e}")))?,
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

pub(super) fn list_alerts(
    conn: &Connection,
    tenant: &TenantId,
    user: &UserId,
    unread_only: bool,
    limit: usize,
) -> StoreResult<(Vec<Alert>, u64)> {
    list_owner_alerts(conn, tenant, user.as_str(), unread_only, limit)
}

/// The alerts listed under `owner` (`Alert::owner_key`: a user id or `org#<org_id>`).
pub(super) fn list_owner_alerts(
    conn: &Connection,
    tenant: &TenantId,
    owner: &str,
    unread_only: bool,
    limit: usize,
) -> StoreResult<(Vec<Alert>, u64)> {
    let items = alerts(
        conn,
        &format!(
            "SELECT {ALERT_COLUMNS} FROM alerts WHERE tenant = ?1 AND user = ?2 AND (?3 = 0 OR read = 0)
             ORDER BY created_at DESC, id DESC LIMIT ?4"
        ),
        params![tenant.as_str(), owner, unread_only, sql_limit(limit)],
    )?;
    let unread: i64 = conn
        .prepare_cached("SELECT COUNT(*) FROM alerts WHERE tenant = ?1 AND user = ?2 AND read = 0")?
        .query_row(params![tenant.as_str(), owner], |r| r.get(0))?;
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
    conn.prepare_cached(
        "UPDATE alerts SET published = 1, claimed_until = NULL WHERE tenant = ?1 AND id = ?2",
    )?
    .execute(params![tenant.as_str(), alert_id])?;
    Ok(())
}

/// Claims an unpublished alert until `until` unless a claim holds at `now`.
pub(super) fn claim_alert(
    conn: &Connection,
    tenant: &TenantId,
    alert_id: &str,
    now: &DateTime<Utc>,
    until: &DateTime<Utc>,
) -> StoreResult<bool> {
    let n = conn
        .prepare_cached(
            "UPDATE alerts SET claimed_until = ?4
             WHERE tenant = ?1 AND id = ?2 AND published = 0
               AND (claimed_until IS NULL OR claimed_until <= ?3)",
        )?
        .execute(params![tenant.as_str(), alert_id, ts(now), ts(until)])?;
    Ok(n == 1)
}

/// Drops the claim taken until `until`, if it is still the alert's.
pub(super) fn release_alert_claim(
    conn: &Connection,
    tenant: &TenantId,
    alert_id: &str,
    until: &DateTime<Utc>,
) -> StoreResult<()> {
    conn.prepare_cached(
        "UPDATE alerts SET claimed_until = NULL
         WHERE tenant = ?1 AND id = ?2 AND claimed_until = ?3",
    )?
    .execute(params![tenant.as_str(), alert_id, ts(until)])?;
    Ok(())
}
