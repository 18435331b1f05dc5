//! Issue 18: late org events. An event naming an org whose period was already invoiced
//! adds to that period's pending adjustment of the org, atomically with the event and
//! once per event id; the org's next close bills and consumes the adjustments it read,
//! only if nothing changed since (so an event racing the close is billed once: in the
//! invoice or as an adjustment, never both, never neither).

use std::sync::Arc;

use meter_core::budgets::CounterWrite;
use meter_core::domain::{OrgId, Subscription, TenantId, UsageEvent, UserId};
use meter_core::store::{org_period_counter, OrgBillingState, OrgClose, RecordOutcome, Store};
use meter_core::usage::{PeriodUsage, Tally};
use rust_decimal::Decimal;

use crate::fixtures::*;
use crate::orgs::{org_invoice, org_sub, rolled};

fn acme() -> OrgId {
    OrgId::parse("acme").unwrap()
}

fn april() -> chrono::DateTime<chrono::Utc> {
    at(2025, 4, 1, 0)
}

/// An event of `u` naming acme in the period starting at `start`, and its write to the
/// org's pooled `period` counter (what ingest adds for an org with a subscription).
fn org_event(
    t: &TenantId,
    u: &UserId,
    id: &str,
    cost: &str,
    start: chrono::DateTime<chrono::Utc>,
) -> (UsageEvent, Vec<CounterWrite>) {
    let mut e = UsageEvent {
        org_id: Some(acme()),
        ..event(t, u, id, 10, cost)
    };
    if start != march() {
        e.timestamp = start + chrono::Duration::days(3);
        e.recorded_at = e.timestamp;
        e.period_start = start;
    }
    let end = if start == march() {
        april()
    } else {
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
    let (events, writes): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
    store.record_events_counted(&events, &writes).await.unwrap()
}

fn recorded(u: &PeriodUsage) -> (u64, Decimal) {
    u.by_provider
        .values()
        .fold((0, Decimal::ZERO), |(c, d), p| {
            (c + p.recorded.calls, d + p.recorded.cost_usd)
        })
}

/// Closes `sub`'s current period over `state` (no wallet charge).
async fn close(store: &Arc<dyn Store>, sub: &Subscription, state: &OrgBillingState) -> OrgClose {
    let mut inv = org_invoice(sub, &acme(), "79");
    inv.usage_usd = recorded(&state.usage).1;
    store
        .close_org_period_billed(&acme(), &inv, &rolled(sub), sub.version, state, None)
        .await
        .unwrap()
}

pub async fn late_org_events_are_billed_once_as_adjustments(store: Arc<dyn Store>) {
    let t = tenant();
    let (ann, bob) = (user("ann"), user("bob"));
    let sub = org_sub(&t, &acme());
    store
        .put_org_subscription(&acme(), &sub, None)
        .await
        .unwrap();
    let on_time: Vec<_> = (0..3)
        .map(|i| org_event(&t, &ann, &format!("ol-{i}"), "0.25", march()))
        .collect();
    assert_eq!(
        record(&store, on_time).await,
        vec![RecordOutcome::Recorded; 3]
    );
    let state = store.org_billing_state(&t, &acme(), march()).await.unwrap();
    assert_eq!(recorded(&state.usage), (3, dec("0.75")));
    assert!(state.adjustments.is_empty());
    assert_eq!(close(&store, &sub, &state).await, OrgClose::Closed);

    // Two late March events (two users, one batch each) and one of April.
    let late_a = org_event(&t, &ann, "ol-late-a", "0.10", march());
    let late_b = org_event(&t, &bob, "ol-late-b", "0.05", march());
    assert_eq!(
        record(&store, vec![late_a.clone()]).await,
        vec![RecordOutcome::Recorded]
    );
    assert_eq!(
        record(
            &store,
            vec![late_b, org_event(&t, &bob, "ol-apr", "1", april())]
        )
        .await,
        vec![RecordOutcome::Recorded; 2]
    );
    // A redelivered late event adds nothing.
    assert_eq!(
        record(&store, vec![late_a]).await,
        vec![RecordOutcome::Duplicate]
    );

    let next = rolled(&sub);
    let state = store.org_billing_state(&t, &acme(), april()).await.unwrap();
    assert_eq!(
        recorded(&state.usage),
        (1, dec("1")),
        "April bills April's own usage"
    );
    assert_eq!(state.adjustments.len(), 1, "{:?}", state.adjustments);
    let adj = &state.adjustments[&march()];
    assert_eq!((adj.events, adj.cost_usd), (2, dec("0.15")));

    // April's close consumes the adjustment it billed: nothing is pending after it.
    let mut after = next.clone();
    after.current_period.end = at(2025, 5, 1, 0);
    let mut inv = org_invoice(&after, &acme(), "79");
    inv.adjustments_usd = adj.cost_usd;
    let closed = store
        .close_org_period_billed(&acme(), &inv, &rolled(&after), after.version, &state, None)
        .await
        .unwrap();
    assert_eq!(closed, OrgClose::Closed);
    let may = store
        .org_billing_state(&t, &acme(), at(2025, 5, 1, 0))
        .await
        .unwrap();
    assert!(may.adjustments.is_empty(), "{:?}", may.adjustments);
    assert_eq!(store.list_org_invoices(&t, &acme()).await.unwrap().len(), 2);
}

pub async fn an_org_close_over_a_changed_state_changes_nothing(store: Arc<dyn Store>) {
    let t = tenant();
    let ann = user("ann");
    let sub = org_sub(&t, &acme());
    store
        .put_org_subscription(&acme(), &sub, None)
        .await
        .unwrap();
    record(&store, vec![org_event(&t, &ann, "oc-1", "0.5", march())]).await;
    let stale = store.org_billing_state(&t, &acme(), march()).await.unwrap();
    // An event of the period lands between the read and the close.
    record(&store, vec![org_event(&t, &ann, "oc-2", "0.5", march())]).await;
    assert_eq!(close(&store, &sub, &stale).await, OrgClose::Changed);
    assert!(store
        .list_org_invoices(&t, &acme())
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store.get_org_subscription(&t, &acme()).await.unwrap(),
        Some(sub.clone()),
        "nothing written"
    );
    let fresh = store.org_billing_state(&t, &acme(), march()).await.unwrap();
    assert_eq!(recorded(&fresh.usage), (2, dec("1.0")));
    assert_eq!(close(&store, &sub, &fresh).await, OrgClose::Closed);

    // A late event changes April's state: a close over the state read before it fails.
    let next = rolled(&sub);
    let stale = store.org_billing_state(&t, &acme(), april()).await.unwrap();
    record(&store, vec![org_event(&t, &ann, "oc-3", "0.5", march())]).await;
    let mut inv = org_invoice(&next, &acme(), "79");
    inv.period.end = at(2025, 5, 1, 0);
    let closed = store
        .close_org_period_billed(&acme(), &inv, &rolled(&next), next.version, &stale, None)
        .await
        .unwrap();
    assert_eq!(closed, OrgClose::Changed);
    let fresh = store.org_billing_state(&t, &acme(), april()).await.unwrap();
    assert_eq!(fresh.adjustments[&march()].events, 1);
}

/// The close of acme's March racing 60 events of March (4 users writing at once, single
/// events and pairs, the close starting once some are in): every event is billed exactly
/// once — counted in the state the March invoice billed or in April's pending adjustment.
pub async fn racing_an_org_close_bills_every_event_exactly_once(store: Arc<dyn Store>) {
    let t = tenant();
    let sub = org_sub(&t, &acme());
    store
        .put_org_subscription(&acme(), &sub, None)
        .await
        .unwrap();
    let mut writers = Vec::new();
    for w in 0..4 {
        let (store, t) = (store.clone(), t.clone());
        writers.push(tokio::spawn(async move {
            let u = user(&format!("racer{w}"));
            let mut n = 0;
            for round in 0..10 {
                let size = 1 + round % 2;
                let batch: Vec<_> = (0..size)
                    .map(|_| {
                        n += 1;
                        org_event(&t, &u, &format!("race-{w}-{n}"), "0.01", march())
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
        let (store, sub) = (store.clone(), sub.clone());
        tokio::spawn(async move {
            // Start once some events are in, while the others are still being written.
            loop {
                let state = store
                    .org_billing_state(&sub.tenant, &acme(), march())
                    .await
                    .unwrap();
                if recorded(&state.usage).0 >= 8 {
                    break;
                }
                tokio::task::yield_now().await;
            }
            for _ in 0..200 {
                let state = store
                    .org_billing_state(&sub.tenant, &acme(), march())
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
    let (invoiced, invoiced_cost) = recorded(&billed.usage);
    let later = store.org_billing_state(&t, &acme(), april()).await.unwrap();
    let (adjusted, adjusted_cost) = later
        .adjustments
        .get(&march())
        .map_or((0, Decimal::ZERO), |a| (a.events, a.cost_usd));
    eprintln!("org close race: {invoiced} events invoiced, {adjusted} adjusted");
    assert_eq!(
        invoiced + adjusted,
        total,
        "invoiced {invoiced}, adjusted {adjusted}"
    );
    assert_eq!(
        invoiced_cost + adjusted_cost,
        dec("0.01") * Decimal::from(total)
    );
    // March's counter itself counts every event (the org's usage reads).
    let march_now = store.org_billing_state(&t, &acme(), march()).await.unwrap();
    assert_eq!(recorded(&march_now.usage).0, total);
    assert_eq!(store.list_org_invoices(&t, &acme()).await.unwrap().len(), 1);
}
