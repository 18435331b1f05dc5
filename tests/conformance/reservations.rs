//! Reservations: never overspent under concurrency, each hold returned exactly once
//! (settle, release and expiry racing), expiry, the guards, and an event naming another
//! user's reservation.

use std::sync::Arc;

use meter_core::domain::ReservationStatus;
use meter_core::limits::Metric;
use meter_core::store::{Guard, RecordOutcome, ReleaseOutcome, ReserveOutcome, Store, StoreError};
use meter_core::usage::Tally;

use crate::fixtures::*;

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

    // An id that names no reservation is not found.
    assert_eq!(
        store.release_reservation(&t, "rsv_nope").await.unwrap(),
        ReleaseOutcome::NotFound
    );
    // At most `limit` holds expire per call.
    for _ in 0..3 {
        let r = reservation(&t, &u, 1, "0.001", at(2025, 3, 10, 13));
        store.reserve(&r, &[]).await.unwrap();
    }
    let now = at(2025, 3, 10, 14);
    assert_eq!(store.expire_reservations(now, 2).await.unwrap(), 2);
    assert_eq!(store.expire_reservations(now, 2).await.unwrap(), 1);
    assert_eq!(store.expire_reservations(now, 2).await.unwrap(), 0);
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

    // A denied reservation is not stored and holds nothing.
    let before = march_usage(&store, &t, &u).await;
    let denied = reservation(&t, &u, 10, "0.01", at(2025, 3, 10, 13));
    assert_eq!(
        store
            .reserve(&denied, &[g(Metric::Calls(None), "1", "1", false)])
            .await
            .unwrap(),
        ReserveOutcome::Denied {
            metric: Metric::Calls(None)
        }
    );
    assert_eq!(store.get_reservation(&t, &denied.id).await.unwrap(), None);
    assert_eq!(march_usage(&store, &t, &u).await, before);
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
