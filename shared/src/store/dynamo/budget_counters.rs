//! Budget counters (docs/dynamodb.md, "Budget counters"): one item per (scope, member),
//! at a key known before any read, holding that scope's counters of every window.
//!
//! - `PK = T#<tenant>#BC#<scope key>` (pooled usage) or
//!   `T#<tenant>#BC#<scope key>#member#<user>` (`each_member` budgets, and the member's
//!   usage within an org), `SK = C`: the key names no window, so a check can read the
//!   counters of every budget of the scopes it names in the same `BatchGetItem` as the
//!   budget definitions, before it knows which windows apply.
//! - A counter ([`CounterKey::key`]: scope, member, window, window start) is the set of
//!   attributes of its item whose names start with `<window code><start, epoch
//!   seconds>|` ([`place_of`], e.g. `d1773100800|`): `c|<provider>`, `t|<provider>`,
//!   `$|<provider>` (calls, tokens, cost counted in the window) and the totals `c|*`,
//!   `t|*`, `$|*`, so that every guard (`calls:<p>`, `calls:*`, `tokens:<p>`, `tokens:*`,
//!   `cost_usd`) is one condition. These count recorded and held usage together;
//!   `hc|<provider>`, `ht|…`, `h$|…` say how much of it is held by open reservations
//!   (returned when they close). `e` is the window's end (epoch seconds). A new window
//!   is a new set of names, so nothing is ever reset.
//! - Per window kind an item keeps its newest windows (three; seven minutes); older ones
//!   are removed by the next write of the item from a process that read it
//!   ([`StaleWindows`]), so an item holds the windows of its budgets that are open or
//!   just closed, not their history.
//!
//! Writes only `ADD` (the arithmetic runs in DynamoDB); guarded writes of several
//! counters are one `TransactWriteItems` whose conditions are the guards, so all or none
//! pass (counters on one item are one `Update` of it). Reads are one `BatchGetItem`
//! (strongly consistent).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::TransactWriteItem;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::codec::{count_of, decimal_of, get_s, n, Item};
use super::expressions::Update;
use super::layout;
use super::requests::{key, MAX_TX_ITEMS};
use super::stale_windows::StaleWindows;
use super::DynamoStore;
use crate::budgets::{CounterKey, CounterWrite};
use crate::domain::{BudgetHold, ProviderId, Reservation, TenantId, UsageEvent};
use crate::limits::{Guard, Metric};
use crate::store::{BudgetCounterStore, RecordOutcome, ReserveOutcome, StoreError, StoreResult};
use crate::usage::{PeriodUsage, ProviderUsage, Tally};

pub(super) const COUNTER_SK: &str = "C";
const ALL: &str = "*";
/// The end of a counter's window (epoch seconds), beside its counts.
const END: &str = "e";

/// The `ttl` every write sets on a counter item: as long as raw events are kept after
/// the write (longer than any window, a yearly period included), so an item no one
/// writes any more goes (a scope no longer used, an erased member's items) and one in
/// use never does. DynamoDB's TTL compares with the real clock, so this is the real one.
pub(super) fn item_ttl() -> aws_sdk_dynamodb::types::AttributeValue {
    n((Utc::now() + chrono::Duration::days(super::items::EVENT_RETENTION_DAYS)).timestamp())
}
/// Held usage (open reservations) per provider: `hc|<provider>`, `ht|…`, `h$|…`, also
/// counted in the used attributes (`c|…`, …) that guards compare.
const HELD_CALLS: &str = "hc";
const HELD_TOKENS: &str = "ht";
const HELD_COST: &str = "h$";
/// The number of budgets on a user's own scope, on the user's state item: the check
/// reads the user's budgets only when it is above zero (so a user without budgets is
/// still checked with one `GetItem`).
pub(super) const USER_BUDGETS: &str = "nb";

/// The key of the counter item `item` (a scope key, or `<scope key>#member#<user>`).
pub(super) fn counter_pk(tenant: &TenantId, item: &str) -> String {
    format!("T#{tenant}#BC#{item}")
}

/// The short code of a window in attribute names.
fn window_code(window: &str) -> Option<&'static str> {
    Some(match window {
        "minute" => "mi",
        "hour" => "h",
        "day" => "d",
        "week" => "w",
        "month" => "mo",
        "period" => "p",
        // What another subscriber's invoice bills (`CounterKey::PaidElsewhere`).
        crate::budgets::ELSEWHERE => "x",
        _ => return None,
    })
}

/// Where the counter `counter` ([`CounterKey::key`]) lives: its item (the key without
/// the window and its start) and the prefix of its attributes on that item
/// (`<window code><start, epoch seconds>`). `None` for a text that is no counter key
/// (an item key of this layout, e.g.).
pub(super) fn parse_counter_key(counter: &str) -> Option<(String, String)> {
    let mut parts = counter.rsplitn(3, '#');
    let start = parts.next()?;
    let code = window_code(parts.next()?)?;
    let item = parts.next()?;
    let start = DateTime::parse_from_rfc3339(start).ok()?.timestamp();
    Some((item.to_owned(), format!("{code}{start}")))
}

/// [`parse_counter_key`] for the keys the service makes (always well formed).
pub(super) fn place_of(counter: &str) -> StoreResult<(String, String)> {
    parse_counter_key(counter)
        .ok_or_else(|| StoreError::Corrupt(format!("not a budget counter key: {counter}")))
}

/// The name of attribute `name` of the counter with attribute prefix `prefix`.
fn prefixed(prefix: &str, name: &str) -> String {
    format!("{prefix}|{name}")
}

/// The attribute holding the end of the window with prefix `prefix`.
fn end_attr(prefix: &str) -> String {
    prefixed(prefix, END)
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

    /// Adds this counter's increments (those not zero) to `u`, the update of its item,
    /// under the attribute prefix `prefix`, and sets its window's end.
    fn add_to(&self, u: &mut Update, prefix: &str) {
        for (name, by) in self.adds.iter().filter(|(_, v)| !v.is_zero()) {
            u.add(&prefixed(prefix, name), n(by));
        }
        if let Some(end) = self.window_end {
            u.set(&end_attr(prefix), n(end.timestamp()));
        }
    }
}

/// One update per counter item of `adds` (by counter key): the increments of every
/// counter on it. Counters without any increment are left out.
/// The update also removes the item's stale windows noted in `stale`.
pub(super) fn item_updates(
    tenant: &TenantId,
    adds: &BTreeMap<String, CounterAdds>,
    stale: &StaleWindows,
) -> StoreResult<BTreeMap<String, Update>> {
    let mut out: BTreeMap<String, (Update, BTreeSet<String>)> = BTreeMap::new();
    for (k, a) in adds
        .iter()
        .filter(|(_, a)| a.adds.values().any(|v| !v.is_zero()))
    {
        let (item, prefix) = place_of(k)?;
        let (u, written) = out.entry(counter_pk(tenant, &item)).or_default();
        a.add_to(u, &prefix);
        written.insert(prefix);
    }
    Ok(out
        .into_iter()
        .map(|(pk, (mut u, written))| {
            stale.remove_into(&pk, &written, &mut u);
            u.set(layout::TTL, item_ttl());
            (pk, u)
        })
        .collect())
}

/// The condition of `guard` on a counter item; `None` when it cannot pass even on an
/// empty counter.
pub(super) fn guard_condition(u: &mut Update, prefix: &str, guard: &Guard) -> Option<()> {
    let room = guard.limit.checked_sub(guard.increment)?;
    let empty_passes = if guard.strict {
        Decimal::ZERO < room
    } else {
        Decimal::ZERO <= room
    };
    if !empty_passes {
        return None;
    }
    let name = prefixed(prefix, &guard_attr(&guard.metric));
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
pub(super) fn usage_of(item: &Item, prefix: &str) -> StoreResult<PeriodUsage> {
    // provider -> ([used calls, tokens, cost], [held calls, tokens, cost])
    let mut raw: BTreeMap<&str, ([Decimal; 3], [Decimal; 3])> = BTreeMap::new();
    for (name, value) in item {
        let Some(name) = name
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('|'))
        else {
            continue;
        };
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

/// One update per counter item of `writes`: the increments of its counters and every
/// guard on them as conditions. `Err(metric)` when a guard cannot pass even on an empty
/// counter.
pub(super) fn guarded_updates(
    tenant: &TenantId,
    writes: &[CounterWrite],
    stale: &StaleWindows,
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
    // Counters on one item are one update of it (a transaction writes an item once).
    let mut by_item: BTreeMap<String, GuardedUpdate> = BTreeMap::new();
    let mut written: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (k, (adds, guards)) in &by_counter {
        let (item, prefix) = place_of(k)?;
        let pk = counter_pk(tenant, &item);
        written
            .entry(pk.clone())
            .or_default()
            .insert(prefix.clone());
        let g = by_item.entry(pk.clone()).or_insert_with(|| GuardedUpdate {
            pk,
            update: Update::new(),
            metric: None,
        });
        adds.add_to(&mut g.update, &prefix);
        for guard in guards {
            if guard_condition(&mut g.update, &prefix, guard).is_none() {
                return Ok(Err(guard.metric.clone()));
            }
        }
        if g.metric.is_none() {
            g.metric = guards.first().map(|g| g.metric.clone());
        }
    }
    if by_item.len() > MAX_TX_ITEMS {
        return Err(StoreError::Unavailable(format!(
            "{} budget counter items exceed one transaction",
            by_item.len()
        )));
    }
    for (pk, g) in by_item.iter_mut() {
        if let Some(w) = written.get(pk) {
            stale.remove_into(pk, w, &mut g.update);
        }
        g.update.set(layout::TTL, item_ttl());
    }
    Ok(Ok(by_item.into_values().collect()))
}

impl DynamoStore {
    /// The transaction items adding `adds` (by counter key) without conditions: what
    /// recording events adds to their budget counters.
    pub(super) fn budget_counter_items(
        &self,
        tenant: &TenantId,
        adds: &BTreeMap<String, CounterAdds>,
    ) -> StoreResult<Vec<TransactWriteItem>> {
        item_updates(tenant, adds, &self.stale)?
            .into_iter()
            .map(|(pk, u)| self.tx_update(pk, COUNTER_SK, &u))
            .collect()
    }

    /// The counter items of `counters` (by item key), read in one consistent
    /// `BatchGetItem`; an item never written is absent.
    pub(super) async fn read_counter_items(
        &self,
        tenant: &TenantId,
        counters: &[CounterKey],
    ) -> StoreResult<HashMap<String, Item>> {
        let mut wanted: Vec<Item> = Vec::new();
        for c in counters {
            let (item, _) = place_of(&c.key())?;
            let k = key(counter_pk(tenant, &item), COUNTER_SK);
            if !wanted.contains(&k) {
                wanted.push(k);
            }
        }
        if wanted.is_empty() {
            return Ok(HashMap::new());
        }
        let items: HashMap<String, Item> = self
            .batch_get(wanted, true)
            .await?
            .into_iter()
            .filter_map(|item| get_s(&item, layout::PK).map(|pk| (pk.to_owned(), item.clone())))
            .collect();
        for (pk, item) in &items {
            self.stale.note(pk, item);
        }
        Ok(items)
    }
}

/// The usage of `counter` on the items read (by `PK`); zero when its item or its
/// attributes are absent.
pub(super) fn counter_usage(
    tenant: &TenantId,
    items: &HashMap<String, Item>,
    counter: &CounterKey,
) -> StoreResult<PeriodUsage> {
    let (item, prefix) = place_of(&counter.key())?;
    match items.get(&counter_pk(tenant, &item)) {
        Some(item) => usage_of(item, &prefix),
        None => Ok(PeriodUsage::default()),
    }
}

#[async_trait]
impl BudgetCounterStore for DynamoStore {
    async fn get_budget_counters(
        &self,
        tenant: &TenantId,
        counters: &[CounterKey],
    ) -> StoreResult<Vec<PeriodUsage>> {
        let items = self.read_counter_items(tenant, counters).await?;
        counters
            .iter()
            .map(|c| counter_usage(tenant, &items, c))
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
        let updates = match guarded_updates(tenant, writes, &self.stale)? {
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
        let budget = match guarded_updates(&reservation.tenant, writes, &self.stale)? {
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
