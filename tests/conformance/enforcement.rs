//! Issue 18: budget counters under real concurrency. Guarded writes of several counters
//! are all or none and never pass a limit, however many race; events add to their
//! counters exactly once; a counter no one wrote reads as zero.

use std::sync::Arc;

use meter_core::budgets::{CounterKey, CounterWrite, Scope, Window};
use meter_core::domain::{OrgId, UsageEvent};
use meter_core::limits::{Guard, Metric};
use meter_core::store::{RecordOutcome, Store};
use meter_core::usage::{PeriodUsage, Tally};
use rust_decimal::Decimal;

use crate::fixtures::*;

fn org() -> Scope {
    Scope::Org {
        org_id: OrgId::parse("acme").unwrap(),
    }
}

fn day() -> chrono::DateTime<chrono::Utc> {
    at(2025, 3, 10, 0)
}

fn pooled() -> CounterKey {
    CounterKey::Scope {
        scope: org(),
        window: Window::Day,
        window_start: day(),
    }
}

fn member(name: &str) -> CounterKey {
    CounterKey::Member {
        scope: org(),
        user: user(name),
        window: Window::Day,
        window_start: day(),
    }
}

fn guard(metric: Metric, increment: Decimal, limit: Decimal) -> Guard {
    Guard {
        metric,
        increment,
        limit,
        strict: false,
    }
}

/// One call of `cost` on the org's pooled counter and on the member's, both guarded.
fn call_writes(
    name: &str,
    cost: Decimal,
    guards: &dyn Fn(bool) -> Vec<Guard>,
) -> Vec<CounterWrite> {
    [(pooled(), true), (member(name), false)]
        .into_iter()
        .map(|(counter, is_pool)| CounterWrite {
            counter,
            window_end: day() + chrono::Duration::days(1),
            provider: provider("gemini"),
            add: Tally {
                calls: 1,
                tokens: 0,
                cost_usd: cost,
            },
            held: Tally::default(),
            guards: guards(is_pool),
        })
        .collect()
}

fn total(u: &PeriodUsage) -> Tally {
    u.by_provider.values().fold(Tally::default(), |a, p| Tally {
        calls: a.calls + p.recorded.calls,
        tokens: a.tokens + p.recorded.tokens,
        cost_usd: a.cost_usd + p.recorded.cost_usd,
    })
}

/// 200 racing writers of 20 members (five of them try 25 times, fifteen 5 times)
/// against an org limit and a per-member limit; returns (admitted, per member admitted).
async fn race(
    store: &Arc<dyn Store>,
    t: &meter_core::domain::TenantId,
    cost: Decimal,
    guards: fn(bool) -> Vec<Guard>,
) -> (usize, Vec<(String, usize)>) {
    let mut tasks = Vec::new();
    for m in 0..20 {
        let tries = if m < 5 { 25 } else { 5 };
        for _ in 0..tries {
            let (store, t, name) = (store.clone(), t.clone(), format!("m{m}"));
            tasks.push(tokio::spawn(async move {
                let writes = call_writes(&name, cost, &guards);
                let ok = store
                    .add_to_budget_counters(&t, &writes, day())
                    .await
                    .unwrap();
                (name, ok)
            }));
        }
    }
    assert_eq!(tasks.len(), 200);
    let mut per: std::collections::BTreeMap<String, usize> = Default::default();
    let mut admitted = 0;
    for task in tasks {
        let (name, ok) = task.await.unwrap();
        if ok {
            admitted += 1;
            *per.entry(name).or_default() += 1;
        }
    }
    (admitted, per.into_iter().collect())
}

pub async fn racing_call_writes_admit_exactly_the_org_limit_and_no_member_over_its_own(
    store: Arc<dyn Store>,
) {
    let t = tenant();
    let (admitted, per) = race(&store, &t, Decimal::ZERO, |is_pool| {
        let limit = if is_pool { 100 } else { 10 };
        vec![guard(
            Metric::Calls(None),
            Decimal::ONE,
            Decimal::from(limit),
        )]
    })
    .await;
    // At most 10 of each member: 5 × 10 + 15 × 5 = 125 ≥ 100, so the org's limit binds.
    assert_eq!(admitted, 100);
    assert!(per.iter().all(|(_, n)| *n <= 10), "{per:?}");
    let read = store
        .get_budget_counters(&t, &[pooled(), member("m0"), member("m19")])
        .await
        .unwrap();
    assert_eq!(total(&read[0]).calls, 100);
    for (i, name) in [(1, "m0"), (2, "m19")] {
        let stored = total(&read[i]).calls as usize;
        let counted = per.iter().find(|(n, _)| n == name).map_or(0, |(_, c)| *c);
        assert_eq!(stored, counted, "{name}");
    }
}

pub async fn racing_cost_writes_never_pass_a_cent_of_the_day_budget(store: Arc<dyn Store>) {
    let t = tenant();
    let cost = dec("0.03");
    let (admitted, per) = race(&store, &t, cost, |is_pool| {
        let limit = if is_pool { dec("1.00") } else { dec("0.10") };
        vec![guard(Metric::CostUsd, dec("0.03"), limit)]
    })
    .await;
    // $1.00 / $0.03 = 33 calls; each member at most 3 ($0.09 ≤ $0.10).
    assert_eq!(admitted, 33);
    assert!(per.iter().all(|(_, n)| *n <= 3), "{per:?}");
    let read = store.get_budget_counters(&t, &[pooled()]).await.unwrap();
    assert_eq!(total(&read[0]).cost_usd, dec("0.99"));
}

pub async fn a_failing_guard_writes_no_counter(store: Arc<dyn Store>) {
    let t = tenant();
    let full = call_writes("m0", Decimal::ZERO, &|is_pool| {
        // The member's guard passes, the pool's cannot (limit 0).
        let limit = if is_pool { 0 } else { 10 };
        vec![guard(
            Metric::Calls(None),
            Decimal::ONE,
            Decimal::from(limit),
        )]
    });
    assert!(!store
        .add_to_budget_counters(&t, &full, day())
        .await
        .unwrap());
    let read = store
        .get_budget_counters(&t, &[pooled(), member("m0")])
        .await
        .unwrap();
    assert_eq!(read, vec![PeriodUsage::default(), PeriodUsage::default()]);
}

pub async fn events_add_to_their_counters_exactly_once_under_redelivery(store: Arc<dyn Store>) {
    let t = tenant();
    let u = user("olga");
    let events: Vec<UsageEvent> = (0..20)
        .map(|i| UsageEvent {
            org_id: Some(OrgId::parse("acme").unwrap()),
            ..event(&t, &u, &format!("bc-{i}"), 10, "0.01")
        })
        .collect();
    let writes_of = |e: &UsageEvent| {
        vec![CounterWrite {
            counter: pooled(),
            window_end: day() + chrono::Duration::days(1),
            provider: e.provider.clone(),
            add: e.tally(),
            held: Tally::default(),
            guards: Vec::new(),
        }]
    };
    let mut tasks = Vec::new();
    for _ in 0..5 {
        for e in &events {
            let (store, e) = (store.clone(), e.clone());
            let w = vec![writes_of(&e)];
            tasks.push(tokio::spawn(async move {
                store.record_events_counted(&[e], &w).await.unwrap()
            }));
        }
    }
    let mut recorded = 0;
    for task in tasks {
        recorded += task
            .await
            .unwrap()
            .iter()
            .filter(|o| **o == RecordOutcome::Recorded)
            .count();
    }
    assert_eq!(recorded, 20);
    let read = store.get_budget_counters(&t, &[pooled()]).await.unwrap();
    assert_eq!(
        total(&read[0]),
        Tally {
            calls: 20,
            tokens: 200,
            cost_usd: dec("0.20"),
        }
    );
    // The user's own counters counted each event once too.
    assert_eq!(gemini(&store, &t, &u).await.recorded.calls, 20);
}
