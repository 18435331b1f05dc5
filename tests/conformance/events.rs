//! Recording events: redeliveries counted once, conflicts refused, settling a reservation,
//! unpriced/estimated/error/latency counts, daily rollups, period usage and the user-usage
//! read.

use std::sync::Arc;

use meter_core::domain::{Reservation, ReservationStatus};
use meter_core::store::{RecordOutcome, ReleaseOutcome, ReserveOutcome, Store};
use meter_core::usage::{PeriodUsage, Tally};
use rust_decimal::Decimal;

use crate::fixtures::*;

pub async fn redelivered_events_are_counted_exactly_once(store: Arc<dyn Store>) {
    let (t, u) = (tenant(), user("bob"));
    let events: Vec<_> = (0..1000u64)
        .map(|i| {
            event(
                &t,
                &u,
                &format!("ev-{i}"),
                i,
                &format!("0.{:07}", i * 37 + 1),
            )
        })
        .collect();
    let expected_cost: Decimal = events.iter().map(|e| e.cost_usd.unwrap()).sum();
    let expected_tokens: u64 = (0..1000u64).sum();

    // Every event 5 times, from concurrent tasks, singly and in small batches.
    let semaphore = Arc::new(tokio::sync::Semaphore::new(48));
    let mut tasks = Vec::new();
    for round in 0..5 {
        for chunk in events.chunks(if round % 2 == 0 { 1 } else { 7 }) {
            let store = store.clone();
            let chunk = chunk.to_vec();
            let permit = semaphore.clone().acquire_owned().await.unwrap();
            tasks.push(tokio::spawn(async move {
                let out = store.record_events(&chunk).await;
                drop(permit);
                out
            }));
        }
    }
    let mut recorded = 0;
    for task in tasks {
        for outcome in task.await.unwrap().unwrap() {
            match outcome {
                RecordOutcome::Recorded => recorded += 1,
                RecordOutcome::Duplicate => {}
                RecordOutcome::Conflict => panic!("a redelivery is not a conflict"),
            }
        }
    }

    assert_eq!(recorded, 1000);
    let g = gemini(&store, &t, &u).await;
    assert_eq!(
        g.recorded,
        Tally {
            calls: 1000,
            tokens: expected_tokens,
            cost_usd: expected_cost
        }
    );
    assert_eq!(g.held, Tally::default());
    let days = store
        .daily_usage(
            &t,
            &u,
            march().date_naive(),
            at(2025, 3, 31, 0).date_naive(),
        )
        .await
        .unwrap();
    assert_eq!(days.len(), 1);
    assert_eq!(days[0].by_provider[&provider("gemini")], g.recorded);
}

pub async fn same_event_id_with_other_content_is_a_conflict(store: Arc<dyn Store>) {
    let (t, u) = (tenant(), user("carol"));
    let first = event(&t, &u, "dup-1", 100, "0.5");
    assert_eq!(
        store
            .record_events(std::slice::from_ref(&first))
            .await
            .unwrap(),
        vec![RecordOutcome::Recorded]
    );
    let before = march_usage(&store, &t, &u).await;

    let mut other = event(&t, &u, "dup-1", 999, "9.5");
    other.fingerprint = "something-else".into();
    let out = store
        .record_events(&[other, first.clone(), event(&t, &u, "dup-2", 1, "0.1")])
        .await
        .unwrap();

    assert_eq!(
        out,
        vec![
            RecordOutcome::Conflict,
            RecordOutcome::Duplicate,
            RecordOutcome::Recorded
        ]
    );
    let after = gemini(&store, &t, &u).await;
    let b = before.by_provider[&provider("gemini")].recorded.clone();
    assert_eq!(
        after.recorded,
        Tally {
            calls: b.calls + 1,
            tokens: b.tokens + 1,
            cost_usd: b.cost_usd + dec("0.1")
        }
    );
    let stored = store.get_event(&t, &first.event_id).await.unwrap().unwrap();
    assert_eq!(stored.counts.input_tokens, 100);
    assert_eq!(stored.cost_usd, Some(dec("0.5")));
}

pub async fn settling_adjusts_counters_by_actual_minus_held(store: Arc<dyn Store>) {
    let (t, u) = (tenant(), user("dave"));
    let r = reservation(&t, &u, 1000, "0.25", at(2025, 3, 10, 13));
    assert_eq!(
        store.reserve(&r, &[calls_guard(5)]).await.unwrap(),
        ReserveOutcome::Reserved
    );
    assert_eq!(
        gemini(&store, &t, &u).await.held,
        Tally {
            calls: 1,
            tokens: 1000,
            cost_usd: dec("0.25")
        }
    );

    let mut e = event(&t, &u, "settle-1", 400, "0.1");
    e.reservation_id = Some(r.id.clone());
    assert_eq!(
        store.record_events(std::slice::from_ref(&e)).await.unwrap(),
        vec![RecordOutcome::Recorded]
    );

    let g = gemini(&store, &t, &u).await;
    assert_eq!(g.held, Tally::default());
    assert_eq!(
        g.recorded,
        Tally {
            calls: 1,
            tokens: 400,
            cost_usd: dec("0.1")
        }
    );
    assert_eq!(
        store
            .get_reservation(&t, &r.id)
            .await
            .unwrap()
            .unwrap()
            .status,
        ReservationStatus::Settled
    );
    // Settling again (a retried event) and releasing afterwards change nothing.
    assert_eq!(
        store.record_events(&[e]).await.unwrap(),
        vec![RecordOutcome::Duplicate]
    );
    assert_eq!(
        store.release_reservation(&t, &r.id).await.unwrap(),
        ReleaseOutcome::AlreadyClosed(ReservationStatus::Settled)
    );
    assert_eq!(gemini(&store, &t, &u).await, g);

    // The stored reservation is the one reserved, now settled.
    assert_eq!(
        store.get_reservation(&t, &r.id).await.unwrap(),
        Some(Reservation {
            status: ReservationStatus::Settled,
            ..r.clone()
        })
    );
    // Another event naming the settled reservation is recorded and takes back no hold.
    let mut other = event(&t, &u, "settle-2", 400, "0.1");
    other.reservation_id = Some(r.id.clone());
    assert_eq!(
        store.record_events(&[other]).await.unwrap(),
        vec![RecordOutcome::Recorded]
    );
    let after = gemini(&store, &t, &u).await;
    assert_eq!(after.held, Tally::default());
    assert_eq!(after.recorded.calls, 2);
}

pub async fn unpriced_estimated_error_and_latency_counts_are_kept(store: Arc<dyn Store>) {
    let (t, u) = (tenant(), user("mia"));
    let mut a = event(&t, &u, "q-1", 10, "0");
    a.cost_usd = None;
    a.price_version = None;
    a.latency_ms = Some(120);
    let mut b = event(&t, &u, "q-2", 10, "0.3");
    b.estimated = true;
    b.status_code = Some(503);
    b.latency_ms = Some(80);
    store.record_events(&[a, b]).await.unwrap();
    let g = gemini(&store, &t, &u).await;
    assert_eq!(
        g.recorded,
        Tally {
            calls: 2,
            tokens: 20,
            cost_usd: dec("0.3")
        }
    );
    assert_eq!(
        (g.unpriced_calls, g.estimated_calls, g.error_calls),
        (1, 1, 1)
    );
    assert_eq!((g.latency_ms_sum, g.latency_count), (200, 2));

    // A call without a latency counts, but not towards the latency average.
    let mut c = event(&t, &u, "q-3", 10, "0.1");
    c.latency_ms = None;
    store.record_events(&[c]).await.unwrap();
    let g = gemini(&store, &t, &u).await;
    assert_eq!(g.recorded.calls, 3);
    assert_eq!((g.latency_ms_sum, g.latency_count), (200, 2));
}

pub async fn daily_rollups_follow_event_days(store: Arc<dyn Store>) {
    let (t, u) = (tenant(), user("noah"));
    let mut events = Vec::new();
    for (i, day) in [2u32, 2, 5, 31].iter().enumerate() {
        let mut e = event(&t, &u, &format!("d-{i}"), 100, "1.5");
        e.timestamp = at(2025, 3, *day, 23);
        events.push(e);
    }
    let mut other = event(&t, &u, "d-openai", 7, "0.25");
    other.provider = provider("openai");
    other.timestamp = at(2025, 3, 5, 0);
    events.push(other);
    store.record_events(&events).await.unwrap();

    let days = store
        .daily_usage(
            &t,
            &u,
            at(2025, 3, 2, 0).date_naive(),
            at(2025, 3, 30, 0).date_naive(),
        )
        .await
        .unwrap();
    let summary: Vec<_> = days
        .iter()
        .map(|d| {
            (
                d.day.to_string(),
                d.by_provider.values().map(|x| x.calls).sum::<u64>(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![("2025-03-02".to_owned(), 2), ("2025-03-05".to_owned(), 2)]
    );
    assert_eq!(
        days[1].by_provider[&provider("openai")],
        Tally {
            calls: 1,
            tokens: 7,
            cost_usd: dec("0.25")
        }
    );
    assert_eq!(
        days[0].by_provider[&provider("gemini")].cost_usd,
        dec("3.0")
    );
    // A range without events has no days.
    let none = store
        .daily_usage(
            &t,
            &u,
            at(2025, 3, 6, 0).date_naive(),
            at(2025, 3, 30, 0).date_naive(),
        )
        .await
        .unwrap();
    assert!(none.is_empty(), "{none:?}");
}

pub async fn period_usage_is_per_period_and_zero_filled(store: Arc<dyn Store>) {
    let (t, u) = (tenant(), user("olga"));
    let mut feb = event(&t, &u, "f-1", 5, "0.5");
    feb.period_start = at(2025, 2, 1, 0);
    store
        .record_events(&[feb, event(&t, &u, "m-1", 7, "0.7")])
        .await
        .unwrap();
    let got = store
        .get_period_usage(&t, &u, &[at(2025, 1, 1, 0), at(2025, 2, 1, 0), march()])
        .await
        .unwrap();
    assert_eq!(got.len(), 3);
    assert_eq!(got[0], PeriodUsage::default());
    assert_eq!(got[1].by_provider[&provider("gemini")].recorded.tokens, 5);
    assert_eq!(got[2].by_provider[&provider("gemini")].recorded.tokens, 7);
}

pub async fn user_usage_reads_the_period_the_subscription_picks(store: Arc<dyn Store>) {
    let (t, u) = (tenant(), user("liam"));
    // Without a subscription, the picker sees None.
    let none = store
        .get_user_usage(&t, &u, &|s| {
            assert!(s.is_none());
            march()
        })
        .await
        .unwrap();
    assert_eq!(none.subscription, None);
    assert_eq!(none.usage, PeriodUsage::default());

    let sub = subscription(&t, &u, 15);
    store.put_subscription(&sub, None).await.unwrap();
    let mut e = event(&t, &u, "p-1", 10, "0.01");
    e.period_start = sub.current_period.start;
    store
        .record_events(&[e, event(&t, &u, "p-2", 10, "0.02")])
        .await
        .unwrap();

    let got = store
        .get_user_usage(&t, &u, &|s| s.unwrap().current_period.start)
        .await
        .unwrap();
    assert_eq!(got.subscription.as_ref(), Some(&sub));
    assert_eq!(got.period_start, Some(sub.current_period.start));
    assert_eq!(
        got.usage.by_provider[&provider("gemini")].recorded.cost_usd,
        dec("0.01")
    );
}

/// Issue 23: the dashboard's combined read returns what the separate reads return — the
/// subscription the picker sees, each picked period's usage (zero-filled) in its order,
/// the newest alerts and the unread count.
pub async fn dashboard_reads_equal_the_separate_reads(store: Arc<dyn Store>) {
    let (t, u) = (tenant(), user("dora"));
    let empty = store
        .dashboard_reads(
            &t,
            &u,
            &|s| {
                assert!(s.is_none());
                vec![march()]
            },
            5,
        )
        .await
        .unwrap();
    assert_eq!(empty.subscription, None);
    assert_eq!(empty.usages, vec![PeriodUsage::default()]);
    assert_eq!((empty.alerts.len(), empty.unread), (0, 0));

    let sub = subscription(&t, &u, 15);
    store.put_subscription(&sub, None).await.unwrap();
    let mut feb = event(&t, &u, "d-1", 5, "0.5");
    feb.period_start = at(2025, 2, 1, 0);
    store
        .record_events(&[feb, event(&t, &u, "d-2", 7, "0.7")])
        .await
        .unwrap();
    for (i, key) in ["calls:gemini@80", "calls:gemini@90", "calls:gemini@100"]
        .iter()
        .enumerate()
    {
        let a = alert(&t, &u, key, i64::try_from(i).unwrap());
        assert!(store.create_alert_once(&a).await.unwrap());
    }
    let starts = [at(2025, 1, 1, 0), at(2025, 2, 1, 0), march()];
    let got = store
        .dashboard_reads(
            &t,
            &u,
            &|s| {
                assert_eq!(s.map(|s| s.version), Some(sub.version));
                starts.to_vec()
            },
            2,
        )
        .await
        .unwrap();
    assert_eq!(
        got.subscription,
        store.get_subscription(&t, &u).await.unwrap()
    );
    assert_eq!(
        got.usages,
        store.get_period_usage(&t, &u, &starts).await.unwrap()
    );
    assert_eq!(
        got.usages[1].by_provider[&provider("gemini")]
            .recorded
            .tokens,
        5
    );
    let (alerts, unread) = store.list_alerts(&t, &u, false, 2).await.unwrap();
    assert_eq!((got.alerts, got.unread), (alerts, unread));
    assert_eq!(unread, 3);
}

/// `record_events_then_limits` (ingest's write and its alerts' read): the state it gives
/// back includes the write's own event, recorded now or before, with the fired alerts;
/// racing writes of one user, redeliveries among them.
pub async fn the_state_read_with_a_write_includes_its_event(store: Arc<dyn Store>) {
    let (t, u) = (tenant(), user("rita"));
    store
        .create_alert_once(&alert(&t, &u, "calls:gemini@80", 0))
        .await
        .unwrap();
    // Event i has 2^i tokens: a state's token count names exactly the events it includes.
    let events: Vec<_> = (0..40u32)
        .map(|i| event(&t, &u, &format!("ev-{i}"), 1u64 << i, "0.001"))
        .collect();
    let mut tasks = Vec::new();
    for (i, e) in events
        .iter()
        .enumerate()
        .chain(events.iter().enumerate().take(10))
    {
        let (store, e) = (store.clone(), e.clone());
        tasks.push(tokio::spawn(async move {
            let (outcomes, state) = store
                .record_events_then_limits(std::slice::from_ref(&e), march())
                .await
                .unwrap();
            (i, outcomes, state.unwrap())
        }));
    }
    let (mut recorded, mut widest) = (0, 0u64);
    for task in tasks {
        let (i, outcomes, state) = task.await.unwrap();
        assert_ne!(outcomes, vec![RecordOutcome::Conflict]);
        recorded += usize::from(outcomes == vec![RecordOutcome::Recorded]);
        let g = state
            .usage
            .by_provider
            .get(&provider("gemini"))
            .cloned()
            .unwrap_or_default();
        assert_ne!(
            g.recorded.tokens & (1u64 << i),
            0,
            "event {i} is in its state"
        );
        assert_eq!(
            u64::from(g.recorded.tokens.count_ones()),
            g.recorded.calls,
            "each event counted once"
        );
        assert!(state.fired_alerts.contains("calls:gemini@80"));
        assert_eq!(state.period_start, Some(march()));
        widest = widest.max(g.recorded.calls);
    }
    assert_eq!(recorded, 40);
    // The last write's state holds every event; so does a read after them.
    assert_eq!(widest, 40);
    assert_eq!(
        gemini(&store, &t, &u).await.recorded.tokens,
        (1u64 << 40) - 1
    );
}
