//! Unpriced events draw once re-priced (`RepriceStore`, issue 19): pricing an event that
//! was recorded without a price draws its cost from the payer's wallet in the same write,
//! exactly once among racing passes and repeats, and the draws are kept as an ingest's
//! are (the event's draws, the org's draw ledger, the period's draw sums).

use std::sync::Arc;

use chrono::Duration;
use meter_core::credits::{GrantKind, GrantRequest, Subscriber};
use meter_core::domain::{GrantId, OrgId, TenantId, UsageEvent, UserId};
use meter_core::periods::Period;
use meter_core::store::{GrantInsert, RecordOutcome, Store};
use rust_decimal::Decimal;

use crate::fixtures::*;

fn acme() -> Subscriber {
    Subscriber::Org(OrgId::parse("acme").unwrap())
}

async fn put(
    store: &Arc<dyn Store>,
    t: &TenantId,
    w: &Subscriber,
    id: &str,
    amount: &str,
    priority: i32,
) {
    let mut g = GrantRequest::new(dec(amount), GrantKind::Purchase)
        .into_grant(GrantId::parse(id).unwrap(), at(2025, 3, 1, 0))
        .unwrap();
    g.priority = priority;
    assert!(matches!(
        store.insert_grant(t, w, &g).await.unwrap(),
        GrantInsert::Created(_)
    ));
}

/// An unpriced event of `u` at 2025-03-10 12:00 + `i` minutes.
fn unpriced(t: &TenantId, u: &UserId, id: &str, i: i64) -> UsageEvent {
    let mut e = event(t, u, id, 100, "0");
    e.cost_usd = None;
    e.price_version = None;
    e.fingerprint = format!("fp-{id}-unpriced");
    e.timestamp += Duration::minutes(i);
    e.recorded_at = e.timestamp;
    e
}

pub async fn repricing_draws_an_unpriced_events_cost_once_under_racing_passes(
    store: Arc<dyn Store>,
) {
    let (t, u) = (tenant(), user("rita"));
    let mine = Subscriber::User(u.clone());
    // Rita: a $2 promo that burns first and a $5 purchase; acme: $3.
    put(&store, &t, &mine, "promo", "2", 1).await;
    put(&store, &t, &mine, "purchase", "5", 10).await;
    put(&store, &t, &acme(), "acme-credit", "3", 10).await;

    // Recorded while no price was in force: nothing is drawn.
    let mut events = vec![
        unpriced(&t, &u, "r-1", 0),
        unpriced(&t, &u, "r-2", 1),
        unpriced(&t, &u, "r-3", 2),
        unpriced(&t, &u, "r-org", 3),
        unpriced(&t, &u, "r-post", 4),
    ];
    events[3].org_id = Some(OrgId::parse("acme").unwrap());
    let payers = vec![
        Some(mine.clone()),
        Some(mine.clone()),
        Some(mine.clone()),
        Some(acme()),
        None,
    ];
    let out = store
        .record_events_paying(&events, &[], &payers)
        .await
        .unwrap();
    assert!(out.iter().all(|o| *o == RecordOutcome::Recorded), "{out:?}");
    assert!(store.event_draws(&t, &u, None).await.unwrap().is_empty());
    let before = store.get_wallet(&t, &mine).await.unwrap();
    assert_eq!(
        before
            .grants
            .iter()
            .map(|g| g.remaining_usd)
            .sum::<Decimal>(),
        dec("7")
    );

    // Priced later by eight racing passes each: $1.50, $1.50 and $6 from Rita ($9 on
    // $7: $2 overdrawn), $1 from acme, $1 from nobody.
    let costs = ["1.5", "1.5", "6", "1", "1"];
    let mut tasks = Vec::new();
    for _ in 0..8 {
        for (e, (cost, payer)) in events.iter().zip(costs.iter().zip(&payers)) {
            let (store, t, id, cost, payer) = (
                store.clone(),
                t.clone(),
                e.event_id.clone(),
                dec(cost),
                payer.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let priced = match &payer {
                    Some(w) => store
                        .price_event_paying(&t, &id, cost, "gemini@v2", w)
                        .await
                        .unwrap(),
                    None => store.price_event(&t, &id, cost, "gemini@v2").await.unwrap(),
                };
                (id, priced)
            }));
        }
    }
    let mut wins = std::collections::BTreeMap::new();
    for task in tasks {
        let (id, priced) = task.await.unwrap();
        *wins.entry(id.as_str().to_owned()).or_insert(0) += usize::from(priced);
    }
    assert_eq!(wins.len(), 5);
    assert!(
        wins.values().all(|w| *w == 1),
        "one pass prices each event: {wins:?}"
    );

    let check = |label: &'static str| {
        let (store, t, u, mine) = (store.clone(), t.clone(), u.clone(), mine.clone());
        async move {
            let w = store.get_wallet(&t, &mine).await.unwrap();
            for g in &w.grants {
                assert_eq!(g.remaining_usd, Decimal::ZERO, "{label}: {} drained", g.id);
            }
            assert_eq!(
                w.overdrawn_usd,
                dec("2"),
                "{label}: the shortfall overdraws"
            );
            let org = store.get_wallet(&t, &acme()).await.unwrap();
            assert_eq!(
                org.grants[0].remaining_usd,
                dec("2"),
                "{label}: acme paid $1"
            );
            let draws = store.event_draws(&t, &u, None).await.unwrap();
            assert_eq!(draws.len(), 3, "{label}: Rita's three events drew");
            let mut sum = Decimal::ZERO;
            for d in &draws {
                assert_eq!(d.draws.total_usd().unwrap(), d.cost_usd, "{label}");
                sum += d.cost_usd;
            }
            assert_eq!(sum, dec("9"), "{label}");
            let org_draws = store.wallet_draws(&t, &acme(), None).await.unwrap();
            assert_eq!(org_draws.len(), 1, "{label}");
            assert_eq!(org_draws[0].cost_usd, dec("1"), "{label}");
            let march = Period {
                start: at(2025, 3, 1, 0),
                end: at(2025, 4, 1, 0),
            };
            let period = store.period_draws(&t, &u, &march).await.unwrap();
            assert_eq!(
                (period.drawn_usd, period.shortfall_usd, period.events),
                (dec("7"), dec("2"), 3),
                "{label}: the period's draw sums"
            );
            for (e, cost) in events_ids().iter().zip(["1.5", "1.5", "6", "1", "1"]) {
                let stored = store
                    .get_event(&t, &meter_core::domain::EventId::parse(*e).unwrap())
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(stored.cost_usd, Some(dec(cost)), "{label}: {e}");
            }
        }
    };
    check("after the racing passes").await;

    // Another pass, and a replay of the events' delivery: nothing more is drawn.
    for (e, (cost, payer)) in events.iter().zip(costs.iter().zip(&payers)) {
        let again = match payer {
            Some(w) => store
                .price_event_paying(&t, &e.event_id, dec(cost), "gemini@v2", w)
                .await
                .unwrap(),
            None => store
                .price_event(&t, &e.event_id, dec(cost), "gemini@v2")
                .await
                .unwrap(),
        };
        assert!(!again, "{} is priced already", e.event_id);
    }
    let out = store
        .record_events_paying(&events, &[], &payers)
        .await
        .unwrap();
    assert!(out.iter().all(|o| *o != RecordOutcome::Recorded), "{out:?}");
    check("after a replay").await;
}

fn events_ids() -> [&'static str; 5] {
    ["r-1", "r-2", "r-3", "r-org", "r-post"]
}
