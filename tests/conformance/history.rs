//! Storage that does not grow with time (issue 17): a long history of closed periods reads
//! as it did while open; many open reservations (more than the DynamoDB state item keeps
//! inline) never overspend and each closes once; a reservation outliving its period's
//! close returns its hold exactly.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use meter_core::domain::{
    Invoice, InvoiceStatus, LineItem, PlanName, ReservationStatus, Role, TenantId, UsageEvent,
    UserId,
};
use meter_core::periods::Period;
use meter_core::service::{Caller, Meter};
use meter_core::store::{
    BillingState, CloseOutcome, RecordOutcome, ReleaseOutcome, ReserveOutcome, Store,
};
use meter_core::testing::TestClock;
use meter_core::usage::{PeriodUsage, Tally};
use rust_decimal::Decimal;

use crate::fixtures::*;

/// The first day of the `i`-th month after April 2023 (`0` is April 2023, `24` March 2025).
fn month(i: u32) -> DateTime<Utc> {
    let m = 3 + i; // months since January 2023, zero-based
    at(2023 + (m / 12) as i32, m % 12 + 1, 1, 0)
}

fn month_period(i: u32) -> Period {
    Period {
        start: month(i),
        end: month(i + 1),
    }
}

/// An event of `u` in month `i` on `provider`, with an error status every third one and a
/// latency, costing an exact odd amount.
fn event_in(t: &TenantId, u: &UserId, i: u32, k: u32, provider_name: &str) -> UsageEvent {
    let mut e = event(
        t,
        u,
        &format!("h-{i}-{k}-{provider_name}"),
        100 + u64::from(k),
        &format!("0.00{}{}", i + 1, k + 3),
    );
    e.provider = provider(provider_name);
    e.timestamp = month(i) + chrono::Duration::hours(2 + i64::from(k));
    e.recorded_at = e.timestamp;
    e.period_start = month(i);
    e.latency_ms = Some(100 + u64::from(k));
    e.status_code = Some(if k % 3 == 0 { 500 } else { 200 });
    e.estimated = k % 2 == 1;
    e
}

fn invoice_for(state: &BillingState, period: Period) -> Invoice {
    let usage: Decimal = state
        .usage
        .by_provider
        .values()
        .map(|p| p.recorded.cost_usd)
        .sum();
    Invoice {
        id: uuid::Uuid::new_v4().to_string(),
        tenant: state.tenant.clone(),
        user: state.user.to_string(),
        period,
        plan: PlanName::free(),
        base_usd: Decimal::ZERO,
        usage_usd: usage,
        overage_usd: Decimal::ZERO,
        proration_usd: Decimal::ZERO,
        adjustments_usd: state.adjustments.values().map(|a| a.cost_usd).sum(),
        total_usd: usage,
        line_items: vec![LineItem {
            kind: "usage".into(),
            description: "usage".into(),
            amount_usd: usage,
        }],
        status: InvoiceStatus::Pending,
        created_at: period.end,
        published: false,
        extra: Default::default(),
    }
}

/// Closes the period into an invoice through the port (as the aggregation does).
async fn close(store: &Arc<dyn Store>, t: &TenantId, u: &UserId, period: Period) {
    let s = store.billing_state(t, u, period.start).await.unwrap();
    let inv = invoice_for(&s, period);
    assert_eq!(
        store.close_period(&inv, &s, period.end).await.unwrap(),
        CloseOutcome::Closed,
        "{}",
        period.start
    );
}

/// Everything a user's history reads as: usage of every period, the current period's
/// usage, billing usage and adjustments of every period, and the service's trends and
/// dashboard views.
#[derive(Debug, PartialEq)]
struct Reads {
    periods: Vec<PeriodUsage>,
    current: PeriodUsage,
    billing: Vec<(PeriodUsage, String)>,
    trends: serde_json::Value,
    dashboard: serde_json::Value,
}

async fn reads(store: &Arc<dyn Store>, meter: &Meter, t: &TenantId, u: &UserId) -> Reads {
    let starts: Vec<_> = (0..=24).map(month).collect();
    let periods = store.get_period_usage(t, u, &starts).await.unwrap();
    let current = store
        .get_user_usage(t, u, &|_| month(24))
        .await
        .unwrap()
        .usage;
    let mut billing = Vec::new();
    for s in &starts {
        let b = store.billing_state(t, u, *s).await.unwrap();
        billing.push((b.usage, format!("{:?}", b.adjustments)));
    }
    let caller = Caller {
        tenant: t.clone(),
        role: Role::Admin,
        key_id: "key_0000000000000000".into(),
    };
    let trends = serde_json::to_value(meter.trends(&caller, u, 24).await.unwrap()).unwrap();
    let dashboard = serde_json::to_value(meter.dashboard(&caller, u).await.unwrap()).unwrap();
    Reads {
        periods,
        current,
        billing,
        trends,
        dashboard,
    }
}

pub async fn twenty_four_closed_periods_read_as_they_did_open(store: Arc<dyn Store>) {
    let (t, u) = (tenant(), user("long-history"));
    let clock = TestClock::new(month(24) + chrono::Duration::days(9));
    meter_core::service::bootstrap::bootstrap(store.as_ref(), &t, None, month(0))
        .await
        .unwrap();
    let meter = Meter::with_clock(
        store.clone(),
        Arc::new(meter_core::alerts::LogPublisher),
        clock.clock(),
    );
    // 24 months (April 2023 – March 2025 is 0..24) and the current one, 3 providers.
    let mut expected_cost = Vec::new();
    for i in 0..=24 {
        let events: Vec<_> = ["gemini", "openai", "anthropic"]
            .iter()
            .flat_map(|p| (0..3).map(move |k| (p, k)))
            .map(|(p, k)| event_in(&t, &u, i, k, p))
            .collect();
        expected_cost.push(events.iter().filter_map(|e| e.cost_usd).sum::<Decimal>());
        let outcomes = store.record_events(&events).await.unwrap();
        assert!(outcomes.iter().all(|o| *o == RecordOutcome::Recorded));
    }
    // Not vacuous: the reads show the recorded amounts.
    let before = reads(&store, &meter, &t, &u).await;
    for (i, usage) in before.periods.iter().enumerate() {
        let cost: Decimal = usage
            .by_provider
            .values()
            .map(|p| p.recorded.cost_usd)
            .sum();
        assert_eq!(cost, expected_cost[i], "month {i}");
        let g = &usage.by_provider[&provider("gemini")];
        assert_eq!(
            (
                g.recorded.calls,
                g.error_calls,
                g.estimated_calls,
                g.latency_count
            ),
            (3, 1, 1, 3)
        );
        assert_eq!(g.latency_ms_sum, 303);
    }

    for i in 0..24 {
        close(&store, &t, &u, month_period(i)).await;
    }
    let after = reads(&store, &meter, &t, &u).await;
    assert_eq!(after, before);
    assert_eq!(store.list_invoices(&t, &u).await.unwrap().len(), 24);
    let b = store.billing_state(&t, &u, month(24)).await.unwrap();
    assert_eq!(b.billed_to, Some(month(24)));
    assert!(b.pending_periods.iter().all(|p| *p >= month(24)));
}

pub async fn twenty_concurrent_reservations_never_overspend_and_each_closes_once(
    store: Arc<dyn Store>,
) {
    // Limit 24 calls, 4 recorded: exactly 20 of 30 concurrent reservations succeed.
    let (t, u) = (tenant(), user("many-holds"));
    let events: Vec<_> = (0..4)
        .map(|i| event(&t, &u, &format!("m-pre-{i}"), 10, "0.01"))
        .collect();
    store.record_events(&events).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..30 {
        let store = store.clone();
        // A third expire at 13:00, the others at 15:00.
        let expires = if i % 3 == 2 {
            at(2025, 3, 10, 13)
        } else {
            at(2025, 3, 10, 15)
        };
        let r = reservation(&t, &u, 100, "0.001", expires);
        tasks.push(tokio::spawn(async move {
            let out = store.reserve(&r, &[calls_guard(24)]).await.unwrap();
            (r, out)
        }));
    }
    let mut held = Vec::new();
    for task in tasks {
        let (r, out) = task.await.unwrap();
        if out == ReserveOutcome::Reserved {
            held.push(r);
        }
    }
    assert_eq!(held.len(), 20);
    let g = gemini(&store, &t, &u).await;
    assert_eq!((g.recorded.calls, g.held.calls), (4, 20));
    // Full: one more is denied.
    let extra = reservation(&t, &u, 100, "0.001", at(2025, 3, 10, 15));
    assert!(matches!(
        store.reserve(&extra, &[calls_guard(24)]).await.unwrap(),
        ReserveOutcome::Denied { .. }
    ));

    // Each closed by one path, every path racing a duplicate of itself: releases twice,
    // settling events twice (the same event), expiry passes twice.
    let expiring = held
        .iter()
        .filter(|r| r.expires_at == at(2025, 3, 10, 13))
        .count();
    let mut released = Vec::new();
    let mut settles = Vec::new();
    let mut tasks = Vec::new();
    for (i, r) in held.iter().enumerate() {
        if r.expires_at == at(2025, 3, 10, 13) {
            continue;
        }
        if i % 2 == 0 {
            released.push(r.id.clone());
            for _ in 0..2 {
                let (store, t, id) = (store.clone(), t.clone(), r.id.clone());
                tasks.push(tokio::spawn(async move {
                    let out = store.release_reservation(&t, &id).await.unwrap();
                    (usize::from(out == ReleaseOutcome::Released), 0, 0)
                }));
            }
        } else {
            let mut e = event(&t, &u, &format!("m-settle-{i}"), 30, "0.003");
            e.reservation_id = Some(r.id.clone());
            settles.push(r.id.clone());
            for _ in 0..2 {
                let (store, e) = (store.clone(), e.clone());
                tasks.push(tokio::spawn(async move {
                    let out = store.record_events(&[e]).await.unwrap();
                    (0, usize::from(out[0] == RecordOutcome::Recorded), 0)
                }));
            }
        }
    }
    for _ in 0..2 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            (
                0,
                0,
                store
                    .expire_reservations(at(2025, 3, 10, 14), 100)
                    .await
                    .unwrap(),
            )
        }));
    }
    let (mut r_n, mut s_n, mut x_n) = (0, 0, 0);
    for task in tasks {
        let (r, s, x) = task.await.unwrap();
        (r_n, s_n, x_n) = (r_n + r, s_n + s, x_n + x);
    }
    assert_eq!(
        (r_n, s_n, x_n),
        (released.len(), settles.len(), expiring),
        "each reservation closed exactly once"
    );
    for r in &held {
        let status = store
            .get_reservation(&t, &r.id)
            .await
            .unwrap()
            .unwrap()
            .status;
        let want = if released.contains(&r.id) {
            ReservationStatus::Released
        } else if settles.contains(&r.id) {
            ReservationStatus::Settled
        } else {
            ReservationStatus::Expired
        };
        assert_eq!(status, want, "{}", r.id);
    }
    let g = gemini(&store, &t, &u).await;
    assert_eq!(g.held, Tally::default());
    assert_eq!(
        g.recorded,
        Tally {
            calls: 4 + settles.len() as u64,
            tokens: 40 + 30 * settles.len() as u64,
            cost_usd: dec("0.04") + dec("0.003") * Decimal::from(settles.len()),
        }
    );
    // The slots are free again: 20 more fit.
    for _ in 0..(20 - settles.len()) {
        let r = reservation(&t, &u, 1, "0", at(2025, 3, 10, 15));
        assert_eq!(
            store.reserve(&r, &[calls_guard(24)]).await.unwrap(),
            ReserveOutcome::Reserved
        );
    }
}

pub async fn reservations_outliving_their_periods_close_return_holds_exactly(
    store: Arc<dyn Store>,
) {
    let (t, u) = (tenant(), user("late-holds"));
    store
        .record_events(&[event(&t, &u, "lh-0", 10, "0.5")])
        .await
        .unwrap();
    let settle = reservation(&t, &u, 100, "0.25", at(2025, 4, 2, 0));
    let release = reservation(&t, &u, 200, "0.125", at(2025, 4, 2, 0));
    let expire = reservation(&t, &u, 300, "0.0625", at(2025, 4, 1, 12));
    for r in [&settle, &release, &expire] {
        assert_eq!(
            store.reserve(r, &[]).await.unwrap(),
            ReserveOutcome::Reserved
        );
    }
    let march_period = Period {
        start: march(),
        end: at(2025, 4, 1, 0),
    };
    // The close bills what was recorded; the holds stay held in the closed period.
    let s = store.billing_state(&t, &u, march()).await.unwrap();
    let g = &s.usage.by_provider[&provider("gemini")];
    assert_eq!(g.recorded.cost_usd, dec("0.5"));
    assert_eq!(g.held.calls, 3);
    close(&store, &t, &u, march_period).await;
    let g = gemini(&store, &t, &u).await;
    assert_eq!((g.recorded.calls, g.held.calls), (1, 3));
    assert_eq!(g.held.cost_usd, dec("0.4375"));

    // Settled by a late event, released, expired — each once, racing a duplicate.
    let mut e = event(&t, &u, "lh-settle", 40, "0.2");
    e.reservation_id = Some(settle.id.clone());
    let (a, b) = tokio::join!(
        store.record_events(std::slice::from_ref(&e)),
        store.record_events(std::slice::from_ref(&e))
    );
    let mut outs = vec![a.unwrap()[0], b.unwrap()[0]];
    outs.sort_by_key(|o| format!("{o:?}"));
    assert_eq!(
        outs,
        vec![RecordOutcome::Duplicate, RecordOutcome::Recorded]
    );
    let (a, b) = tokio::join!(
        store.release_reservation(&t, &release.id),
        store.release_reservation(&t, &release.id)
    );
    let released = [a.unwrap(), b.unwrap()]
        .iter()
        .filter(|o| **o == ReleaseOutcome::Released)
        .count();
    assert_eq!(released, 1);
    let (a, b) = tokio::join!(
        store.expire_reservations(at(2025, 4, 1, 13), 100),
        store.expire_reservations(at(2025, 4, 1, 13), 100)
    );
    assert_eq!(a.unwrap() + b.unwrap(), 1);

    let g = gemini(&store, &t, &u).await;
    assert_eq!(g.held, Tally::default());
    assert_eq!(
        g.recorded,
        Tally {
            calls: 2,
            tokens: 50,
            cost_usd: dec("0.7")
        }
    );
    // The late event is billed once, as March's adjustment.
    let s = store
        .billing_state(&t, &u, at(2025, 4, 1, 0))
        .await
        .unwrap();
    let adj = &s.adjustments[&march()];
    assert_eq!((adj.events, adj.cost_usd), (1, dec("0.2")));
    for (r, want) in [
        (&settle, ReservationStatus::Settled),
        (&release, ReservationStatus::Released),
        (&expire, ReservationStatus::Expired),
    ] {
        let got = store.get_reservation(&t, &r.id).await.unwrap().unwrap();
        assert_eq!(got.status, want);
    }
}
