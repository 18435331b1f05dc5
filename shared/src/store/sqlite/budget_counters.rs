//! Budget counters (issue 18; docs/budgets.md, "Counters"): the `budget_counters` table,
//! one row per (tenant, counter key, provider). Every write runs in the writer's
//! transaction: the guards of all counters are read and checked, then every increment is
//! one `INSERT … ON CONFLICT DO UPDATE` whose arithmetic (`int_add`, `dec_add`) runs in
//! SQLite; a failing guard writes nothing. Rows are pruned a day after `keep_until`: their
//! window's end, or 61 days after it for a `period` window (an org's invoice bills its
//! `period` counter when the aggregation closes the period, however late that pass runs).
//! A row keeps counted usage (`calls`, `tokens`, `cost`) and held usage (`held_*`: open
//! reservations, returned when they close) apart; guards compare their sum.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection};

use super::codec::{count, money, parse_count, parse_money, ts};
use super::SqliteStore;
use crate::budgets::{billed_elsewhere, CounterKey, CounterWrite, Scope, Window};
use crate::domain::{BudgetHold, ProviderId, Reservation, TenantId, UsageEvent, UserId};
use crate::limits::used;
use crate::store::{
    BudgetCounterStore, Guard, RecordOutcome, ReserveOutcome, StoreError, StoreResult,
    COUNTER_GRACE,
};
use crate::usage::{PeriodUsage, ProviderUsage, Tally};

/// Rows pruned per write, at most (old windows go a few at a time).
const PRUNE_BATCH: i64 = 50;

pub(super) fn read_counter(
    conn: &Connection,
    tenant: &str,
    counter: &str,
) -> StoreResult<PeriodUsage> {
    type Row = (String, [i64; 2], String, [i64; 2], String);
    let mut stmt = conn.prepare_cached(
        "SELECT provider, calls, tokens, cost, held_calls, held_tokens, held_cost
         FROM budget_counters WHERE tenant = ?1 AND counter = ?2",
    )?;
    let rows = stmt.query_map(params![tenant, counter], |r| -> rusqlite::Result<Row> {
        Ok((
            r.get(0)?,
            [r.get(1)?, r.get(2)?],
            r.get(3)?,
            [r.get(4)?, r.get(5)?],
            r.get(6)?,
        ))
    })?;
    let mut usage = PeriodUsage::default();
    for row in rows {
        let (provider, [calls, tokens], cost, [held_calls, held_tokens], held_cost) = row?;
        let provider = ProviderId::parse(provider)
            .map_err(|e| StoreError::Corrupt(format!("budget counter provider: {e}")))?;
        let p = ProviderUsage {
            recorded: Tally {
                calls: parse_count(calls)?,
                tokens: parse_count(tokens)?,
                cost_usd: parse_money(&cost)?,
            },
            held: Tally {
                calls: parse_count(held_calls)?,
                tokens: parse_count(held_tokens)?,
                cost_usd: parse_money(&held_cost)?,
            },
            ..ProviderUsage::default()
        };
        if p != ProviderUsage::default() {
            usage.by_provider.insert(provider, p);
        }
    }
    Ok(usage)
}

/// How long past its end a `period` window's counter is kept: two months, as DynamoDB
/// keeps the newest windows of each kind (docs/budgets.md, "Counters").
const PERIOD_KEPT: chrono::Duration = chrono::Duration::days(61);

/// Until when the row of `w`'s counter is kept (then pruned after [`COUNTER_GRACE`]).
fn keep_until(w: &CounterWrite) -> DateTime<Utc> {
    match w.counter.window() {
        Window::Period => w
            .window_end
            .checked_add_signed(PERIOD_KEPT)
            .unwrap_or(w.window_end),
        _ => w.window_end,
    }
}

fn add(conn: &Connection, tenant: &str, w: &CounterWrite) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO budget_counters (tenant, counter, provider, keep_until, calls, tokens, cost,
             held_calls, held_tokens, held_cost)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (tenant, counter, provider) DO UPDATE SET
             calls       = int_add(calls, excluded.calls),
             tokens      = int_add(tokens, excluded.tokens),
             cost        = dec_add(cost, excluded.cost),
             held_calls  = int_add(held_calls, excluded.held_calls),
             held_tokens = int_add(held_tokens, excluded.held_tokens),
             held_cost   = dec_add(held_cost, excluded.held_cost)",
    )?
    .execute(params![
        tenant,
        w.counter.key(),
        w.provider.as_str(),
        ts(&keep_until(w)),
        count(w.add.calls)?,
        count(w.add.tokens)?,
        money(w.add.cost_usd),
        count(w.held.calls)?,
        count(w.held.tokens)?,
        money(w.held.cost_usd),
    ])?;
    Ok(())
}

/// Adds `writes` (one event's, or one reservation's holds) to their counters
/// ([`add`]) and, for a write to an org's pooled `period` counter of an invoiced period,
/// adds the event to that period's pending adjustment (issue 18), unless the org does not
/// pay for it (another subscriber's invoice bills it: docs/billing.md, "One payer per
/// call").
pub(super) fn add_event(
    conn: &Connection,
    tenant: &str,
    writes: &[CounterWrite],
) -> StoreResult<()> {
    for w in writes {
        add(conn, tenant, w)?;
        if let Some((org, start)) = crate::store::billed_org_period(&w.counter) {
            if w.add != Tally::default() && !billed_elsewhere(writes, w.counter.scope()) {
                super::org_billing::note_late(conn, tenant, org, start, &w.add)?;
            }
        }
    }
    Ok(())
}

/// Returns a closed reservation's holds to their budget counters (in the caller's
/// transaction). A counter pruned meanwhile (its window ended over a day ago) has
/// nothing left to return to.
pub(super) fn return_budget_holds(
    conn: &Connection,
    tenant: &str,
    provider: &str,
    holds: &[BudgetHold],
) -> StoreResult<()> {
    for h in holds {
        conn.prepare_cached(
            "UPDATE budget_counters SET held_calls = held_calls - ?4, held_tokens = held_tokens - ?5,
                 held_cost = dec_sub(held_cost, ?6)
             WHERE tenant = ?1 AND counter = ?2 AND provider = ?3",
        )?
        .execute(params![
            tenant,
            h.counter,
            provider,
            count(h.held.calls)?,
            count(h.held.tokens)?,
            money(h.held.cost_usd),
        ])?;
    }
    Ok(())
}

fn prune(conn: &Connection, now: DateTime<Utc>) -> StoreResult<()> {
    conn.prepare_cached(
        "DELETE FROM budget_counters WHERE rowid IN
             (SELECT rowid FROM budget_counters WHERE keep_until < ?1 LIMIT ?2)",
    )?
    .execute(params![ts(&(now - COUNTER_GRACE)), PRUNE_BATCH])?;
    Ok(())
}

/// The first guard of `writes` that does not pass on the counters as they are now
/// (recorded plus held), if any.
pub(super) fn failing_guard<'a>(
    conn: &Connection,
    tenant: &str,
    writes: &'a [CounterWrite],
) -> StoreResult<Option<&'a Guard>> {
    for w in writes.iter().filter(|w| !w.guards.is_empty()) {
        let usage = read_counter(conn, tenant, &w.counter.key())?;
        for g in &w.guards {
            let now = used(&g.metric, &usage)
                .map_err(|_| StoreError::Overflow("budget counter".to_owned()))?;
            let ok = match now.checked_add(g.increment) {
                None => false,
                Some(after) if g.strict => after < g.limit,
                Some(after) => after <= g.limit,
            };
            if !ok {
                return Ok(Some(g));
            }
        }
    }
    Ok(None)
}

/// Applies every write of a reservation that was just held (its guards were checked by
/// [`failing_guard`] in the same transaction), then prunes ended windows.
pub(super) fn add_all(
    conn: &Connection,
    tenant: &str,
    writes: &[CounterWrite],
    now: DateTime<Utc>,
) -> StoreResult<()> {
    if writes.is_empty() {
        return Ok(());
    }
    add_event(conn, tenant, writes)?;
    prune(conn, now)
}

/// Applies `writes` all or none (in the caller's transaction); `false` when a guard
/// failed.
pub(super) fn apply_all(
    conn: &Connection,
    tenant: &str,
    writes: &[CounterWrite],
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    if failing_guard(conn, tenant, writes)?.is_some() {
        return Ok(false);
    }
    add_event(conn, tenant, writes)?;
    prune(conn, now)?;
    Ok(true)
}

/// Whether `user`'s own scope holds budgets (the check reads them only then).
pub(super) fn user_has_budgets(
    conn: &Connection,
    tenant: &TenantId,
    user: &UserId,
) -> StoreResult<bool> {
    let scope = Scope::User {
        user_id: user.clone(),
    };
    Ok(conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM budgets WHERE tenant = ?1 AND scope = ?2)")?
        .query_row(params![tenant.as_str(), scope.key()], |r| r.get(0))?)
}

#[async_trait]
impl BudgetCounterStore for SqliteStore {
    async fn get_budget_counters(
        &self,
        tenant: &TenantId,
        counters: &[CounterKey],
    ) -> StoreResult<Vec<PeriodUsage>> {
        if counters.is_empty() {
            return Ok(Vec::new());
        }
        let tenant = tenant.clone();
        let keys: Vec<String> = counters.iter().map(CounterKey::key).collect();
        self.read(move |c| {
            keys.iter()
                .map(|k| read_counter(c, tenant.as_str(), k))
                .collect()
        })
        .await
    }

    async fn add_to_budget_counters(
        &self,
        tenant: &TenantId,
        writes: &[CounterWrite],
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        if writes.is_empty() {
            return Ok(true);
        }
        let (tenant, writes) = (tenant.clone(), writes.to_vec());
        self.write(move |c| apply_all(c, tenant.as_str(), &writes, now))
            .await
    }

    async fn reserve_counted(
        &self,
        reservation: &Reservation,
        guards: &[Guard],
        writes: &[CounterWrite],
        now: DateTime<Utc>,
    ) -> StoreResult<ReserveOutcome> {
        let (r, guards, writes) = (reservation.clone(), guards.to_vec(), writes.to_vec());
        self.write(move |c| {
            let tenant = r.tenant.as_str();
            // Budget guards first (a read), so that a refusal writes nothing; then the plan
            // hold (its own guards, then its writes), then the budget holds.
            if let Some(g) = failing_guard(c, tenant, &writes)? {
                return Ok(ReserveOutcome::Denied {
                    metric: g.metric.clone(),
                });
            }
            let outcome = super::usage::reserve(c, &r, &guards)?;
            if outcome == ReserveOutcome::Reserved {
                add_all(c, tenant, &writes, now)?;
            }
            Ok(outcome)
        })
        .await
    }

    async fn record_events_counted(
        &self,
        events: &[UsageEvent],
        writes: &[Vec<CounterWrite>],
    ) -> StoreResult<Vec<RecordOutcome>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        if writes.len() != events.len() {
            return Err(StoreError::Corrupt(
                "one list of counter writes per event is expected".to_owned(),
            ));
        }
        let (events, writes) = (events.to_vec(), writes.to_vec());
        self.write(move |c| {
            let mut outcomes = Vec::with_capacity(events.len());
            for (e, w) in events.iter().zip(&writes) {
                let outcome = super::usage::record_event(c, e)?;
                if outcome == RecordOutcome::Recorded && !w.is_empty() {
                    // Ingest writes carry no guard: usage that happened is recorded.
                    apply_all(c, e.tenant.as_str(), w, e.recorded_at)?;
                }
                outcomes.push(outcome);
            }
            Ok(outcomes)
        })
        .await
    }
}
