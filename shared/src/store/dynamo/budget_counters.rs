//! Budget counters (docs/dynamodb.md, "Budget counters"): one item per counter.
//!
//! - `PK = T#<tenant>#BC#<counter key>`, `SK = C` ([`CounterKey::key`] names the scope,
//!   the window and its start, and the member of `each_member` budgets): a new window is
//!   a new item, so nothing is ever reset; `ttl` is a day after the window's end, so old
//!   windows go by themselves.
//! - Attributes, numbers: `c|<provider>`, `t|<provider>`, `$|<provider>` (calls, tokens,
//!   cost counted in the window) and the totals `c|*`, `t|*`, `$|*`, so that every guard
//!   (`calls:<p>`, `calls:*`, `tokens:<p>`, `tokens:*`, `cost_usd`) is one condition.
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
use crate::domain::{ProviderId, TenantId, UsageEvent};
use crate::limits::{Guard, Metric};
use crate::store::{BudgetCounterStore, RecordOutcome, StoreError, StoreResult, COUNTER_GRACE};
use crate::usage::{PeriodUsage, ProviderUsage, Tally};

pub(super) const COUNTER_SK: &str = "C";
const ALL: &str = "*";
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
    pub fn add(&mut self, w: &CounterWrite) -> StoreResult<()> {
        self.window_end = Some(
            self.window_end
                .map_or(w.window_end, |e| e.max(w.window_end)),
        );
        let p = w.provider.as_str();
        let calls = Decimal::from(w.add.calls);
        let tokens = Decimal::from(w.add.tokens);
        for (name, by) in [
            (attr("c", p), calls),
            (attr("c", ALL), calls),
            (attr("t", p), tokens),
            (attr("t", ALL), tokens),
            (attr("$", p), w.add.cost_usd),
            (attr("$", ALL), w.add.cost_usd),
        ] {
            let slot = self.adds.entry(name).or_default();
            *slot = slot
                .checked_add(by)
                .ok_or_else(|| StoreError::Overflow("budget counter increment".into()))?;
        }
        Ok(())
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
fn guard_condition(u: &mut Update, guard: &Guard) -> Option<()> {
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

/// The usage a counter item holds (all in `recorded`).
fn usage_of(item: &Item) -> StoreResult<PeriodUsage> {
    let mut usage = PeriodUsage::default();
    for (name, value) in item {
        let Some((kind, provider)) = name.split_once('|') else {
            continue;
        };
        if provider == ALL || !matches!(kind, "c" | "t" | "$") {
            continue;
        }
        let provider = ProviderId::parse(provider)
            .map_err(|e| StoreError::Corrupt(format!("budget counter attribute: {e}")))?;
        let v = decimal_of(value)?;
        let entry = usage.by_provider.entry(provider).or_default();
        let t: &mut Tally = &mut entry.recorded;
        match kind {
            "c" => t.calls = count_of(v, "budget counter calls")?,
            "t" => t.tokens = count_of(v, "budget counter tokens")?,
            _ => t.cost_usd = v,
        }
    }
    usage
        .by_provider
        .retain(|_, u: &mut ProviderUsage| *u != ProviderUsage::default());
    Ok(usage)
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
        // One item per counter: its increments and every guard on it.
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
            let mut u = adds.update();
            for g in guards {
                if guard_condition(&mut u, g).is_none() {
                    return Ok(false);
                }
            }
            updates.push((counter_pk(tenant, k), u));
        }
        let build = || {
            updates
                .iter()
                .map(|(pk, u)| self.tx_update(pk.clone(), COUNTER_SK, u))
                .collect::<StoreResult<Vec<_>>>()
        };
        Ok(self
            .transact_until_decided("budget counters", build)
            .await?
            .is_ok())
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
