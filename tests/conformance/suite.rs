//! The conformance tests, generic over the port. Each takes a fresh store.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::Duration;
use meter_core::domain::{
    Alert, ApiKeyRecord, Invoice, InvoiceStatus, LineItem, PlanName, ReservationStatus, Role,
    Severity, Subscription, SubscriptionStatus, TenantId, UserId,
};
use meter_core::limits::{Limits, Metric, Plan, Tier};
use meter_core::periods::{Anchor, BillingCycle, Period};
use meter_core::store::{Guard, RecordOutcome, ReleaseOutcome, ReserveOutcome, Store, StoreError};
use meter_core::usage::{PeriodUsage, ProviderUsage, Tally};
use rust_decimal::Decimal;

use crate::fixtures::*;

async fn march_usage(store: &Arc<dyn Store>, t: &TenantId, u: &UserId) -> PeriodUsage {
    store
        .get_period_usage(t, u, &[march()])
        .await
        .unwrap()
        .remove(0)
}

async fn gemini(store: &Arc<dyn Store>, t: &TenantId, u: &UserId) -> ProviderUsage {
    march_usage(store, t, u)
        .await
        .by_provider
        .get(&provider("gemini"))
        .cloned()
        .unwrap_or_default()
}

fn calls_guard(limit: u64) -> Guard {
    Guard {
        metric: Metric::Calls(Some(provider("gemini"))),
        increment: Decimal::ONE,
        limit: Decimal::from(limit),
        strict: false,
    }
}

pub async fn reservations_never_overspend_under_concurrency(store: Arc<dyn Store>) {
    // Arrange: limit 60 calls, 10 already recorded => 50 left.
    let (t, u) = (tenant(), user("alice"));
    let events: Vec<_> = (0..10)
        .map(|i| event(&t, &u, &format!("pre-{i}"), 10, "0.01"))
        .collect();
    store.record_events(&events).await.unwrap();

    // Act: 64 concurrent reservations.
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let store = store.clone();
        let r = reservation(&t, &u, 100, "0.001", at(2025, 3, 10, 13));
        tasks.push(tokio::spawn(async move {
            store.reserve(&r, &[calls_guard(60)]).await
        }));
    }
    let mut reserved = 0;
    for task in tasks {
        match task.await.unwrap().unwrap() {
            ReserveOutcome::Reserved => reserved += 1,
            ReserveOutcome::Denied { metric } => {
                assert_eq!(metric, Metric::Calls(Some(provider("gemini"))))
            }
        }
    }

    // Assert: exactly 50, and the holds say so.
    assert_eq!(reserved, 50);
    let g = gemini(&store, &t, &u).await;
    assert_eq!(g.recorded.calls, 10);
    assert_eq!(
        g.held,
        Tally {
            calls: 50,
            tokens: 5000,
            cost_usd: dec("0.050")
        }
    );
}

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
}

pub async fn a_hold_is_returned_exactly_once_whatever_races(store: Arc<dyn Store>) {
    let (t, u) = (tenant(), user("erin"));
    for round in 0..5 {
        let r = reservation(&t, &u, 50, "0.05", at(2025, 3, 10, 12));
        assert_eq!(
            store.reserve(&r, &[]).await.unwrap(),
            ReserveOutcome::Reserved
        );
        let mut tasks = Vec::new();
        for i in 0..6 {
            let store = store.clone();
            let (t, id) = (t.clone(), r.id.clone());
            tasks.push(tokio::spawn(async move {
                if i % 2 == 0 {
                    store
                        .release_reservation(&t, &id)
                        .await
                        .map(|o| matches!(o, ReleaseOutcome::Released) as usize)
                } else {
                    store.expire_reservations(at(2025, 3, 11, 0), 100).await
                }
            }));
        }
        let mut e = event(&t, &u, &format!("race-{round}"), 20, "0.02");
        e.reservation_id = Some(r.id.clone());
        let settle = {
            let store = store.clone();
            tokio::spawn(async move { store.record_events(&[e]).await })
        };
        let closed: usize = futures_sum(tasks).await;
        assert_eq!(
            settle.await.unwrap().unwrap(),
            vec![RecordOutcome::Recorded]
        );
        let status = store
            .get_reservation(&t, &r.id)
            .await
            .unwrap()
            .unwrap()
            .status;
        assert_ne!(status, ReservationStatus::Held);
        assert_eq!(
            closed,
            usize::from(status != ReservationStatus::Settled),
            "status {status:?}"
        );
        assert_eq!(
            gemini(&store, &t, &u).await.held,
            Tally::default(),
            "round {round}"
        );
    }
    let g = gemini(&store, &t, &u).await;
    assert_eq!(
        g.recorded,
        Tally {
            calls: 5,
            tokens: 100,
            cost_usd: dec("0.10")
        }
    );
}

async fn futures_sum(tasks: Vec<tokio::task::JoinHandle<Result<usize, StoreError>>>) -> usize {
    let mut n = 0;
    for task in tasks {
        n += task.await.unwrap().unwrap();
    }
    n
}

pub async fn expired_reservations_return_their_holds(store: Arc<dyn Store>) {
    let (t, u) = (tenant(), user("frank"));
    let soon = reservation(&t, &u, 10, "0.01", at(2025, 3, 10, 13));
    let later = reservation(&t, &u, 20, "0.02", at(2025, 3, 10, 15));
    store.reserve(&soon, &[]).await.unwrap();
    store.reserve(&later, &[]).await.unwrap();

    assert_eq!(
        store
            .expire_reservations(at(2025, 3, 10, 12), 100)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .expire_reservations(at(2025, 3, 10, 14), 100)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .expire_reservations(at(2025, 3, 10, 14), 100)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        gemini(&store, &t, &u).await.held,
        Tally {
            calls: 1,
            tokens: 20,
            cost_usd: dec("0.02")
        }
    );
    assert_eq!(
        store
            .get_reservation(&t, &soon.id)
            .await
            .unwrap()
            .unwrap()
            .status,
        ReservationStatus::Expired
    );
    assert_eq!(
        store.release_reservation(&t, &soon.id).await.unwrap(),
        ReleaseOutcome::AlreadyClosed(ReservationStatus::Expired)
    );
    assert_eq!(
        store.release_reservation(&t, &later.id).await.unwrap(),
        ReleaseOutcome::Released
    );
    assert_eq!(
        store.release_reservation(&t, &later.id).await.unwrap(),
        ReleaseOutcome::AlreadyClosed(ReservationStatus::Released)
    );
    assert_eq!(gemini(&store, &t, &u).await.held, Tally::default());
}

pub async fn guards_cover_totals_tokens_and_strict_cost(store: Arc<dyn Store>) {
    let (t, u) = (tenant(), user("gina"));
    // 3 recorded gemini calls, 300 tokens, $0.30; one held openai call of 50 tokens, $0.05.
    let events: Vec<_> = (0..3)
        .map(|i| event(&t, &u, &format!("g-{i}"), 100, "0.10"))
        .collect();
    store.record_events(&events).await.unwrap();
    let mut held = reservation(&t, &u, 50, "0.05", at(2025, 3, 10, 13));
    held.provider = provider("openai");
    assert_eq!(
        store.reserve(&held, &[]).await.unwrap(),
        ReserveOutcome::Reserved
    );

    let g = |metric: Metric, inc: &str, limit: &str, strict: bool| Guard {
        metric,
        increment: dec(inc),
        limit: dec(limit),
        strict,
    };
    let try_reserve = |guards: Vec<Guard>| {
        let store = store.clone();
        let r = reservation(&t, &u, 0, "0", at(2025, 3, 10, 13));
        async move { store.reserve(&r, &guards).await.unwrap() }
    };
    // calls:* used = 4 (3 recorded + 1 held).
    assert_eq!(
        try_reserve(vec![g(Metric::Calls(None), "1", "5", false)]).await,
        ReserveOutcome::Reserved
    );
    assert_eq!(
        try_reserve(vec![g(Metric::Calls(None), "1", "5", false)]).await,
        ReserveOutcome::Denied {
            metric: Metric::Calls(None)
        }
    );
    // tokens:* used = 350; tokens:gemini = 300.
    assert_eq!(
        try_reserve(vec![
            g(
                Metric::Tokens(Some(provider("gemini"))),
                "700",
                "1000",
                false
            ),
            g(Metric::Tokens(None), "651", "1000", false)
        ])
        .await,
        ReserveOutcome::Denied {
            metric: Metric::Tokens(None)
        }
    );
    // cost used = 0.35: with no estimate the cap is strict.
    assert_eq!(
        try_reserve(vec![g(Metric::CostUsd, "0", "0.35", true)]).await,
        ReserveOutcome::Denied {
            metric: Metric::CostUsd
        }
    );
    assert_eq!(
        try_reserve(vec![g(Metric::CostUsd, "0.05", "0.40", false)]).await,
        ReserveOutcome::Reserved
    );
    // A limit of 0 allows nothing.
    assert_eq!(
        try_reserve(vec![g(
            Metric::Calls(Some(provider("anthropic"))),
            "1",
            "0",
            false
        )])
        .await,
        ReserveOutcome::Denied {
            metric: Metric::Calls(Some(provider("anthropic")))
        }
    );
}

pub async fn event_settling_another_users_reservation_does_not_touch_it(store: Arc<dyn Store>) {
    let t = tenant();
    let (owner, other) = (user("hank"), user("ivy"));
    let r = reservation(&t, &owner, 10, "0.01", at(2025, 3, 10, 13));
    store.reserve(&r, &[]).await.unwrap();
    let mut e = event(&t, &other, "steal-1", 5, "0.005");
    e.reservation_id = Some(r.id.clone());
    assert_eq!(
        store.record_events(&[e]).await.unwrap(),
        vec![RecordOutcome::Recorded]
    );
    assert_eq!(
        store
            .get_reservation(&t, &r.id)
            .await
            .unwrap()
            .unwrap()
            .status,
        ReservationStatus::Held
    );
    assert_eq!(gemini(&store, &t, &owner).await.held.calls, 1);
    assert_eq!(gemini(&store, &t, &other).await.recorded.calls, 1);
}

/// An unpublished alert of March for `key` (used by other test files).
pub fn alert_for_tests(t: &TenantId, u: &UserId, key: &str) -> Alert {
    alert(t, u, key, 0)
}

fn alert(t: &TenantId, u: &UserId, key: &str, minute: i64) -> Alert {
    Alert {
        id: uuid::Uuid::new_v4().to_string(),
        tenant: t.clone(),
        user: u.clone(),
        period_start: march(),
        key: key.into(),
        metric: Some("calls:gemini".into()),
        threshold: Some(80),
        severity: Severity::Info,
        title: "API usage notice - gemini".into(),
        message: "You have used 80 of 100 gemini calls".into(),
        created_at: at(2025, 3, 10, 12) + Duration::minutes(minute),
        read: false,
        published: false,
    }
}

pub async fn alert_is_stored_once_under_concurrency(store: Arc<dyn Store>) {
    let (t, u) = (tenant(), user("jack"));
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let store = store.clone();
        let a = alert(&t, &u, "calls:gemini@80", 0);
        tasks.push(tokio::spawn(async move {
            store.create_alert_once(&a).await.unwrap()
        }));
    }
    let mut created = 0;
    for task in tasks {
        created += usize::from(task.await.unwrap());
    }
    assert_eq!(created, 1);
    let (alerts, unread) = store.list_alerts(&t, &u, false, 100).await.unwrap();
    assert_eq!((alerts.len(), unread), (1, 1));
    let state = store.get_user_usage(&t, &u, &|_| march()).await.unwrap();
    assert_eq!(
        state.fired_alerts,
        BTreeSet::from(["calls:gemini@80".to_owned()])
    );
    // Another period re-arms the key.
    let mut april = alert(&t, &u, "calls:gemini@80", 0);
    april.period_start = at(2025, 4, 1, 0);
    assert!(store.create_alert_once(&april).await.unwrap());
}

pub async fn rearmed_alert_keys_can_fire_again_and_old_alerts_stay_listed(store: Arc<dyn Store>) {
    let (t, u) = (tenant(), user("lars"));
    // Nothing fired yet (and no state at all): re-arming is a no-op, not an error.
    store
        .rearm_alerts(&t, &u, march(), &["calls:gemini@80".to_owned()])
        .await
        .unwrap();
    for key in ["calls:gemini@80", "calls:gemini@90"] {
        assert!(store
            .create_alert_once(&alert(&t, &u, key, 0))
            .await
            .unwrap());
    }
    let april = at(2025, 4, 1, 0);
    let mut later = alert(&t, &u, "calls:gemini@80", 1);
    later.period_start = april;
    assert!(store.create_alert_once(&later).await.unwrap());

    let keys = [
        "calls:gemini@80".to_owned(),
        "calls:gemini@80".to_owned(),
        "never".to_owned(),
    ];
    store.rearm_alerts(&t, &u, march(), &keys).await.unwrap();
    store.rearm_alerts(&t, &u, march(), &keys).await.unwrap();

    let fired = |p| {
        let store = store.clone();
        let (t, u) = (t.clone(), u.clone());
        async move {
            store
                .get_user_usage(&t, &u, &|_| p)
                .await
                .unwrap()
                .fired_alerts
        }
    };
    assert_eq!(
        fired(march()).await,
        BTreeSet::from(["calls:gemini@90".to_owned()])
    );
    assert_eq!(
        fired(april).await,
        BTreeSet::from(["calls:gemini@80".to_owned()]),
        "other periods keep their keys"
    );
    // The key fires again once, and both alerts are listed.
    assert!(store
        .create_alert_once(&alert(&t, &u, "calls:gemini@80", 2))
        .await
        .unwrap());
    assert!(!store
        .create_alert_once(&alert(&t, &u, "calls:gemini@80", 3))
        .await
        .unwrap());
    let (listed, unread) = store.list_alerts(&t, &u, false, 100).await.unwrap();
    let march_80 = listed
        .iter()
        .filter(|a| a.key == "calls:gemini@80" && a.period_start == march())
        .count();
    assert_eq!((march_80, listed.len(), unread), (2, 4, 4));
}

pub async fn alerts_list_newest_first_with_total_unread_and_outbox(store: Arc<dyn Store>) {
    let (t, u) = (tenant(), user("kate"));
    let mut ids = Vec::new();
    for i in 0..5 {
        let a = alert(&t, &u, &format!("k{i}"), i);
        ids.push(a.id.clone());
        assert!(store.create_alert_once(&a).await.unwrap());
    }
    assert!(store.mark_alert_read(&t, &ids[4]).await.unwrap());
    assert!(
        store.mark_alert_read(&t, &ids[4]).await.unwrap(),
        "marking read is idempotent"
    );
    assert!(!store.mark_alert_read(&t, "no-such-alert").await.unwrap());

    let (page, unread) = store.list_alerts(&t, &u, false, 2).await.unwrap();
    assert_eq!(
        unread, 4,
        "unread_count counts every unread alert, not the page"
    );
    assert_eq!(
        page.iter().map(|a| a.id.clone()).collect::<Vec<_>>(),
        vec![ids[4].clone(), ids[3].clone()]
    );
    assert!(page[0].read);
    let (unread_page, _) = store.list_alerts(&t, &u, true, 10).await.unwrap();
    assert_eq!(
        unread_page.iter().map(|a| a.id.clone()).collect::<Vec<_>>(),
        vec![
            ids[3].clone(),
            ids[2].clone(),
            ids[1].clone(),
            ids[0].clone()
        ]
    );

    // Outbox: unpublished, oldest first (other tenants' alerts may be there too).
    let mine = |v: Vec<Alert>| {
        v.into_iter()
            .filter(|a| a.tenant == t)
            .map(|a| a.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(mine(store.unpublished_alerts(1000).await.unwrap()), ids);
    store.mark_alert_published(&t, &ids[0]).await.unwrap();
    store.mark_alert_published(&t, &ids[0]).await.unwrap();
    assert_eq!(
        mine(store.unpublished_alerts(1000).await.unwrap()),
        ids[1..].to_vec()
    );
}

fn subscription(t: &TenantId, u: &UserId, anchor_day: u32) -> Subscription {
    Subscription {
        tenant: t.clone(),
        user: u.clone(),
        plan: PlanName::parse("pro").unwrap(),
        cycle: BillingCycle::Monthly,
        anchor: Anchor::Anniversary,
        started_at: at(2025, 1, anchor_day, 0),
        current_period: Period {
            start: at(2025, 3, anchor_day, 0),
            end: at(2025, 4, anchor_day, 0),
        },
        status: SubscriptionStatus::Active,
        auto_renew: true,
        pending_plan: None,
        prorations: Vec::new(),
        history: Vec::new(),
        version: 1,
        updated_at: at(2025, 1, anchor_day, 0),
    }
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

pub async fn subscription_writes_are_versioned(store: Arc<dyn Store>) {
    let (t, u) = (tenant(), user("pete"));
    let sub = subscription(&t, &u, 1);
    store.put_subscription(&sub, None).await.unwrap();
    assert!(matches!(
        store.put_subscription(&sub, None).await,
        Err(StoreError::VersionConflict)
    ));
    let mut next = sub.clone();
    next.plan = PlanName::parse("enterprise").unwrap();
    next.version = 2;
    store.put_subscription(&next, Some(1)).await.unwrap();
    assert!(matches!(
        store.put_subscription(&next, Some(1)).await,
        Err(StoreError::VersionConflict)
    ));
    assert_eq!(store.get_subscription(&t, &u).await.unwrap(), Some(next));

    // Paging lists every subscription once.
    for i in 0..5 {
        store
            .put_subscription(&subscription(&t, &user(&format!("s{i}")), 1), None)
            .await
            .unwrap();
    }
    let mut seen = BTreeSet::new();
    let mut cursor = None;
    loop {
        let page = store.list_users(cursor, 2).await.unwrap();
        for s in page.items.into_iter().filter(|s| s.tenant == t) {
            assert!(s.subscription.is_some());
            assert!(seen.insert(s.user.to_string()), "listed twice");
        }
        match page.next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen.len(), 6);
}

pub async fn plans_prices_and_keys_round_trip(store: Arc<dyn Store>) {
    let t = tenant();
    assert!(store.create_tenant_if_absent(&t, march()).await.unwrap());
    assert!(!store.create_tenant_if_absent(&t, march()).await.unwrap());

    let mut limits = Limits::default();
    limits
        .0
        .insert(Metric::Calls(Some(provider("gemini"))), Decimal::from(100));
    limits.0.insert(Metric::CostUsd, dec("2.00"));
    let plan = Plan {
        name: PlanName::parse("free").unwrap(),
        tier: Tier::Free,
        monthly_price_usd: Decimal::ZERO,
        yearly_price_usd: Decimal::ZERO,
        description: "Free".into(),
        features: vec!["a".into()],
        alert_thresholds: vec![80, 90, 100],
        limits,
        overage_rate: None,
        active: true,
    };
    store.put_plan(&t, &plan).await.unwrap();
    assert_eq!(
        store.get_plan(&t, &plan.name).await.unwrap(),
        Some(plan.clone())
    );
    assert_eq!(store.list_plans(&t).await.unwrap(), vec![plan.clone()]);
    assert_eq!(store.list_plans(&tenant()).await.unwrap(), vec![]);

    let v1 = serde_json::json!({"id": "openai/gpt-4o@2025", "input": "0.0000025"});
    let v2 = serde_json::json!({"id": "openai/gpt-4o@2025", "input": "0.0000030"});
    store
        .put_price_version(None, "openai/gpt-4o@2025", &v1)
        .await
        .unwrap();
    store
        .put_price_version(Some(&t), "openai/gpt-4o@2025", &v2)
        .await
        .unwrap();
    assert!(store.list_price_versions(None).await.unwrap().contains(&v1));
    assert_eq!(
        store.list_price_versions(Some(&t)).await.unwrap(),
        vec![v2.clone()]
    );
    store
        .put_price_version(Some(&t), "openai/gpt-4o@2025", &v1)
        .await
        .unwrap();
    assert_eq!(store.list_price_versions(Some(&t)).await.unwrap(), vec![v1]);

    let key = ApiKeyRecord {
        hash: "ab".repeat(32),
        tenant: t.clone(),
        role: Role::Admin,
        created_at: march(),
    };
    store.put_api_key(&key).await.unwrap();
    assert_eq!(
        store.get_api_key(&key.hash).await.unwrap(),
        Some(key.clone())
    );
    assert_eq!(store.get_api_key(&"cd".repeat(32)).await.unwrap(), None);
    // Revoking: the deleted record once, then nothing; another key is untouched.
    let other = ApiKeyRecord {
        hash: "ef".repeat(32),
        ..key.clone()
    };
    store.put_api_key(&other).await.unwrap();
    assert_eq!(
        store.delete_api_key(&key.hash).await.unwrap(),
        Some(key.clone())
    );
    assert_eq!(store.get_api_key(&key.hash).await.unwrap(), None);
    assert_eq!(store.delete_api_key(&key.hash).await.unwrap(), None);
    assert_eq!(store.get_api_key(&other.hash).await.unwrap(), Some(other));
}

pub async fn invoices_are_stored_once_per_period(store: Arc<dyn Store>) {
    let (t, u) = (tenant(), user("quinn"));
    let invoice = |start: u32, total: &str| Invoice {
        id: uuid::Uuid::new_v4().to_string(),
        tenant: t.clone(),
        user: u.to_string(),
        period: Period {
            start: at(2025, start, 1, 0),
            end: at(2025, start + 1, 1, 0),
        },
        plan: PlanName::parse("pro").unwrap(),
        base_usd: dec("79"),
        usage_usd: dec("1.234567"),
        overage_usd: Decimal::ZERO,
        proration_usd: Decimal::ZERO,
        adjustments_usd: Decimal::ZERO,
        total_usd: dec(total),
        line_items: vec![LineItem {
            kind: "base".into(),
            description: "Pro".into(),
            amount_usd: dec("79"),
        }],
        status: InvoiceStatus::Pending,
        created_at: at(2025, start + 1, 1, 0),
        published: false,
        extra: Default::default(),
    };
    let feb = invoice(2, "80.23");
    assert!(store.put_invoice_once(&feb).await.unwrap());
    assert!(!store.put_invoice_once(&invoice(2, "99.99")).await.unwrap());
    assert!(store.put_invoice_once(&invoice(3, "81.00")).await.unwrap());
    let list = store.list_invoices(&t, &u).await.unwrap();
    assert_eq!(
        list.iter()
            .map(|i| i.total_usd.to_string())
            .collect::<Vec<_>>(),
        vec!["81.00", "80.23"]
    );
    assert_eq!(list[1], feb);
}

pub async fn tenants_are_isolated(store: Arc<dyn Store>) {
    let (a, b, u) = (tenant(), tenant(), user("same-user"));
    let r = reservation(&a, &u, 1, "0.01", at(2025, 3, 10, 13));
    store.reserve(&r, &[]).await.unwrap();
    assert_eq!(
        store.release_reservation(&b, &r.id).await.unwrap(),
        ReleaseOutcome::NotFound
    );
    assert_eq!(store.get_reservation(&b, &r.id).await.unwrap(), None);
    let al = alert(&a, &u, "k", 0);
    store.create_alert_once(&al).await.unwrap();
    assert!(!store.mark_alert_read(&b, &al.id).await.unwrap());
    assert_eq!(
        store.list_alerts(&b, &u, false, 10).await.unwrap(),
        (vec![], 0)
    );
    store
        .record_events(&[event(&a, &u, "iso-1", 1, "0.01")])
        .await
        .unwrap();
    // The same event id in another tenant is a different event.
    assert_eq!(
        store
            .record_events(&[event(&b, &u, "iso-1", 2, "0.02")])
            .await
            .unwrap(),
        vec![RecordOutcome::Recorded]
    );
    assert_eq!(gemini(&store, &b, &u).await.recorded.tokens, 2);
    assert!(
        store
            .get_event(&b, &meter_core::domain::EventId::parse("iso-1").unwrap())
            .await
            .unwrap()
            .unwrap()
            .counts
            .input_tokens
            == 2
    );
}
