//! Issue 19 with issue 18: a prepaid org's late events (docs/credits.md, "Late events on
//! prepaid plans"). An event naming an org whose period was invoiced draws its cost from
//! the org's wallet and adds to the org's pending adjustment; its draw goes with the
//! adjustment — into the billing state the org's next close reads (`late_draws`), not into
//! its closed period — so that the invoice billing the adjustment credits it, once; the
//! close consumes both, and a late event racing the close is in the state it billed or in
//! the next one, its draw with its adjustment.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use meter_core::budgets::CounterWrite;
use meter_core::credits::{GrantKind, GrantRequest, Subscriber};
use meter_core::domain::{GrantId, OrgId, Subscription, TenantId, UsageEvent, UserId};
use meter_core::store::{
    org_period_counter, GrantInsert, OrgBillingState, OrgClose, PeriodDraws, RecordOutcome, Store,
};
use meter_core::usage::Tally;
use rust_decimal::Decimal;

use crate::fixtures::*;
use crate::orgs::{org_invoice, org_sub, rolled};

fn acme() -> OrgId {
    OrgId::parse("acme").unwrap()
}

fn wallet() -> Subscriber {
    Subscriber::Org(acme())
}

fn april() -> DateTime<Utc> {
    at(2025, 4, 1, 0)
}

/// An event of `u` naming acme in the period starting at `start` (March or April), its
/// write to the org's pooled `period` counter, paid from acme's wallet.
fn paid(
    t: &TenantId,
    u: &UserId,
    id: &str,
    cost: &str,
    start: DateTime<Utc>,
) -> (UsageEvent, Vec<CounterWrite>) {
    let mut e = UsageEvent {
        org_id: Some(acme()),
        ..event(t, u, id, 10, cost)
    };
    let end = if start == march() {
        april()
    } else {
        e.timestamp = start + Duration::days(3);
        e.recorded_at = e.timestamp;
        e.period_start = start;
        at(2025, 5, 1, 0)
    };
    let w = vec![CounterWrite {
        counter: org_period_counter(&acme(), start),
        window_end: end,
        provider: e.provider.clone(),
        add: e.tally(),
        held: Tally::default(),
        guards: Vec::new(),
    }];
    (e, w)
}

async fn record(
    store: &Arc<dyn Store>,
    batch: Vec<(UsageEvent, Vec<CounterWrite>)>,
) -> Vec<RecordOutcome> {
    let payers = vec![Some(wallet()); batch.len()];
    let (events, writes): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
    store
        .record_events_paying(&events, &writes, &payers)
        .await
        .unwrap()
}

async fn funded(store: &Arc<dyn Store>, t: &TenantId, amount: &str) -> Subscription {
    let g = GrantRequest::new(dec(amount), GrantKind::Purchase)
        .into_grant(GrantId::parse("g-buy").unwrap(), at(2025, 2, 1, 0))
        .unwrap();
    assert!(matches!(
        store.insert_grant(t, &wallet(), &g).await.unwrap(),
        GrantInsert::Created(_)
    ));
    let sub = org_sub(t, &acme());
    store
        .put_org_subscription(&acme(), &sub, None)
        .await
        .unwrap();
    sub
}

/// Closes the period of `sub` over `state` (the store's part; no wallet charge).
async fn close(store: &Arc<dyn Store>, sub: &Subscription, state: &OrgBillingState) -> OrgClose {
    let mut inv = org_invoice(sub, &acme(), "79");
    inv.adjustments_usd = state.adjustments.values().map(|a| a.cost_usd).sum();
    store
        .close_org_period_billed(&acme(), &inv, &rolled(sub), sub.version, state, None)
        .await
        .unwrap()
}

fn draws(drawn: &str, shortfall: &str, events: u64) -> PeriodDraws {
    PeriodDraws {
        drawn_usd: dec(drawn),
        shortfall_usd: dec(shortfall),
        events,
    }
}

pub async fn late_org_draws_go_with_their_adjustments_to_the_next_close(store: Arc<dyn Store>) {
    let t = tenant();
    let ann = user("ann");
    let sub = funded(&store, &t, "1").await;
    assert_eq!(
        record(
            &store,
            vec![
                paid(&t, &ann, "od-1", "0.25", march()),
                paid(&t, &ann, "od-2", "0.25", march())
            ]
        )
        .await,
        vec![RecordOutcome::Recorded; 2]
    );
    let state = store.org_billing_state(&t, &acme(), march()).await.unwrap();
    assert_eq!(
        state.late_draws,
        PeriodDraws::default(),
        "nothing is late yet"
    );
    assert_eq!(close(&store, &sub, &state).await, OrgClose::Closed);

    // A late March event (its draw fits the grant) and one of April.
    assert_eq!(
        record(
            &store,
            vec![
                paid(&t, &ann, "od-late-1", "0.10", march()),
                paid(&t, &ann, "od-apr", "0.05", april())
            ]
        )
        .await,
        vec![RecordOutcome::Recorded; 2]
    );
    // A late event larger than what is left: its shortfall goes with it.
    assert_eq!(
        record(&store, vec![paid(&t, &ann, "od-late-2", "0.50", march())]).await,
        vec![RecordOutcome::Recorded]
    );
    // Redelivered: nothing more drawn, nothing more pending.
    assert_eq!(
        record(&store, vec![paid(&t, &ann, "od-late-1", "0.10", march())]).await,
        vec![RecordOutcome::Duplicate]
    );
    let next = rolled(&sub);
    let stale = store.org_billing_state(&t, &acme(), april()).await.unwrap();
    assert_eq!(stale.adjustments[&march()].events, 2);
    // 1 − 0.5 − 0.1 − 0.05 = 0.35 left for the second late event's 0.50.
    assert_eq!(stale.late_draws, draws("0.45", "0.15", 2));

    // Another late event after the read: a close over that state changes nothing.
    record(&store, vec![paid(&t, &ann, "od-late-3", "0.20", march())]).await;
    let mut inv = org_invoice(&next, &acme(), "79");
    inv.period.end = at(2025, 5, 1, 0);
    let mut after = next.clone();
    after.current_period.end = at(2025, 5, 1, 0);
    let closed = store
        .close_org_period_billed(&acme(), &inv, &rolled(&after), after.version, &stale, None)
        .await
        .unwrap();
    assert_eq!(closed, OrgClose::Changed);
    let fresh = store.org_billing_state(&t, &acme(), april()).await.unwrap();
    assert_eq!(fresh.adjustments[&march()].events, 3);
    assert_eq!(fresh.late_draws, draws("0.45", "0.35", 3));
    assert_eq!(close(&store, &after, &fresh).await, OrgClose::Closed);

    // April's close consumed them: May starts with nothing pending, and a late April event
    // now goes to May's close.
    let may = store
        .org_billing_state(&t, &acme(), at(2025, 5, 1, 0))
        .await
        .unwrap();
    assert!(may.adjustments.is_empty(), "{:?}", may.adjustments);
    assert_eq!(may.late_draws, PeriodDraws::default());
    record(&store, vec![paid(&t, &ann, "od-late-4", "0.01", april())]).await;
    let may = store
        .org_billing_state(&t, &acme(), at(2025, 5, 1, 0))
        .await
        .unwrap();
    assert_eq!(may.adjustments[&april()].events, 1);
    assert_eq!(may.late_draws, draws("0", "0.01", 1));
}

/// April's close racing 40 late March events (4 users, single events and pairs, each paid
/// from acme's wallet): each late event's draw is in the state whose adjustments bill it —
/// the one April's invoice billed, or May's.
pub async fn late_org_draws_racing_the_close_go_with_their_adjustments(store: Arc<dyn Store>) {
    let t = tenant();
    let sub = funded(&store, &t, "100").await;
    let state = store.org_billing_state(&t, &acme(), march()).await.unwrap();
    assert_eq!(close(&store, &sub, &state).await, OrgClose::Closed);
    let mut april_sub = rolled(&sub);
    april_sub.current_period.end = at(2025, 5, 1, 0);
    let mut writers = Vec::new();
    for w in 0..4 {
        let (store, t) = (store.clone(), t.clone());
        writers.push(tokio::spawn(async move {
            let u = user(&format!("late{w}"));
            let mut n = 0;
            for round in 0..7 {
                let size = 1 + round % 2;
                let batch: Vec<_> = (0..size)
                    .map(|_| {
                        n += 1;
                        paid(&t, &u, &format!("odr-{w}-{n}"), "0.01", march())
                    })
                    .collect();
                assert_eq!(
                    record(&store, batch).await,
                    vec![RecordOutcome::Recorded; size]
                );
                // Pacing only (nothing asserts on time): gaps in which the close can win.
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
            n as u64
        }));
    }
    let closer = {
        let (store, sub) = (store.clone(), april_sub.clone());
        tokio::spawn(async move {
            loop {
                let state = store
                    .org_billing_state(&sub.tenant, &acme(), april())
                    .await
                    .unwrap();
                if state.adjustments.values().map(|a| a.events).sum::<u64>() >= 6 {
                    break;
                }
                tokio::task::yield_now().await;
            }
            for _ in 0..200 {
                let state = store
                    .org_billing_state(&sub.tenant, &acme(), april())
                    .await
                    .unwrap();
                if close(&store, &sub, &state).await == OrgClose::Closed {
                    return state;
                }
                tokio::task::yield_now().await;
            }
            panic!("the close never went through");
        })
    };
    let mut total = 0;
    for task in writers {
        total += task.await.unwrap();
    }
    let billed = closer.await.unwrap();
    let may = store
        .org_billing_state(&t, &acme(), at(2025, 5, 1, 0))
        .await
        .unwrap();
    let pending = |s: &OrgBillingState| s.adjustments.values().map(|a| a.events).sum::<u64>();
    eprintln!(
        "org late draws race: {} billed by April, {} left for May",
        pending(&billed),
        pending(&may)
    );
    for s in [&billed, &may] {
        assert_eq!(s.late_draws.events, pending(s), "draws go with adjustments");
        assert_eq!(
            s.late_draws.drawn_usd,
            dec("0.01") * Decimal::from(pending(s))
        );
        assert!(s.late_draws.shortfall_usd.is_zero());
    }
    assert_eq!(pending(&billed) + pending(&may), total);
}
