//! Export and erasure of one user.

use std::collections::BTreeMap;

use rusqlite::{params, Connection};

use super::codec::parse_ts;
use super::event_row::{event_columns, EventRow};
use super::usage::{daily_usage, get_reservation, period_usage};
use crate::domain::{TenantId, UserId};
use crate::store::{EraseProgress, StoreResult, UserRecords};

// Every statement here finds the user's rows by an index on (tenant, user, …): export and
// erasure cost the user's rows, not the table's (checked by
// `per_user_statements_search_an_index` in the store tests).
const EVENTS: &str = concat!(
    "SELECT ",
    event_columns!(),
    " FROM events WHERE tenant = ?1 AND user = ?2 ORDER BY timestamp, event_id"
);
const PERIODS: &str = "SELECT DISTINCT period_start FROM counters WHERE tenant = ?1 AND user = ?2 ORDER BY period_start";
const DAYS: &str = "SELECT min(day), max(day) FROM daily WHERE tenant = ?1 AND user = ?2";
const RESERVATIONS: &str =
    "SELECT id FROM reservations WHERE tenant = ?1 AND user = ?2 ORDER BY created_at, id";
const ERASE_EVENTS: &str = "DELETE FROM events WHERE rowid IN
     (SELECT rowid FROM events WHERE tenant = ?1 AND user = ?2 LIMIT ?3)";
/// Deleted whole once the user's events are gone.
const ERASED_TABLES: [&str; 7] = [
    "counters",
    "daily",
    "reservations",
    "alerts",
    "subscriptions",
    "billing",
    "adjustments",
];
/// The pseudonym may hold invoices of the same periods (the user was erased before):
/// `pseudonymised = 1` takes them out of the one-invoice-per-period index.
const PSEUDONYMISE_INVOICES: &str =
    "UPDATE invoices SET user = ?3, pseudonymised = 1, invoice = json_set(invoice, '$.user', ?3)
     WHERE tenant = ?1 AND user = ?2";

fn erase_statement(table: &str) -> String {
    format!("DELETE FROM {table} WHERE tenant = ?1 AND user = ?2")
}

/// Every statement export and erasure run (for the query-plan test).
#[cfg(test)]
pub(super) fn statements() -> Vec<String> {
    let mut all: Vec<String> = [
        EVENTS,
        PERIODS,
        DAYS,
        RESERVATIONS,
        ERASE_EVENTS,
        PSEUDONYMISE_INVOICES,
    ]
    .map(str::to_owned)
    .into();
    all.extend(ERASED_TABLES.map(erase_statement));
    all
}

pub(super) fn user_records(
    conn: &Connection,
    tenant: &TenantId,
    user: &UserId,
) -> StoreResult<UserRecords> {
    let (t, u) = (tenant.as_str(), user.as_str());
    let events: Vec<EventRow> = conn
        .prepare_cached(EVENTS)?
        .query_map(params![t, u], EventRow::read)?
        .collect::<Result<_, _>>()?;
    let events = events
        .into_iter()
        .map(EventRow::into_event)
        .collect::<StoreResult<_>>()?;

    let starts: Vec<String> = conn
        .prepare_cached(PERIODS)?
        .query_map(params![t, u], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut periods = BTreeMap::new();
    for start in starts {
        let start = parse_ts(&start)?;
        periods.insert(start, period_usage(conn, tenant, user, &start)?);
    }

    let span: (Option<String>, Option<String>) = conn
        .prepare_cached(DAYS)?
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
        .prepare_cached(RESERVATIONS)?
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
        .prepare_cached(ERASE_EVENTS)?
        .execute(params![t, u, limit])?;
    if i64::try_from(events).unwrap_or(i64::MAX) >= limit {
        return Ok(EraseProgress {
            changed: events,
            done: false,
        });
    }
    let mut changed = events;
    for table in ERASED_TABLES {
        changed += conn
            .prepare_cached(&erase_statement(table))?
            .execute(params![t, u])?;
    }
    changed += conn
        .prepare_cached(PSEUDONYMISE_INVOICES)?
        .execute(params![t, u, pseudonym.as_str()])?;
    Ok(EraseProgress {
        changed,
        done: true,
    })
}
