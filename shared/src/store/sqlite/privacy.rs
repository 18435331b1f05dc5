//! Export and erasure of one user.

use std::collections::BTreeMap;

use rusqlite::{params, Connection};

use super::codec::{from_json, parse_ts};
use super::usage::{daily_usage, get_reservation, period_usage};
use crate::domain::{TenantId, UsageEvent, UserId};
use crate::store::{EraseProgress, StoreResult, UserRecords};

pub(super) fn user_records(
    conn: &Connection,
    tenant: &TenantId,
    user: &UserId,
) -> StoreResult<UserRecords> {
    let (t, u) = (tenant.as_str(), user.as_str());
    let events: Vec<String> = conn
        .prepare_cached(
            "SELECT event FROM events WHERE tenant = ?1 AND user = ?2 ORDER BY timestamp, event_id",
        )?
        .query_map(params![t, u], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let events = events
        .iter()
        .map(|j| from_json::<UsageEvent>(j))
        .collect::<StoreResult<_>>()?;

    let starts: Vec<String> = conn
        .prepare_cached(
            "SELECT DISTINCT period_start FROM counters WHERE tenant = ?1 AND user = ?2 ORDER BY period_start",
        )?
        .query_map(params![t, u], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut periods = BTreeMap::new();
    for start in starts {
        let start = parse_ts(&start)?;
        periods.insert(start, period_usage(conn, tenant, user, &start)?);
    }

    let span: (Option<String>, Option<String>) = conn
        .prepare_cached("SELECT min(day), max(day) FROM daily WHERE tenant = ?1 AND user = ?2")?
        .query_row(params![t, u], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let daily = match span {
        (Some(from), Some(to)) => daily_usage(
            conn,
            tenant,
            user,
            super::codec::parse_day(&from)?,
            super::codec::parse_day(&to)?,
        )?,
        _ => Vec::new(),
    };

    let ids: Vec<String> = conn
        .prepare_cached(
            "SELECT id FROM reservations WHERE tenant = ?1 AND user = ?2 ORDER BY created_at, id",
        )?
        .query_map(params![t, u], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut reservations = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(r) = get_reservation(conn, tenant, &id)? {
            reservations.push(r);
        }
    }
    Ok(UserRecords {
        events,
        periods,
        daily,
        reservations,
    })
}

/// One bounded step: up to `limit` events; once none are left, everything else at once
/// (a user's other records are few: a row per period, day, reservation and alert).
pub(super) fn erase_user(
    conn: &Connection,
    tenant: &TenantId,
    user: &UserId,
    pseudonym: &UserId,
    limit: usize,
) -> StoreResult<EraseProgress> {
    let (t, u) = (tenant.as_str(), user.as_str());
    let limit = i64::try_from(limit.max(1)).unwrap_or(i64::MAX);
    let events = conn
        .prepare_cached(
            "DELETE FROM events WHERE rowid IN
                 (SELECT rowid FROM events WHERE tenant = ?1 AND user = ?2 LIMIT ?3)",
        )?
        .execute(params![t, u, limit])?;
    if i64::try_from(events).unwrap_or(i64::MAX) >= limit {
        return Ok(EraseProgress {
            changed: events,
            done: false,
        });
    }
    let mut changed = events;
    for table in [
        "counters",
        "daily",
        "reservations",
        "alerts",
        "subscriptions",
        "billing",
        "adjustments",
    ] {
        changed += conn
            .prepare_cached(&format!(
                "DELETE FROM {table} WHERE tenant = ?1 AND user = ?2"
            ))?
            .execute(params![t, u])?;
    }
    changed += conn
        .prepare_cached(
            "UPDATE invoices SET user = ?3, invoice = json_set(invoice, '$.user', ?3)
             WHERE tenant = ?1 AND user = ?2",
        )?
        .execute(params![t, u, pseudonym.as_str()])?;
    Ok(EraseProgress {
        changed,
        done: true,
    })
}
