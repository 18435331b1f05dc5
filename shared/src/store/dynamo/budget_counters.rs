//! Budget counters (docs/dynamodb.md, "Budget counters"): one item per counter.
//!
//! - `PK = T#<tenant>#BC#<counter key>`, `SK = C` ([`CounterKey::key`] names the scope,
//!   the window and its start, and the member of `each_member` budgets): a new window is
//!   a new item, so nothing is ever reset; `ttl` is a day after the window's end, so old
//!   windows go by themselves.
//! - Attributes, numbers: `c|<provider>`, `t|<provider>`, `$|<provider>` (calls, tokens,
//!   cost counted in the window) and the totals `c|*`, `t|*`, `$|*`, so that every guard
//!   (`calls:<p>`, `calls:*`, `tokens:<p>`, `tokens:*`, `cost_usd`) is one condition.
//!   These count recorded and held usage together; `hc|<provider>`, `ht|…`, `h$|…` say
//!   how much of it is held by open reservations (returned when they close).
//!
//! Writes only `ADD` (the arithmetic runs in DynamoDB); guarded writes of several
//! counters are one `TransactWriteItems` whose conditions are the guards, so all or none
//! pass. Reads are one `BatchGetItem` (strongly consistent).

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::TransactWriteItem;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::codec::{count_of, decimal_of, get_s, n, Item};
use super::expressions::Update;
use super::layout;
use super::requests::{key, MAX_TX_ITEMS};
use super::DynamoStore;
use crate::budgets::{CounterKey, CounterWrite};
use crate::domain::{BudgetHold, ProviderId, Reservation, TenantId, UsageEvent};
use crate::limits::{Guard, Metric};
use crate::store::{
    BudgetCounterStore, RecordOutcome, ReserveOutcome, StoreError, StoreResult, COUNTER_GRACE,
};
use crate::usage::{PeriodUsage, ProviderUsage, Tally};

pub(super) const COUNTER_SK: &str = "C";
const ALL: &str = "*";
/// Held usage (open reservations) per provider: `hc|<provider>`, `ht|…`, `h$|…`, also
/// counted in the used attributes (`c|…`, …) that guards compare.
const HELD_CALLS: &str = "hc";
const HELD_TOKENS: &str = "ht";
const HELD_COST: &str = "h$";
/// The number of budgets on a user's own scope, on the user's state item: the check
/// reads the user's budgets only when it is above zero (so a user without budgets is
/// still checked with one `GetItem`).
pub(super) const USER_BUDGETS: &str = "nb";

pub(super) fn counter_pk(tenant: &TenantId, counter: &str) -> String {
    format!("T#{tenant}#BC#{counter}")
}

fn attr(kind: &str, provider: &str) -> String {
    format!("{kind}|{provider}")
}

fn guard_attr(metric: &Metric) -> String {
    match metric {
        Metric::Calls(Some(p)) => attr("c", p.as_str()),
        Metric::Calls(None) => attr("c", ALL),
        Metric::Tokens(Some(p)) => attr("t", p.as_str()),
        Metric::Tokens(None) => attr("t", ALL),
        Metric::CostUsd => attr("$", ALL),
    }
}

/// Increments of one counter item, by attribute.
#[derive(Debug, Clone, Default)]
pub(super) struct CounterAdds {
    pub window_end: Option<DateTime<Utc>>,
    pub adds: BTreeMap<String, Decimal>,
}

impl CounterAdds {
    fn bump(&mut self, name: String, by: Decimal) -> StoreResult<()> {
        let slot = self.adds.entry(name).or_default();
        *slot = slot
            .checked_add(by)
            .ok_or_else(|| StoreError::Overflow("budget counter increment".into()))?;
        Ok(())
    }

    fn end_at(&mut self, end: DateTime<Utc>) {
        self.window_end = Some(self.window_end.map_or(end, |e| e.max(end)));
    }

    /// Adds `counted + held` to the used attributes (per provider and totals) and `held`
    /// to the held ones (`sign` -1 takes them away).
    fn apply(
        &mut self,
        provider: &str,
        counted: &Tally,
        held: &Tally,
        sign: i64,
    ) -> StoreResult<()> {
        let sign = Decimal::from(sign);
        let used = |a: u64, b: u64| Decimal::from(a) + Decimal::from(b);
        let used_cost = counted
            .cost_usd
            .checked_add(held.cost_usd)
            .ok_or_else(|| StoreError::Overflow("budget counter increment".into()))?;
        for (kind, by) in [
            ("c", used(counted.calls, held.calls)),
            ("t", used(counted.tokens, held.tokens)),
            ("$", used_cost),
        ] {
            self.bump(attr(kind, provider), sign * by)?;
            self.bump(attr(kind, ALL), sign * by)?;
        }
        for (kind, by) in [
            (HELD_CALLS, Decimal::from(held.calls)),
            (HELD_TOKENS, Decimal::from(held.tokens)),
            (HELD_COST, held.cost_usd),
        ] {
            self.bump(attr(kind, provider), sign * by)?;
        }
        Ok(())
    }

    pub fn add(&mut self, w: &CounterWrite) -> StoreResult<()> {
        self.end_at(w.window_end);
        self.apply(w.provider.as_str(), &w.add, &w.held, 1)
    }

    /// Takes back what a closing reservation held on this counter under `provider`.
    pub fn unhold(&mut self, provider: &ProviderId, hold: &BudgetHold) -> StoreResult<()> {
        self.end_at(hold.window_end);
        self.apply(provider.as_str(), &Tally::default(), &hold.held, -1)
    }

    /// The update: every non-zero increment and the `ttl`.
    pub fn update(&self) -> Update {
        let mut u = Update::new();
        for (name, by) in self.adds.iter().filter(|(_, v)| !v.is_zero()) {
            u.add(name, n(by));
        }
        if let Some(end) = self.window_end {
            u.set(layout::TTL, n((end + COUNTER_GRACE).timestamp()));
        }
        u
    }
}

/// The condition of `guard` on a counter item; `None` when it cannot pass even on an
/// empty counter.
pub(super) fn guard_condition(u: &mut Update, guard: &Guard) -> Option<()> {
    let room = guard.limit.checked_sub(guard.increment)?;
    let empty_passes = if guard.strict {
        Decimal::ZERO < room
    } else {
        Decimal::ZERO <= room
    };
    if !empty_passes {
        return None;
    }
    let name = guard_attr(&guard.metric);
    let op = if guard.strict { "<" } else { "<=" };
    u.condition(|x| {
        let a = x.name(&name);
        let v = x.value(n(room));
        format!("attribute_not_exists({a}) OR {a} {op} {v}")
    });
    Some(())
}

/// The usage a counter item holds: `held` from the held attributes, `recorded` the used
/// attributes less them.
fn usage_of(item: &Item) -> StoreResult<PeriodUsage> {
    // provider -> ([used calls, tokens, cost], [held calls, tokens, cost])
    let mut raw: BTreeMap<&str, ([Decimal; 3], [Decimal; 3])> = BTreeMap::new();
    for (name, value) in item {
        let Some((kind, provider)) = name.split_once('|') else {
            continue;
        };
        if provider == ALL {
            continue;
        }
        let (held, i) = match kind {
            "c" => (false, 0),
            "t" => (false, 1),
            "$" => (false, 2),
            HELD_CALLS => (true, 0),
            HELD_TOKENS => (true, 1),
            HELD_COST => (true, 2),
            _ => continue,
        };
        let entry = raw.entry(provider).or_default();
        let slot = if held { &mut entry.1 } else { &mut entry.0 };
        slot[i] = decimal_of(value)?;
    }
    let mut usage = PeriodUsage::default();
    for (provider, (used, held)) in raw {
        let provider = ProviderId::parse(provider)
            .map_err(|e| StoreError::Corrupt(format!("budget counter attribute: {e}")))?;
        let recorded = |i: usize| {
            used[i]
                .checked_sub(held[i])
                .ok_or_else(|| StoreError::Corrupt("budget counter held".into()))
        };
        let p = ProviderUsage {
            recorded: Tally {
                calls: count_of(recorded(0)?, "budget counter calls")?,
                tokens: count_of(recorded(1)?, "budget counter tokens")?,
                cost_usd: recorded(2)?,
            },
            held: Tally {
                calls: count_of(held[0], "budget counter held calls")?,
                tokens: count_of(held[1], "budget counter held tokens")?,
                cost_usd: held[2],
            },
            ..ProviderUsage::default()
        };
        if p != ProviderUsage::default() {
            usage.by_provider.insert(provider, p);
        }
    }
    Ok(usage)
}

/// The guarded update of one budget counter item.
pub(super) struct GuardedUpdate {
    pub pk: String,
    pub update: Update,
    /// The metric of the counter's first guard (what a failed condition reports).
    pub metric: Option<Metric>,
}

/// One update per counter of `writes`: its increments and every guard on it as
/// conditions. `Err(metric)` when a guard cannot pass even on an empty counter.
pub(super) fn guarded_updates(
    tenant: &TenantId,
    writes: &[CounterWrite],
) -> StoreResult<Result<Vec<GuardedUpdate>, Metric>> {
    let mut by_counter: BTreeMap<String, (CounterAdds, Vec<Guard>)> = BTreeMap::new();
    for w in writes {
        let entry = by_counter.entry(w.counter.key()).or_default();
        entry.0.add(w)?;
        for g in &w.guards {
            if !entry.1.contains(g) {
                entry.1.push(g.clone());
            }
        }
    }
    if by_counter.len() > MAX_TX_ITEMS {
        return Err(StoreError::Unavailable(format!(
            "{} budget counters exceed one transaction",
            by_counter.len()
        )));
    }
    let mut updates = Vec::with_capacity(by_counter.len());
    for (k, (adds, guards)) in &by_counter {
        let mut update = adds.update();
        for g in guards {
            if guard_condition(&mut update, g).is_none() {
                return Ok(Err(g.metric.clone()));
            }
        }
        updates.push(GuardedUpdate {
            pk: counter_pk(tenant, k),
            update,
            metric: guards.first().map(|g| g.metric.clone()),
        });
    }
    Ok(Ok(updates))
}

impl DynamoStore {
    /// The transaction items adding `adds` (by counter key) without conditions: what
    /// recording events adds to their budget counters.
    pub(super) fn budget_counter_items(
        &self,
        tenant: &TenantId,
        adds: &BTreeMap<String, CounterAdds>,
    ) -> StoreResult<Vec<TransactWriteItem>> {
        adds.iter()
            .filter(|(_, a)| a.adds.values().any(|v| !v.is_zero()))
            .map(|(k, a)| self.tx_update(counter_pk(tenant, k), COUNTER_SK, &a.update()))
            .collect()
    }
}

#[async_trait]
impl BudgetCounterStore for DynamoStore {
    async fn get_budget_counters(
        &self,
        tenant: &TenantId,
        counters: &[CounterKey],
    ) -> StoreResult<Vec<PeriodUsage>> {
        if counters.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = counters.iter().map(CounterKey::key).collect();
        let mut wanted: Vec<Item> = Vec::new();
        for k in &keys {
            let item = key(counter_pk(tenant, k), COUNTER_SK);
            if !wanted.contains(&item) {
                wanted.push(item);
            }
        }
        let found: HashMap<String, Item> = self
            .batch_get(wanted, true)
            .await?
            .into_iter()
            .filter_map(|item| get_s(&item, layout::PK).map(|pk| (pk.to_owned(), item.clone())))
            .collect();
        keys.iter()
            .map(|k| match found.get(&counter_pk(tenant, k)) {
                Some(item) => usage_of(item),
                None => Ok(PeriodUsage::default()),
            })
            .collect()
    }

    async fn add_to_budget_counters(
        &self,
        tenant: &TenantId,
        writes: &[CounterWrite],
        _now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        if writes.is_empty() {
            return Ok(true);
        }
        let updates = match guarded_updates(tenant, writes)? {
            Ok(updates) => updates,
            Err(_) => return Ok(false),
        };
        let build = || {
            updates
                .iter()
                .map(|g| self.tx_update(g.pk.clone(), COUNTER_SK, &g.update))
                .collect::<StoreResult<Vec<_>>>()
        };
        Ok(self
            .transact_until_decided("budget counters", build)
            .await?
            .is_ok())
    }

    async fn reserve_counted(
        &self,
        reservation: &Reservation,
        guards: &[Guard],
        writes: &[CounterWrite],
        _now: DateTime<Utc>,
    ) -> StoreResult<ReserveOutcome> {
        let budget = match guarded_updates(&reservation.tenant, writes)? {
            Ok(updates) => updates,
            Err(metric) => return Ok(ReserveOutcome::Denied { metric }),
        };
        self.reserve_hold(reservation, guards, &budget).await
    }

    async fn record_events_counted(
        &self,
        events: &[UsageEvent],
        writes: &[Vec<CounterWrite>],
    ) -> StoreResult<Vec<RecordOutcome>> {
        if writes.len() != events.len() {
            return Err(StoreError::Corrupt(
                "one list of counter writes per event is expected".to_owned(),
            ));
        }
        self.record_with_counters(events, writes).await
    }
}
