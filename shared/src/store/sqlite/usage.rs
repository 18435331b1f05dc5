//! Events, period counters, daily rollups and reservations.
//!
//! Every function here runs on one connection inside a transaction the caller owns (the
//! writer's savepoint for writes, a read transaction for reads). Counters only change
//! through [`apply`] (one `INSERT … ON CONFLICT DO UPDATE`) and [`return_hold`] (one
//! `UPDATE`), whose arithmetic (`int_add`, `dec_add`, `dec_sub`) runs in SQLite.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{params, Connection, OptionalExtension};

use super::codec::{
    count, day, from_json, id, money, parse_count, parse_day, parse_money,
    parse_reservation_status, parse_ts, reservation_status, to_json, ts,
};
use super::event_row::{self, EventRow, EVENT_COLUMNS};
use crate::domain::{
    BudgetHold, EventId, ProviderId, Reservation, ReservationStatus, TenantId, UsageEvent, UserId,
};
use crate::limits::Metric;
use crate::store::{
    DailyUsage, Guard, RecordOutcome, ReleaseOutcome, ReserveOutcome, StoreError, StoreResult,
};
use crate::usage::{PeriodUsage, ProviderUsage, Tally};

/// The counter row of one (tenant, user, period, provider).
struct CounterKey<'a> {
    tenant: &'a str,
    user: &'a str,
    period_start: String,
    provider: &'a str,
}

/// What one write adds to a counter row.
#[derive(Default)]
struct Delta {
    recorded_calls: i64,
    recorded_tokens: i64,
    recorded_cost: rust_decimal::Decimal,
    held_calls: i64,
    held_tokens: i64,
    held_cost: rust_decimal::Decimal,
    unpriced: i64,
    estimated: i64,
    errors: i64,
    latency_sum: i64,
    latency_count: i64,
}

const APPLY: &str = "
    INSERT INTO counters (tenant, user, period_start, provider,
        recorded_calls, recorded_tokens, recorded_cost, held_calls, held_tokens, held_cost,
        unpriced, estimated, errors, latency_sum, latency_count)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
    ON CONFLICT (tenant, user, period_start, provider) DO UPDATE SET
        recorded_calls  = int_add(recorded_calls, excluded.recorded_calls),
        recorded_tokens = int_add(recorded_tokens, excluded.recorded_tokens),
        recorded_cost   = dec_add(recorded_cost, excluded.recorded_cost),
        held_calls      = int_add(held_calls, excluded.held_calls),
        held_tokens     = int_add(held_tokens, excluded.held_tokens),
        held_cost       = dec_add(held_cost, excluded.held_cost),
        unpriced        = int_add(unpriced, excluded.unpriced),
        estimated       = int_add(estimated, excluded.estimated),
        errors          = int_add(errors, excluded.errors),
        latency_sum     = int_add(latency_sum, excluded.latency_sum),
        latency_count   = int_add(latency_count, excluded.latency_count)";

/// Adds `d` to the counter row `key`, creating it when absent.
fn apply(conn: &Connection, key: &CounterKey<'_>, d: &Delta) -> StoreResult<()> {
    conn.prepare_cached(APPLY)?.execute(params![
        key.tenant,
        key.user,
        key.period_start,
        key.provider,
        d.recorded_calls,
        d.recorded_tokens,
        money(d.recorded_cost),
        d.held_calls,
        d.held_tokens,
        money(d.held_cost),
        d.unpriced,
        d.estimated,
        d.errors,
        d.latency_sum,
        d.latency_count,
    ])?;
    Ok(())
}

fn hold_delta(held: &Tally) -> StoreResult<Delta> {
    Ok(Delta {
        held_calls: count(held.calls)?,
        held_tokens: count(held.tokens)?,
        held_cost: held.cost_usd,
        ..Delta::default()
    })
}

/// Returns a closed reservation's hold to its counter row (which the hold created).
fn return_hold(conn: &Connection, key: &CounterKey<'_>, held: &Tally) -> StoreResult<()> {
    let changed = conn
        .prepare_cached(
            "UPDATE counters SET held_calls = held_calls - ?5, held_tokens = held_tokens - ?6,
                 held_cost = dec_sub(held_cost, ?7)
             WHERE tenant = ?1 AND user = ?2 AND period_start = ?3 AND provider = ?4",
        )?
        .execute(params![
            key.tenant,
            key.user,
            key.period_start,
            key.provider,
            count(held.calls)?,
            count(held.tokens)?,
            money(held.cost_usd),
        ])?;
    if changed == 1 {
        Ok(())
    } else {
        Err(StoreError::Corrupt(
            "a held reservation has no counter row".to_owned(),
        ))
    }
}

pub(super) fn record_events(
    conn: &Connection,
    events: &[UsageEvent],
) -> StoreResult<Vec<RecordOutcome>> {
    events.iter().map(|e| record_event(conn, e)).collect()
}

pub(super) fn record_event(conn: &Connection, e: &UsageEvent) -> StoreResult<RecordOutcome> {
    if !event_row::insert(conn, e)? {
        let stored = event_row::stored_fingerprint(conn, e.tenant.as_str(), e.event_id.as_str())?;
        return Ok(if stored.as_deref() == Some(e.fingerprint.as_str()) {
            RecordOutcome::Duplicate
        } else {
            RecordOutcome::Conflict
        });
    }

    let tally = e.tally();
    let latency = e.latency_ms.map(count).transpose()?;
    let recorded = Delta {
        recorded_calls: 1,
        recorded_tokens: count(tally.tokens)?,
        recorded_cost: tally.cost_usd,
        unpriced: i64::from(e.cost_usd.is_none()),
        estimated: i64::from(e.estimated),
        errors: i64::from(e.status_code.is_some_and(|s| s >= 400)),
        latency_sum: latency.unwrap_or(0),
        latency_count: i64::from(latency.is_some()),
        ..Delta::default()
    };
    let key = CounterKey {
        tenant: e.tenant.as_str(),
        user: e.user.as_str(),
        period_start: ts(&e.period_start),
        provider: e.provider.as_str(),
    };
    apply(conn, &key, &recorded)?;
    // A late event is an adjustment of its payer only (docs/billing.md, "One payer per call").
    if e.user_pays() {
        super::billing::adjust_if_billed(
            conn,
            key.tenant,
            key.user,
            &e.period_start,
            tally.cost_usd,
        )?;
    }

    conn.prepare_cached(
        "INSERT INTO daily (tenant, user, day, provider, calls, tokens, cost) VALUES (?1, ?2, ?3, ?4, 1, ?5, ?6)
         ON CONFLICT (tenant, user, day, provider) DO UPDATE SET
             calls  = int_add(calls, 1),
             tokens = int_add(tokens, excluded.tokens),
             cost   = dec_add(cost, excluded.cost)",
    )?
    .execute(params![
        e.tenant.as_str(),
        e.user.as_str(),
        day(e.timestamp.date_naive()),
        e.provider.as_str(),
        count(tally.tokens)?,
        money(tally.cost_usd),
    ])?;

    if let Some(rid) = &e.reservation_id {
        close_held(
            conn,
            "UPDATE reservations SET status = 'settled', closed_at = ?4
             WHERE tenant = ?1 AND id = ?2 AND user = ?3 AND status = 'held'
             RETURNING tenant, user, provider, period_start, held_calls, held_tokens, held_cost, budget_holds, id",
            params![e.tenant.as_str(), rid, e.user.as_str(), ts(&e.recorded_at)],
        )?;
    }
    Ok(RecordOutcome::Recorded)
}

/// A reservation's budget holds from their column (NULL: none).
fn budget_holds_of(json: Option<&str>) -> StoreResult<Vec<BudgetHold>> {
    json.map_or(Ok(Vec::new()), from_json)
}

/// Runs an `UPDATE reservations … RETURNING` that closes held reservations, then returns
/// each closed one's hold to its counters. Returns how many it closed.
fn close_held(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> StoreResult<usize> {
    type Row = (
        String,
        String,
        String,
        String,
        i64,
        i64,
        String,
        Option<String>,
        String,
    );
    let closed: Vec<Row> = conn
        .prepare_cached(sql)?
        .query_map(params, |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
                r.get(8)?,
            ))
        })?
        .collect::<Result<_, _>>()?;
    let n = closed.len();
    for (tenant, user, provider, period_start, calls, tokens, cost, budget_holds, rid) in closed {
        let holds = budget_holds_of(budget_holds.as_deref())?;
        super::budget_counters::return_budget_holds(conn, &tenant, &provider, &holds)?;
        // Issue 19: a reservation that held wallet credit gives it back with its close.
        super::prepaid::release_credit(conn, &tenant, &rid)?;
        let held = Tally {
            calls: parse_count(calls)?,
            tokens: parse_count(tokens)?,
            cost_usd: parse_money(&cost)?,
        };
        let key = CounterKey {
            tenant: &tenant,
            user: &user,
            period_start,
            provider: &provider,
        };
        return_hold(conn, &key, &held)?;
    }
    Ok(n)
}

/// The SQL that compares `used + increment` with the limit for one metric: `?1..?3` the
/// counter row's tenant, user and period, `?4` the provider (NULL: all), `?5` the
/// increment, `?6` the limit. Yields -1, 0 or 1.
fn guard_sql(metric: &Metric) -> &'static str {
    match metric {
        Metric::Calls(_) => {
            "SELECT dec_cmp(dec_add(COALESCE((SELECT SUM(int_add(recorded_calls, held_calls)) FROM counters
                 WHERE tenant = ?1 AND user = ?2 AND period_start = ?3 AND (?4 IS NULL OR provider = ?4)), 0), ?5), ?6)"
        }
        Metric::Tokens(_) => {
            "SELECT dec_cmp(dec_add(COALESCE((SELECT SUM(int_add(recorded_tokens, held_tokens)) FROM counters
                 WHERE tenant = ?1 AND user = ?2 AND period_start = ?3 AND (?4 IS NULL OR provider = ?4)), 0), ?5), ?6)"
        }
        Metric::CostUsd => {
            "SELECT dec_cmp(dec_add((SELECT dec_sum(dec_add(recorded_cost, held_cost)) FROM counters
                 WHERE tenant = ?1 AND user = ?2 AND period_start = ?3 AND (?4 IS NULL OR provider = ?4)), ?5), ?6)"
        }
    }
}

pub(super) fn reserve(
    conn: &Connection,
    r: &Reservation,
    guards: &[Guard],
) -> StoreResult<ReserveOutcome> {
    let period_start = ts(&r.period_start);
    for g in guards {
        let provider = match &g.metric {
            Metric::Calls(p) | Metric::Tokens(p) => p.as_ref().map(ProviderId::as_str),
            Metric::CostUsd => None,
        };
        let cmp: i64 = conn.prepare_cached(guard_sql(&g.metric))?.query_row(
            params![
                r.tenant.as_str(),
                r.user.as_str(),
                period_start,
                provider,
                money(g.increment),
                money(g.limit)
            ],
            |row| row.get(0),
        )?;
        if cmp > 0 || (g.strict && cmp == 0) {
            return Ok(ReserveOutcome::Denied {
                metric: g.metric.clone(),
            });
        }
    }
    let inserted = conn
        .prepare_cached(
            "INSERT INTO reservations (tenant, id, user, provider, period_start, held_calls, held_tokens, held_cost,
                 status, created_at, expires_at, budget_holds)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
             ON CONFLICT (tenant, id) DO NOTHING",
        )?
        .execute(params![
            r.tenant.as_str(),
            r.id,
            r.user.as_str(),
            r.provider.as_str(),
            period_start,
            count(r.held.calls)?,
            count(r.held.tokens)?,
            money(r.held.cost_usd),
            reservation_status(ReservationStatus::Held),
            ts(&r.created_at),
            ts(&r.expires_at),
            (!r.budget_holds.is_empty())
                .then(|| to_json(&r.budget_holds))
                .transpose()?,
        ])?;
    if inserted == 0 {
        return Err(StoreError::Corrupt(format!(
            "reservation id {} is already used",
            r.id
        )));
    }
    let key = CounterKey {
        tenant: r.tenant.as_str(),
        user: r.user.as_str(),
        period_start,
        provider: r.provider.as_str(),
    };
    apply(conn, &key, &hold_delta(&r.held)?)?;
    Ok(ReserveOutcome::Reserved)
}

pub(super) fn release_reservation(
    conn: &Connection,
    tenant: &TenantId,
    id: &str,
) -> StoreResult<ReleaseOutcome> {
    let closed = close_held(
        conn,
        "UPDATE reservations SET status = 'released', closed_at = ?3
         WHERE tenant = ?1 AND id = ?2 AND status = 'held'
         RETURNING tenant, user, provider, period_start, held_calls, held_tokens, held_cost, budget_holds, id",
        params![tenant.as_str(), id, ts(&Utc::now())],
    )?;
    if closed > 0 {
        return Ok(ReleaseOutcome::Released);
    }
    let status: Option<String> = conn
        .prepare_cached("SELECT status FROM reservations WHERE tenant = ?1 AND id = ?2")?
        .query_row(params![tenant.as_str(), id], |r| r.get(0))
        .optional()?;
    match status {
        None => Ok(ReleaseOutcome::NotFound),
        Some(s) => Ok(ReleaseOutcome::AlreadyClosed(parse_reservation_status(&s)?)),
    }
}

pub(super) fn expire_reservations(
    conn: &Connection,
    now: DateTime<Utc>,
    limit: usize,
) -> StoreResult<usize> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    close_held(
        conn,
        "UPDATE reservations SET status = 'expired', closed_at = ?1
         WHERE rowid IN (SELECT rowid FROM reservations WHERE status = 'held' AND expires_at <= ?1
                         ORDER BY expires_at LIMIT ?2)
         RETURNING tenant, user, provider, period_start, held_calls, held_tokens, held_cost, budget_holds, id",
        params![ts(&now), limit],
    )
}

pub(super) fn get_reservation(
    conn: &Connection,
    tenant: &TenantId,
    rid: &str,
) -> StoreResult<Option<Reservation>> {
    type Row = (
        String,
        String,
        String,
        i64,
        i64,
        String,
        String,
        String,
        String,
        Option<String>,
    );
    let row: Option<Row> = conn
        .prepare_cached(
            "SELECT user, provider, period_start, held_calls, held_tokens, held_cost, status, created_at, expires_at,
                    budget_holds
             FROM reservations WHERE tenant = ?1 AND id = ?2",
        )?
        .query_row(params![tenant.as_str(), rid], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?, r.get(9)?))
        })
        .optional()?;
    let Some((
        user,
        provider,
        period_start,
        calls,
        tokens,
        cost,
        status,
        created_at,
        expires_at,
        budget_holds,
    )) = row
    else {
        return Ok(None);
    };
    Ok(Some(Reservation {
        id: rid.to_owned(),
        tenant: tenant.clone(),
        user: id(user, UserId::parse)?,
        provider: id(provider, ProviderId::parse)?,
        period_start: parse_ts(&period_start)?,
        held: Tally {
            calls: parse_count(calls)?,
            tokens: parse_count(tokens)?,
            cost_usd: parse_money(&cost)?,
        },
        status: parse_reservation_status(&status)?,
        created_at: parse_ts(&created_at)?,
        expires_at: parse_ts(&expires_at)?,
        budget_holds: budget_holds_of(budget_holds.as_deref())?,
    }))
}

pub(super) fn get_event(
    conn: &Connection,
    tenant: &TenantId,
    event_id: &EventId,
) -> StoreResult<Option<UsageEvent>> {
    let row = conn
        .prepare_cached(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE tenant = ?1 AND event_id = ?2"
        ))?
        .query_row(params![tenant.as_str(), event_id.as_str()], EventRow::read)
        .optional()?;
    row.map(EventRow::into_event).transpose()
}

/// One period's counters, per provider; providers whose counters are all zero (a hold
/// taken and returned) are left out, so "nothing happened" reads as the empty usage.
pub(super) fn period_usage(
    conn: &Connection,
    tenant: &TenantId,
    user: &UserId,
    start: &DateTime<Utc>,
) -> StoreResult<PeriodUsage> {
    type Row = (String, [i64; 2], String, [i64; 2], String, [i64; 5]);
    let rows: Vec<Row> = conn
        .prepare_cached(
            "SELECT provider, recorded_calls, recorded_tokens, recorded_cost, held_calls, held_tokens, held_cost,
                    unpriced, estimated, errors, latency_sum, latency_count
             FROM counters WHERE tenant = ?1 AND user = ?2 AND period_start = ?3",
        )?
        .query_map(params![tenant.as_str(), user.as_str(), ts(start)], |r| {
            Ok((
                r.get(0)?,
                [r.get(1)?, r.get(2)?],
                r.get(3)?,
                [r.get(4)?, r.get(5)?],
                r.get(6)?,
                [r.get(7)?, r.get(8)?, r.get(9)?, r.get(10)?, r.get(11)?],
            ))
        })?
        .collect::<Result<_, _>>()?;
    let mut usage = PeriodUsage::default();
    for (provider, [rc, rt], rcost, [hc, ht], hcost, [unpriced, estimated, errors, lsum, lcount]) in
        rows
    {
        let p = ProviderUsage {
            recorded: Tally {
                calls: parse_count(rc)?,
                tokens: parse_count(rt)?,
                cost_usd: parse_money(&rcost)?,
            },
            held: Tally {
                calls: parse_count(hc)?,
                tokens: parse_count(ht)?,
                cost_usd: parse_money(&hcost)?,
            },
            unpriced_calls: parse_count(unpriced)?,
            estimated_calls: parse_count(estimated)?,
            error_calls: parse_count(errors)?,
            latency_ms_sum: parse_count(lsum)?,
            latency_count: parse_count(lcount)?,
        };
        if p != ProviderUsage::default() {
            usage
                .by_provider
                .insert(id(provider, ProviderId::parse)?, p);
        }
    }
    Ok(usage)
}

/// Once-only keys of the alerts stored for (tenant, user, period).
pub(super) fn fired_alerts(
    conn: &Connection,
    tenant: &TenantId,
    user: &UserId,
    start: &DateTime<Utc>,
) -> StoreResult<BTreeSet<String>> {
    let keys = conn
        .prepare_cached(
            "SELECT key FROM alerts WHERE tenant = ?1 AND user = ?2 AND period_start = ?3 AND rearmed = 0",
        )?
        .query_map(params![tenant.as_str(), user.as_str(), ts(start)], |r| {
            r.get(0)
        })?
        .collect::<Result<_, _>>()?;
    Ok(keys)
}

pub(super) fn daily_usage(
    conn: &Connection,
    tenant: &TenantId,
    user: &UserId,
    from: NaiveDate,
    to: NaiveDate,
) -> StoreResult<Vec<DailyUsage>> {
    let rows: Vec<(String, String, i64, i64, String)> = conn
        .prepare_cached(
            "SELECT day, provider, calls, tokens, cost FROM daily
             WHERE tenant = ?1 AND user = ?2 AND day BETWEEN ?3 AND ?4 ORDER BY day, provider",
        )?
        .query_map(
            params![tenant.as_str(), user.as_str(), day(from), day(to)],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )?
        .collect::<Result<_, _>>()?;
    let mut days: BTreeMap<NaiveDate, DailyUsage> = BTreeMap::new();
    for (d, provider, calls, tokens, cost) in rows {
        let d = parse_day(&d)?;
        let tally = Tally {
            calls: parse_count(calls)?,
            tokens: parse_count(tokens)?,
            cost_usd: parse_money(&cost)?,
        };
        days.entry(d)
            .or_insert_with(|| DailyUsage {
                day: d,
                by_provider: BTreeMap::new(),
            })
            .by_provider
            .insert(id(provider, ProviderId::parse)?, tally);
    }
    Ok(days.into_values().collect())
}
