//! Budget counters (issue 18; docs/budgets.md, "Counters"): the `budget_counters` table,
//! one row per (tenant, counter key, provider). Every write runs in the writer's
//! transaction: the guards of all counters are read and checked, then every increment is
//! one `INSERT … ON CONFLICT DO UPDATE` whose arithmetic (`int_add`, `dec_add`) runs in
//! SQLite; a failing guard writes nothing. Rows are pruned a day after their window ends.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection};

use super::codec::{count, money, parse_count, parse_money, ts};
use super::SqliteStore;
use crate::budgets::{CounterKey, CounterWrite, Scope};
use crate::domain::{ProviderId, TenantId, UsageEvent, UserId};
use crate::limits::used;
use crate::store::{BudgetCounterStore, RecordOutcome, StoreError, StoreResult, COUNTER_GRACE};
use crate::usage::{PeriodUsage, ProviderUsage, Tally};

/// Rows pruned per write, at most (old windows go a few at a time).
const PRUNE_BATCH: i64 = 50;

fn read_counter(conn: &Connection, tenant: &str, counter: &str) -> StoreResult<PeriodUsage> {
    let mut stmt = conn.prepare_cached(
        "SELECT provider, calls, tokens, cost FROM budget_counters WHERE tenant = ?1 AND counter = ?2",
    )?;
    let rows = stmt.query_map(params![tenant, counter], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, String>(3)?,
        ))
    })?;
    let mut usage = PeriodUsage::default();
    for row in rows {
        let (provider, calls, tokens, cost) = row?;
        let provider = ProviderId::parse(provider)
            .map_err(|e| StoreError::Corrupt(format!("budget counter provider: {e}")))?;
        usage.by_provider.insert(
            provider,
            ProviderUsage {
                recorded: Tally {
                    calls: parse_count(calls)?,
                    tokens: parse_count(tokens)?,
                    cost_usd: parse_money(&cost)?,
                },
                ..ProviderUsage::default()
            },
        );
    }
    Ok(usage)
}

fn add(conn: &Connection, tenant: &str, w: &CounterWrite) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO budget_counters (tenant, counter, provider, window_end, calls, tokens, cost)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (tenant, counter, provider) DO UPDATE SET
             calls  = int_add(calls, excluded.calls),
             tokens = int_add(tokens, excluded.tokens),
             cost   = dec_add(cost, excluded.cost)",
    )?
    .execute(params![
        tenant,
        w.counter.key(),
        w.provider.as_str(),
        ts(&w.window_end),
        count(w.add.calls)?,
        count(w.add.tokens)?,
        money(w.add.cost_usd),
    ])?;
    Ok(())
}

fn prune(conn: &Connection, now: DateTime<Utc>) -> StoreResult<()> {
    conn.prepare_cached(
        "DELETE FROM budget_counters WHERE rowid IN
             (SELECT rowid FROM budget_counters WHERE window_end < ?1 LIMIT ?2)",
    )?
    .execute(params![ts(&(now - COUNTER_GRACE)), PRUNE_BATCH])?;
    Ok(())
}

/// Whether every guard of `writes` passes on the counters as they are now.
fn guards_pass(conn: &Connection, tenant: &str, writes: &[CounterWrite]) -> StoreResult<bool> {
    for w in writes.iter().filter(|w| !w.guards.is_empty()) {
        let usage = read_counter(conn, tenant, &w.counter.key())?;
        for g in &w.guards {
            let now = used(&g.metric, &usage)
                .map_err(|_| StoreError::Overflow("budget counter".to_owned()))?;
            let Some(after) = now.checked_add(g.increment) else {
                return Ok(false);
            };
            let ok = if g.strict {
                after < g.limit
            } else {
                after <= g.limit
            };
            if !ok {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// Applies `writes` all or none (in the caller's transaction); `false` when a guard
/// failed.
pub(super) fn apply_all(
    conn: &Connection,
    tenant: &str,
    writes: &[CounterWrite],
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    if !guards_pass(conn, tenant, writes)? {
        return Ok(false);
    }
    for w in writes {
        add(conn, tenant, w)?;
    }
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
