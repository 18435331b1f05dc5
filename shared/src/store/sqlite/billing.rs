//! Billing: users for the aggregation, closing periods into invoices, late usage and
//! re-pricing as adjustments, storing and listing invoices, the invoice outbox and job
//! cursors.
//!
//! The rule (see `store::BillingState`): every period starting before `billing.billed_to`
//! is closed; a write that adds recorded usage or cost to such a period also adds it to
//! `adjustments`, inside the same transaction.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use rust_decimal::Decimal;
use sha2::{Digest, Sha256};

use super::codec::{
    from_json, id, money, parse_count, parse_money, parse_ts, sql_limit, to_json, ts,
};
use super::event_row::{self, EventRow, EVENT_COLUMNS};
use super::usage::period_usage;
use crate::domain::{EventId, Invoice, Subscription, TenantId, UsageEvent, UserId};
use crate::store::{
    Adjustment, BillingState, CloseOutcome, Page, StoreError, StoreResult, UserRef,
};

fn split_cursor(cursor: Option<&str>) -> StoreResult<(&str, &str)> {
    match cursor {
        None => Ok(("", "")),
        Some(c) => c
            .split_once(' ')
            .ok_or_else(|| StoreError::Corrupt(format!("invalid page cursor {c:?}"))),
    }
}

/// Users with a subscription or recorded usage; cursor = the last `tenant user` listed.
pub(super) fn list_users(
    conn: &Connection,
    cursor: Option<&str>,
    limit: usize,
) -> StoreResult<Page<UserRef>> {
    let (after_tenant, after_user) = split_cursor(cursor)?;
    let rows: Vec<(String, String, Option<String>)> = conn
        .prepare_cached(
            "SELECT u.tenant, u.user, s.subscription FROM (
                 SELECT tenant, user FROM subscriptions
                 UNION SELECT tenant, user FROM counters WHERE recorded_calls > 0
             ) AS u LEFT JOIN subscriptions AS s ON s.tenant = u.tenant AND s.user = u.user
             WHERE (u.tenant, u.user) > (?1, ?2) ORDER BY u.tenant, u.user LIMIT ?3",
        )?
        .query_map(
            params![after_tenant, after_user, sql_limit(limit).saturating_add(1)],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?
        .collect::<Result<_, _>>()?;
    let mut items = Vec::with_capacity(rows.len());
    for (tenant, user, sub) in rows {
        items.push(UserRef {
            tenant: id(tenant, TenantId::parse)?,
            user: id(user, UserId::parse)?,
            subscription: sub.map(|j| from_json::<Subscription>(&j)).transpose()?,
        });
    }
    let next = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|u| format!("{} {}", u.tenant, u.user))
    } else {
        None
    };
    Ok(Page { items, next })
}

/// Unpriced events; cursor = the last `tenant event_id` listed.
pub(super) fn unpriced_events(
    conn: &Connection,
    cursor: Option<&str>,
    limit: usize,
) -> StoreResult<Page<UsageEvent>> {
    let (after_tenant, after_id) = split_cursor(cursor)?;
    let rows: Vec<EventRow> = conn
        .prepare_cached(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE cost IS NULL AND (tenant, event_id) > (?1, ?2)
             ORDER BY tenant, event_id LIMIT ?3"
        ))?
        .query_map(
            params![after_tenant, after_id, sql_limit(limit).saturating_add(1)],
            EventRow::read,
        )?
        .collect::<Result<_, _>>()?;
    let mut items: Vec<UsageEvent> = rows
        .into_iter()
        .map(EventRow::into_event)
        .collect::<StoreResult<_>>()?;
    let next = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|e| format!("{} {}", e.tenant, e.event_id))
    } else {
        None
    };
    Ok(Page { items, next })
}

fn billed_to(conn: &Connection, tenant: &str, user: &str) -> StoreResult<Option<DateTime<Utc>>> {
    let raw: Option<String> = conn
        .prepare_cached("SELECT billed_to FROM billing WHERE tenant = ?1 AND user = ?2")?
        .query_row(params![tenant, user], |r| r.get(0))
        .optional()?;
    raw.map(|s| parse_ts(&s)).transpose()
}

/// Adds a change of an already invoiced period to its pending adjustment, if
/// `period_start` is before the user's `billed_to`. Runs inside the caller's transaction.
pub(super) fn adjust_if_billed(
    conn: &Connection,
    tenant: &str,
    user: &str,
    period_start: &DateTime<Utc>,
    cost: Decimal,
) -> StoreResult<()> {
    if billed_to(conn, tenant, user)?.is_some_and(|b| *period_start < b) {
        conn.prepare_cached(
            "INSERT INTO adjustments (tenant, user, period_start, events, cost) VALUES (?1, ?2, ?3, 1, ?4)
             ON CONFLICT (tenant, user, period_start) DO UPDATE SET
                 events = int_add(events, 1), cost = dec_add(cost, excluded.cost)",
        )?
        .execute(params![tenant, user, ts(period_start), money(cost)])?;
    }
    Ok(())
}

/// Prices the unpriced event: its cost on its counters and rollup and, when its period is
/// invoiced, on its user's pending adjustment — unless another subscriber pays for it
/// (docs/billing.md, "One payer per call"): `writes`, the cost on the event's counters,
/// say so; without them, the payer kept with the event does.
pub(super) fn price_event(
    conn: &Connection,
    tenant: &TenantId,
    event_id: &EventId,
    cost: Decimal,
    price_version: &str,
    writes: &[crate::budgets::CounterWrite],
) -> StoreResult<bool> {
    let row = conn
        .prepare_cached(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE tenant = ?1 AND event_id = ?2 AND cost IS NULL"
        ))?
        .query_row(params![tenant.as_str(), event_id.as_str()], EventRow::read)
        .optional()?;
    let Some(row) = row else {
        return Ok(false);
    };
    let mut e = row.into_event()?;
    e.cost_usd = Some(cost);
    e.price_version = Some(price_version.to_owned());
    event_row::set_price(
        conn,
        tenant.as_str(),
        event_id.as_str(),
        cost,
        price_version,
    )?;
    let (t, u, p) = (e.tenant.as_str(), e.user.as_str(), e.provider.as_str());
    let counters = conn
        .prepare_cached(
            "UPDATE counters SET recorded_cost = dec_add(recorded_cost, ?5), unpriced = unpriced - 1
             WHERE tenant = ?1 AND user = ?2 AND period_start = ?3 AND provider = ?4",
        )?
        .execute(params![t, u, ts(&e.period_start), p, money(cost)])?;
    let daily = conn
        .prepare_cached(
            "UPDATE daily SET cost = dec_add(cost, ?5)
             WHERE tenant = ?1 AND user = ?2 AND day = ?3 AND provider = ?4",
        )?
        .execute(params![
            t,
            u,
            super::codec::day(e.timestamp.date_naive()),
            p,
            money(cost)
        ])?;
    if counters != 1 || daily != 1 {
        return Err(StoreError::Corrupt(
            "a recorded event has no counter or rollup row".to_owned(),
        ));
    }
    if crate::store::user_pays(&e, writes) {
        adjust_if_billed(conn, t, u, &e.period_start, cost)?;
    }
    Ok(true)
}

fn adjustments(
    conn: &Connection,
    tenant: &str,
    user: &str,
) -> StoreResult<BTreeMap<DateTime<Utc>, Adjustment>> {
    let rows: Vec<(String, i64, String)> = conn
        .prepare_cached(
            "SELECT period_start, events, cost FROM adjustments WHERE tenant = ?1 AND user = ?2",
        )?
        .query_map(params![tenant, user], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<Result<_, _>>()?;
    let mut out = BTreeMap::new();
    for (start, events, cost) in rows {
        out.insert(
            parse_ts(&start)?,
            Adjustment {
                events: parse_count(events)?,
                cost_usd: parse_money(&cost)?,
            },
        );
    }
    Ok(out)
}

/// The version of a billing state: a digest of everything closing depends on (recorded
/// usage only: holds come and go without changing what is billed).
fn version_of(state: &BillingState) -> String {
    let mut h = Sha256::new();
    let billed = state.billed_to.map(|b| ts(&b)).unwrap_or_default();
    h.update(billed.as_bytes());
    for (provider, u) in &state.usage.by_provider {
        let line = format!(
            "|{provider}:{}:{}:{}:{}",
            u.recorded.calls,
            u.recorded.tokens,
            u.recorded.cost_usd.normalize(),
            u.unpriced_calls
        );
        h.update(line.as_bytes());
    }
    for (start, a) in &state.adjustments {
        h.update(format!("|{}:{}:{}", ts(start), a.events, a.cost_usd.normalize()).as_bytes());
    }
    hex::encode(h.finalize())
}

pub(super) fn billing_state(
    conn: &Connection,
    tenant: &TenantId,
    user: &UserId,
    period_start: DateTime<Utc>,
) -> StoreResult<BillingState> {
    let mut state = BillingState {
        tenant: tenant.clone(),
        user: user.clone(),
        billed_to: billed_to(conn, tenant.as_str(), user.as_str())?,
        period_start,
        usage: period_usage(conn, tenant, user, &period_start)?,
        adjustments: adjustments(conn, tenant.as_str(), user.as_str())?,
        pending_periods: Vec::new(),
        version: String::new(),
    };
    state.pending_periods = recorded_periods(conn, tenant.as_str(), user.as_str())?
        .into_iter()
        .filter(|p| state.billed_to.is_none_or(|b| *p >= b))
        .collect();
    state.version = version_of(&state);
    Ok(state)
}

/// Starts of the user's periods with recorded usage, oldest first.
fn recorded_periods(
    conn: &Connection,
    tenant: &str,
    user: &str,
) -> StoreResult<Vec<DateTime<Utc>>> {
    let rows: Vec<String> = conn
        .prepare_cached(
            "SELECT DISTINCT period_start FROM counters
             WHERE tenant = ?1 AND user = ?2 AND recorded_calls > 0",
        )?
        .query_map(params![tenant, user], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut out = rows
        .iter()
        .map(|s| parse_ts(s))
        .collect::<StoreResult<Vec<_>>>()?;
    out.sort();
    Ok(out)
}

pub(super) fn close_period(
    conn: &Connection,
    invoice: &Invoice,
    state: &BillingState,
    billed_to: DateTime<Utc>,
) -> StoreResult<CloseOutcome> {
    let (t, u) = (state.tenant.as_str(), state.user.as_str());
    let exists: Option<i64> = conn
        .prepare_cached(
            "SELECT 1 FROM invoices
             WHERE tenant = ?1 AND user = ?2 AND period_start = ?3 AND pseudonymised = 0",
        )?
        .query_row(params![t, u, ts(&invoice.period.start)], |r| r.get(0))
        .optional()?;
    if exists.is_some() {
        return Ok(CloseOutcome::AlreadyInvoiced);
    }
    let now = billing_state(conn, &state.tenant, &state.user, state.period_start)?;
    if now.version != state.version {
        return Ok(CloseOutcome::Changed);
    }
    if !put_invoice_once(conn, invoice)? {
        return Ok(CloseOutcome::AlreadyInvoiced);
    }
    conn.prepare_cached(
        "INSERT INTO billing (tenant, user, billed_to) VALUES (?1, ?2, ?3)
         ON CONFLICT (tenant, user) DO UPDATE SET billed_to = excluded.billed_to",
    )?
    .execute(params![t, u, ts(&billed_to)])?;
    // The version matched, so the stored adjustments are exactly `state.adjustments`.
    for start in state.adjustments.keys() {
        conn.prepare_cached(
            "DELETE FROM adjustments WHERE tenant = ?1 AND user = ?2 AND period_start = ?3",
        )?
        .execute(params![t, u, ts(start)])?;
    }
    Ok(CloseOutcome::Closed)
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
        .prepare_cached(
            "SELECT invoice FROM invoices WHERE tenant = ?1 AND user = ?2
             ORDER BY period_start DESC, id DESC",
        )?
        .query_map(params![tenant.as_str(), user.as_str()], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    rows.iter().map(|j| from_json(j)).collect()
}

pub(super) fn unpublished_invoices(conn: &Connection, limit: usize) -> StoreResult<Vec<Invoice>> {
    let rows: Vec<String> = conn
        .prepare_cached(
            "SELECT invoice FROM invoices WHERE published = 0 ORDER BY period_start, tenant, id LIMIT ?1",
        )?
        .query_map(params![sql_limit(limit)], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    rows.iter().map(|j| from_json(j)).collect()
}

pub(super) fn mark_invoice_published(conn: &Connection, invoice: &Invoice) -> StoreResult<()> {
    conn.prepare_cached(
        "UPDATE invoices SET published = 1, claimed_until = NULL,
             invoice = json_set(invoice, '$.published', json('true'))
         WHERE tenant = ?1 AND id = ?2",
    )?
    .execute(params![invoice.tenant.as_str(), invoice.id])?;
    Ok(())
}

/// Claims an unpublished invoice until `until` unless a claim holds at `now`.
pub(super) fn claim_invoice(
    conn: &Connection,
    invoice: &Invoice,
    now: &DateTime<Utc>,
    until: &DateTime<Utc>,
) -> StoreResult<bool> {
    let n = conn
        .prepare_cached(
            "UPDATE invoices SET claimed_until = ?4
             WHERE tenant = ?1 AND id = ?2 AND published = 0
               AND (claimed_until IS NULL OR claimed_until <= ?3)",
        )?
        .execute(params![
            invoice.tenant.as_str(),
            invoice.id,
            ts(now),
            ts(until)
        ])?;
    Ok(n == 1)
}

/// Drops the claim taken until `until`, if it is still the invoice's.
pub(super) fn release_invoice_claim(
    conn: &Connection,
    invoice: &Invoice,
    until: &DateTime<Utc>,
) -> StoreResult<()> {
    conn.prepare_cached(
        "UPDATE invoices SET claimed_until = NULL
         WHERE tenant = ?1 AND id = ?2 AND claimed_until = ?3",
    )?
    .execute(params![invoice.tenant.as_str(), invoice.id, ts(until)])?;
    Ok(())
}

pub(super) fn get_job_cursor(conn: &Connection, job: &str) -> StoreResult<Option<String>> {
    Ok(conn
        .prepare_cached("SELECT cursor FROM jobs WHERE name = ?1")?
        .query_row(params![job], |r| r.get(0))
        .optional()?)
}

pub(super) fn put_job_cursor(
    conn: &Connection,
    job: &str,
    cursor: Option<&str>,
) -> StoreResult<()> {
    match cursor {
        Some(c) => conn
            .prepare_cached(
                "INSERT INTO jobs (name, cursor) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET cursor = excluded.cursor",
            )?
            .execute(params![job, c])?,
        None => conn
            .prepare_cached("DELETE FROM jobs WHERE name = ?1")?
            .execute(params![job])?,
    };
    Ok(())
}
