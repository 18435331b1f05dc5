//! Prepaid plans (`PrepaidStore`, issue 19): reservations hold credit atomically and never
//! together pass what the wallet has; events draw from grants in order, exactly once per
//! event id, atomically with the event, and may overdraw; closing a reservation gives its
//! credit back; a grant stops counting at its `expires_at` exactly.
//!
//! The flows here do what the service does (`service::prepaid`): read the wallet, decide
//! with `credits::credit_allows`, hold with the read (again from a fresh read when the
//! store says the wallet changed), then settle with an event or release.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use meter_core::credits::{credit_allows, Grant, GrantKind, GrantRequest, Subscriber};
use meter_core::domain::{GrantId, Reservation, TenantId, UsageEvent, UserId};
use meter_core::store::{
    CreditHold, CreditReserve, GrantInsert, RecordOutcome, ReleaseOutcome, Store,
};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use rust_decimal::Decimal;

use crate::fixtures::*;

fn now() -> DateTime<Utc> {
    at(2025, 3, 10, 12)
}

fn wallet(u: &UserId) -> Subscriber {
    Subscriber::User(u.clone())
}

/// A grant of `amount` created at `now()`, burning at `priority`, expiring at `expires`.
fn grant(id: &str, amount: &str, priority: i32, expires: Option<DateTime<Utc>>) -> Grant {
    let mut g = GrantRequest::new(dec(amount), GrantKind::Purchase)
        .into_grant(GrantId::parse(id).unwrap(), now() - Duration::days(1))
        .unwrap();
    g.priority = priority;
    g.expires_at = expires;
    g
}

async fn put(store: &Arc<dyn Store>, t: &TenantId, u: &UserId, g: &Grant) {
    assert!(matches!(
        store.insert_grant(t, &wallet(u), g).await.unwrap(),
        GrantInsert::Created(_)
    ));
}

/// What a prepaid check with a reservation decides at `at`: `Some(id)` held, `None`
/// denied for want of credit (after a fresh read agreed).
async fn reserve(
    store: &Arc<dyn Store>,
    t: &TenantId,
    u: &UserId,
    estimate: Decimal,
    at: DateTime<Utc>,
) -> Option<Reservation> {
    let mut r = reservation(t, u, 10, &estimate.to_string(), at + Duration::minutes(5));
    r.created_at = at;
    for _ in 0..64 {
        let read = store.get_credit_state(t, &wallet(u)).await.unwrap();
        if !credit_allows(read.available(at).unwrap(), Some(estimate)) {
            return None;
        }
        let hold = CreditHold {
            wallet: wallet(u),
            estimate: Some(estimate),
            read,
            at,
        };
        match store
            .reserve_with_credit(&r, &[], &[], &hold, at)
            .await
            .unwrap()
        {
            CreditReserve::Reserved => return Some(r),
            CreditReserve::NoCredit => continue,
            CreditReserve::Denied { metric } => panic!("no guard was given, yet {metric:?}"),
        }
    }
    panic!("a hold kept losing races for 64 reads");
}

/// A prepaid event of `cost` at `at`, settling `r` when given.
fn spend(t: &TenantId, u: &UserId, id: &str, cost: Decimal, at: DateTime<Utc>) -> UsageEvent {
    let mut e = event(t, u, id, 100, &cost.to_string());
    e.timestamp = at;
    e.recorded_at = at;
    e
}

fn money(rng: &mut StdRng, micros: std::ops::RangeInclusive<i64>) -> Decimal {
    Decimal::new(rng.random_range(micros), 6)
}

pub async fn prepaid_300_concurrent_reserve_and_settle_flows_never_overspend_and_draw_exactly(
    store: Arc<dyn Store>,
) {
    let (t, u) = (tenant(), user("prepaid"));
    // $10: a $4 promo that burns first (priority 5) and a $6 purchase.
    put(
        &store,
        &t,
        &u,
        &grant("promo", "4", 5, Some(now() + Duration::days(30))),
    )
    .await;
    put(&store, &t, &u, &grant("purchase", "6", 10, None)).await;
    let ten = dec("10");
    assert_eq!(
        store
            .get_credit_state(&t, &wallet(&u))
            .await
            .unwrap()
            .available(now())
            .unwrap(),
        ten
    );

    // Phase 1: 300 concurrent holds of random estimates ($0.01–$0.10: about $16 asked).
    let mut rng = StdRng::seed_from_u64(19);
    let estimates: Vec<Decimal> = (0..300)
        .map(|_| money(&mut rng, 10_000..=100_000))
        .collect();
    let mut tasks = Vec::new();
    for (i, e) in estimates.iter().copied().enumerate() {
        let (store, t, u) = (store.clone(), t.clone(), u.clone());
        let at = now() + Duration::milliseconds(i as i64);
        tasks.push(tokio::spawn(async move {
            (e, reserve(&store, &t, &u, e, at).await)
        }));
    }
    let mut admitted = Vec::new();
    let mut denied = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            (e, Some(r)) => admitted.push((e, r)),
            (e, None) => denied.push(e),
        }
    }
    let held: Decimal = admitted.iter().map(|(e, _)| *e).sum();
    assert!(held <= ten, "admitted {held} of $10");
    assert!(!denied.is_empty(), "about $16 was asked of $10");
    let state = store.get_credit_state(&t, &wallet(&u)).await.unwrap();
    assert_eq!(
        state.held_usd, held,
        "the wallet holds exactly what was admitted"
    );
    let left = ten - held;
    assert_eq!(state.available(now()).unwrap(), left);
    // Available only shrank during the run, so each denial saw at least what is left:
    // every denied estimate is more than that (none was refused while it fitted).
    for e in &denied {
        assert!(*e > left, "{e} was denied with {left} still available");
    }

    // Phase 2: every hold settles with a random actual cost ($0–$0.12, often more than
    // its estimate), concurrently; one in ten is released instead.
    let mut tasks = Vec::new();
    let mut expected_cost = Decimal::ZERO;
    let mut released = 0usize;
    let mut events = Vec::new();
    for (i, (_, r)) in admitted.iter().enumerate() {
        let (store, t) = (store.clone(), t.clone());
        if i % 10 == 9 {
            released += 1;
            let id = r.id.clone();
            tasks.push(tokio::spawn(async move {
                assert_eq!(
                    store.release_reservation(&t, &id).await.unwrap(),
                    ReleaseOutcome::Released
                );
            }));
            continue;
        }
        let cost = money(&mut rng, 0..=120_000);
        expected_cost += cost;
        let mut e = spend(
            &t,
            &u,
            &format!("flow-{i}"),
            cost,
            now() + Duration::minutes(1),
        );
        e.reservation_id = Some(r.id.clone());
        events.push(e.clone());
        tasks.push(tokio::spawn(async move {
            let out = store.record_events_drawing(&[e], &[]).await.unwrap();
            assert_eq!(out, vec![RecordOutcome::Recorded]);
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert!(released > 0);

    let check = |store: Arc<dyn Store>, t: TenantId, u: UserId, expected: Decimal| async move {
        let state = store.get_credit_state(&t, &wallet(&u)).await.unwrap();
        assert_eq!(state.held_usd, Decimal::ZERO, "every hold was given back");
        assert_eq!(
            state.balance(now()).unwrap(),
            dec("10") - expected,
            "balance = $10 − the exact sum of recorded costs"
        );
        let w = store.get_wallet(&t, &wallet(&u)).await.unwrap();
        assert_eq!(w.held_usd, Decimal::ZERO);
        let remaining: Decimal = w.grants.iter().map(|g| g.remaining_usd).sum();
        assert_eq!(remaining - w.overdrawn_usd, dec("10") - expected);
        for g in &w.grants {
            assert!(g.remaining_usd >= Decimal::ZERO, "{} went below zero", g.id);
        }
        // Draw order: the promo (priority 5) is spent before the purchase is touched.
        let promo = w.grants.iter().find(|g| g.id.as_str() == "promo").unwrap();
        let purchase = w
            .grants
            .iter()
            .find(|g| g.id.as_str() == "purchase")
            .unwrap();
        if purchase.remaining_usd < dec("6") {
            assert_eq!(promo.remaining_usd, Decimal::ZERO);
        }
        // The overdraft is exactly what the grants could not cover.
        assert_eq!(w.overdrawn_usd, (expected - dec("10")).max(Decimal::ZERO));
        (state, w)
    };
    let (before, wallet_before) = check(store.clone(), t.clone(), u.clone(), expected_cost).await;

    // Each event's draws add up to its cost, exactly.
    let draws = store.event_draws(&t, &u, None).await.unwrap();
    let priced = events
        .iter()
        .filter(|e| e.cost_usd.unwrap() > Decimal::ZERO)
        .count();
    assert_eq!(draws.len(), priced);
    for d in &draws {
        let e = events.iter().find(|e| e.event_id == d.event_id).unwrap();
        assert_eq!(d.draws.total_usd().unwrap(), e.cost_usd.unwrap());
        assert_eq!(d.cost_usd, e.cost_usd.unwrap());
    }

    // Replaying every event, concurrently, changes nothing.
    let mut tasks = Vec::new();
    for e in events.clone() {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.record_events_drawing(&[e], &[]).await.unwrap()
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), vec![RecordOutcome::Duplicate]);
    }
    let (after, wallet_after) = check(store.clone(), t.clone(), u.clone(), expected_cost).await;
    assert_eq!(after, before);
    assert_eq!(wallet_after, wallet_before);
    assert_eq!(store.event_draws(&t, &u, None).await.unwrap().len(), priced);
}

pub async fn prepaid_a_grant_expiring_mid_run_stops_counting_at_its_instant(store: Arc<dyn Store>) {
    let (t, u) = (tenant(), user("expiring"));
    let expiry = now() + Duration::hours(1);
    put(&store, &t, &u, &grant("promo", "5", 10, Some(expiry))).await;
    put(&store, &t, &u, &grant("purchase", "5", 10, None)).await;
    let state = store.get_credit_state(&t, &wallet(&u)).await.unwrap();
    let just_before = expiry - Duration::nanoseconds(1);
    assert_eq!(state.available(just_before).unwrap(), dec("10"));
    assert_eq!(state.available(expiry).unwrap(), dec("5"));

    // Before the instant, $6 fits; at it, it does not (the promo stopped counting).
    let r = reserve(&store, &t, &u, dec("6"), just_before).await;
    assert!(r.is_some(), "10 available before the expiry");
    assert_eq!(
        store.release_reservation(&t, &r.unwrap().id).await.unwrap(),
        ReleaseOutcome::Released
    );
    assert!(reserve(&store, &t, &u, dec("6"), expiry).await.is_none());
    assert!(reserve(&store, &t, &u, dec("5"), expiry).await.is_some());

    // Usage before the instant burns the promo (it expires first); usage at the instant
    // cannot draw from it any more.
    let e1 = spend(&t, &u, "before", dec("3"), just_before);
    let e2 = spend(&t, &u, "at", dec("1"), expiry);
    assert_eq!(
        store.record_events_drawing(&[e1, e2], &[]).await.unwrap(),
        vec![RecordOutcome::Recorded, RecordOutcome::Recorded]
    );
    let draws = store.event_draws(&t, &u, None).await.unwrap();
    assert_eq!(draws.len(), 2);
    assert_eq!(draws[0].draws.draws.len(), 1);
    assert_eq!(draws[0].draws.draws[0].grant_id.as_str(), "promo");
    assert_eq!(draws[0].draws.draws[0].amount_usd, dec("3"));
    assert_eq!(draws[1].draws.draws.len(), 1);
    assert_eq!(draws[1].draws.draws[0].grant_id.as_str(), "purchase");
    assert_eq!(draws[1].draws.draws[0].amount_usd, dec("1"));
    // Read from an instant on: only the events at or after it.
    let since = store.event_draws(&t, &u, Some(expiry)).await.unwrap();
    assert_eq!(since.len(), 1);
    assert_eq!(since[0].event_id.as_str(), "at");

    let state = store.get_credit_state(&t, &wallet(&u)).await.unwrap();
    // Before the expiry: promo 2 + purchase 4; at it, the promo's 2 stopped counting
    // (and $5 is held by the open reservation).
    assert_eq!(state.balance(just_before).unwrap(), dec("6"));
    assert_eq!(state.balance(expiry).unwrap(), dec("4"));
    assert_eq!(state.available(expiry).unwrap(), dec("-1"));

    // The open $5 hold expires: its credit comes back with the expiry's write.
    assert_eq!(
        store
            .expire_reservations(expiry + Duration::hours(1), 100)
            .await
            .unwrap(),
        1
    );
    let state = store.get_credit_state(&t, &wallet(&u)).await.unwrap();
    assert_eq!(state.held_usd, Decimal::ZERO);
    assert_eq!(state.available(expiry).unwrap(), dec("4"));
}

/// An invoice of March for what `state` holds (as the aggregation builds one).
fn march_invoice(state: &meter_core::store::BillingState) -> meter_core::domain::Invoice {
    use meter_core::domain::{Invoice, InvoiceStatus, LineItem, PlanName};
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
        period: meter_core::periods::Period {
            start: march(),
            end: at(2025, 4, 1, 0),
        },
        plan: PlanName::free(),
        base_usd: Decimal::ZERO,
        usage_usd: usage,
        overage_usd: Decimal::ZERO,
        proration_usd: Decimal::ZERO,
        adjustments_usd: Decimal::ZERO,
        total_usd: usage,
        line_items: vec![LineItem {
            kind: "usage".into(),
            description: "usage".into(),
            amount_usd: usage,
        }],
        status: InvoiceStatus::Pending,
        created_at: at(2025, 4, 1, 1),
        published: false,
        extra: Default::default(),
    }
}

pub async fn prepaid_racing_closes_take_an_invoices_credit_exactly_once(store: Arc<dyn Store>) {
    use meter_core::store::{CloseOutcome, InvoiceCharge};
    let (t, u) = (tenant(), user("closer"));
    put(
        &store,
        &t,
        &u,
        &grant("promo", "1", 5, Some(at(2025, 12, 1, 0))),
    )
    .await;
    put(&store, &t, &u, &grant("purchase", "2", 10, None)).await;
    store
        .record_events(&[event(&t, &u, "m-1", 10, "1.25")])
        .await
        .unwrap();
    let when = at(2025, 4, 1, 1);

    // A charge computed from grants as they are not (more than the promo holds) takes
    // nothing and closes nothing.
    let s = store.billing_state(&t, &u, march()).await.unwrap();
    let mut grants = store.get_wallet(&t, &wallet(&u)).await.unwrap().grants;
    for g in &mut grants {
        g.remaining_usd += dec("5");
    }
    let stale = InvoiceCharge {
        wallet: Some(wallet(&u)),
        draws: meter_core::credits::draw(&grants, dec("1.25"), when).unwrap(),
        grants,
        overdraft_settled: Decimal::ZERO,
    };
    assert_eq!(
        store
            .close_period_charging(&march_invoice(&s), &s, at(2025, 4, 1, 0), &stale)
            .await
            .unwrap(),
        CloseOutcome::Changed
    );
    assert!(store.list_invoices(&t, &u).await.unwrap().is_empty());

    // Eight racing closes: one invoice, its credit taken once.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (store, t, u) = (store.clone(), t.clone(), u.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let s = store.billing_state(&t, &u, march()).await.unwrap();
                let grants = store.get_wallet(&t, &wallet(&u)).await.unwrap().grants;
                let charge = InvoiceCharge {
                    wallet: Some(wallet(&u)),
                    draws: meter_core::credits::draw(&grants, dec("1.25"), when).unwrap(),
                    grants,
                    overdraft_settled: Decimal::ZERO,
                };
                match store
                    .close_period_charging(&march_invoice(&s), &s, at(2025, 4, 1, 0), &charge)
                    .await
                    .unwrap()
                {
                    CloseOutcome::Changed => continue,
                    other => return other,
                }
            }
        }));
    }
    let mut closed = 0;
    for task in tasks {
        if task.await.unwrap() == CloseOutcome::Closed {
            closed += 1;
        }
    }
    assert_eq!(closed, 1);
    assert_eq!(store.list_invoices(&t, &u).await.unwrap().len(), 1);
    let w = store.get_wallet(&t, &wallet(&u)).await.unwrap();
    let remaining = |id: &str| {
        w.grants
            .iter()
            .find(|g| g.id.as_str() == id)
            .unwrap()
            .remaining_usd
    };
    assert_eq!(
        (remaining("promo"), remaining("purchase")),
        (dec("0"), dec("1.75"))
    );
    let state = store.get_credit_state(&t, &wallet(&u)).await.unwrap();
    assert_eq!(state.balance(when).unwrap(), dec("1.75"));
}

pub async fn prepaid_racing_alarm_writes_move_the_state_once_per_version(store: Arc<dyn Store>) {
    use meter_core::credits::WalletAlarms;
    let (t, u) = (tenant(), user("alarmed"));
    let w = store.get_wallet(&t, &wallet(&u)).await.unwrap();
    assert_eq!((w.alarms, w.alarm_seq), (None, 0));
    let fired = WalletAlarms {
        low_armed: false,
        depleted_armed: true,
    };
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (store, t, u) = (store.clone(), t.clone(), u.clone());
        tasks.push(tokio::spawn(async move {
            store
                .put_wallet_alarms(&t, &wallet(&u), 0, fired)
                .await
                .unwrap()
        }));
    }
    let mut won = 0;
    for task in tasks {
        won += usize::from(task.await.unwrap());
    }
    assert_eq!(won, 1, "one observer moves version 0 on");
    let w = store.get_wallet(&t, &wallet(&u)).await.unwrap();
    assert_eq!((w.alarms, w.alarm_seq), (Some(fired), 1));
    let rearmed = WalletAlarms {
        low_armed: true,
        depleted_armed: true,
    };
    assert!(!store
        .put_wallet_alarms(&t, &wallet(&u), 0, rearmed)
        .await
        .unwrap());
    assert!(store
        .put_wallet_alarms(&t, &wallet(&u), 1, rearmed)
        .await
        .unwrap());
    let w = store.get_wallet(&t, &wallet(&u)).await.unwrap();
    assert_eq!((w.alarms, w.alarm_seq), (Some(rearmed), 2));
}
