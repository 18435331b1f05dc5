//! Org wallets (`OrgWalletStore`, issue 19): events draw from the wallet their payer
//! names — an org's, a user's, or none — exactly once per event id, atomically with the
//! event, also when large batches (several transactions on DynamoDB) are retried and race
//! each other; a reservation holding an org's credit gives it back to the org's wallet
//! when it closes.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use meter_core::credits::{credit_allows, Grant, GrantKind, GrantRequest, Subscriber};
use meter_core::domain::{GrantId, OrgId, TenantId, UsageEvent, UserId};
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

fn acme() -> Subscriber {
    Subscriber::Org(OrgId::parse("acme").unwrap())
}

fn grant(id: &str, amount: &str, priority: i32, expires: Option<DateTime<Utc>>) -> Grant {
    let mut g = GrantRequest::new(dec(amount), GrantKind::Purchase)
        .into_grant(GrantId::parse(id).unwrap(), now() - Duration::days(1))
        .unwrap();
    g.priority = priority;
    g.expires_at = expires;
    g
}

async fn put(store: &Arc<dyn Store>, t: &TenantId, w: &Subscriber, g: &Grant) {
    assert!(matches!(
        store.insert_grant(t, w, g).await.unwrap(),
        GrantInsert::Created(_)
    ));
}

/// An event of `u` naming acme, costing `cost`, at `now() + i` seconds.
fn spend(t: &TenantId, u: &UserId, id: &str, cost: Decimal, i: i64) -> UsageEvent {
    let mut e = event(t, u, id, 100, &cost.to_string());
    e.timestamp = now() + Duration::seconds(i);
    e.recorded_at = e.timestamp;
    e.org_id = Some(OrgId::parse("acme").unwrap());
    e
}

/// Σ remaining of the wallet's grants, every grant at least 0, and the overdraft.
async fn wallet_sum(store: &Arc<dyn Store>, t: &TenantId, w: &Subscriber) -> (Decimal, Decimal) {
    let record = store.get_wallet(t, w).await.unwrap();
    for g in &record.grants {
        assert!(g.remaining_usd >= Decimal::ZERO, "{} went below 0", g.id);
    }
    let left = record.grants.iter().map(|g| g.remaining_usd).sum();
    (left, record.overdrawn_usd)
}

pub async fn org_wallet_batches_draw_exactly_once_under_racing_retries(store: Arc<dyn Store>) {
    let t = tenant();
    // acme: $10 over three grants that burn in order; the user "solo" pays $1 herself.
    put(&store, &t, &acme(), &grant("first", "2", 1, None)).await;
    put(
        &store,
        &t,
        &acme(),
        &grant("second", "3", 5, Some(now() + Duration::days(30))),
    )
    .await;
    put(&store, &t, &acme(), &grant("third", "5", 10, None)).await;
    let solo = user("solo");
    let mine = Subscriber::User(solo.clone());
    put(&store, &t, &mine, &grant("own", "1", 10, None)).await;

    // Four members' batches of 150 events (several transactions each on DynamoDB), each
    // sent three times at once and once more after: acme pays. "solo"'s batch mixes
    // events acme pays, events she pays and events nobody pays for (postpaid).
    let mut rng = StdRng::seed_from_u64(1919);
    let mut batches: Vec<(Vec<UsageEvent>, Vec<Option<Subscriber>>)> = Vec::new();
    let mut owed: BTreeMap<Subscriber, Decimal> = BTreeMap::new();
    for m in ["ann", "bob", "cat", "solo"] {
        let u = user(m);
        let mut events = Vec::new();
        let mut payers = Vec::new();
        for i in 0..150 {
            let cost = Decimal::new(rng.random_range(0..=80_000), 6);
            let payer = match (m, i % 3) {
                ("solo", 1) => Some(mine.clone()),
                ("solo", 2) => None,
                _ => Some(acme()),
            };
            if let Some(p) = &payer {
                *owed.entry(p.clone()).or_default() += cost;
            }
            events.push(spend(&t, &u, &format!("{m}-{i}"), cost, i));
            payers.push(payer);
        }
        batches.push((events, payers));
    }
    let mut tasks = Vec::new();
    for round in 0..3 {
        for (events, payers) in &batches {
            let (store, events, payers) = (store.clone(), events.clone(), payers.clone());
            tasks.push(tokio::spawn(async move {
                let out = store
                    .record_events_paying(&events, &[], &payers)
                    .await
                    .unwrap();
                (round, out)
            }));
        }
    }
    let mut recorded = 0;
    for task in tasks {
        let (_, out) = task.await.unwrap();
        assert!(out.iter().all(|o| *o != RecordOutcome::Conflict), "{out:?}");
        recorded += out
            .iter()
            .filter(|o| **o == RecordOutcome::Recorded)
            .count();
    }
    assert_eq!(
        recorded, 600,
        "each event recorded once among the racing batches"
    );
    for (events, payers) in &batches {
        let out = store
            .record_events_paying(events, &[], payers)
            .await
            .unwrap();
        assert!(out.iter().all(|o| *o == RecordOutcome::Duplicate));
    }

    // Each wallet lost exactly what its events cost: grants first, the rest overdrawn.
    for (wallet, initial) in [(acme(), dec("10")), (mine.clone(), dec("1"))] {
        let cost = owed[&wallet];
        let (left, overdrawn) = wallet_sum(&store, &t, &wallet).await;
        assert_eq!(left - overdrawn, initial - cost, "{wallet}");
        assert!(cost > initial, "the run overdraws {wallet}");
        assert_eq!(left, Decimal::ZERO, "{wallet}: every grant drained");
        let draws = store
            .wallet_draws(&t, &wallet, None)
            .await
            .unwrap_or_else(|e| panic!("{wallet}: {e}"));
        let expected = batches
            .iter()
            .flat_map(|(_, p)| p)
            .filter(|p| p.as_ref() == Some(&wallet))
            .count();
        assert_eq!(draws.len(), expected, "{wallet}: one draw record per event");
        let mut sum = Decimal::ZERO;
        for d in &draws {
            assert_eq!(d.wallet, wallet);
            assert_eq!(d.draws.total_usd().unwrap(), d.cost_usd);
            sum += d.cost_usd;
        }
        assert_eq!(sum, cost, "{wallet}: the draws add up to the cost");
    }
    // The user's own wallet shows only what she paid (acme's draws are acme's).
    let hers = store.event_draws(&t, &solo, None).await.unwrap();
    assert_eq!(hers.len(), 50);
}

pub async fn an_org_hold_is_given_back_to_the_org_wallet_by_its_close(store: Arc<dyn Store>) {
    let t = tenant();
    let u = user("member");
    put(&store, &t, &acme(), &grant("pool", "1", 10, None)).await;
    let hold = |estimate: &'static str| {
        let (store, t) = (store.clone(), t.clone());
        async move {
            let read = store.get_credit_state(&t, &acme()).await.unwrap();
            assert!(credit_allows(
                read.available(now()).unwrap(),
                Some(dec(estimate))
            ));
            CreditHold {
                wallet: acme(),
                estimate: Some(dec(estimate)),
                read,
                at: now(),
            }
        }
    };
    // Two holds of $0.40 fit, a third does not (the org's $1 is what counts).
    let mut held = Vec::new();
    for _ in 0..2 {
        let r = reservation(&t, &u, 10, "0.4", now() + Duration::minutes(5));
        let h = hold("0.4").await;
        assert_eq!(
            store
                .reserve_with_credit(&r, &[], &[], &h, now())
                .await
                .unwrap(),
            CreditReserve::Reserved
        );
        held.push(r);
    }
    let org = store.get_credit_state(&t, &acme()).await.unwrap();
    assert_eq!(org.held_usd, dec("0.8"));
    let own = store
        .get_credit_state(&t, &Subscriber::User(u.clone()))
        .await
        .unwrap();
    assert_eq!(
        own.held_usd,
        Decimal::ZERO,
        "the member's wallet holds nothing"
    );
    let read = store.get_credit_state(&t, &acme()).await.unwrap();
    assert!(!credit_allows(
        read.available(now()).unwrap(),
        Some(dec("0.4"))
    ));

    // One settles with an event acme pays, the other is released: both give back.
    let mut e = spend(&t, &u, "settles", dec("0.5"), 1);
    e.reservation_id = Some(held[0].id.clone());
    assert_eq!(
        store
            .record_events_paying(&[e], &[], &[Some(acme())])
            .await
            .unwrap(),
        vec![RecordOutcome::Recorded]
    );
    assert_eq!(
        store.release_reservation(&t, &held[1].id).await.unwrap(),
        ReleaseOutcome::Released
    );
    let org = store.get_credit_state(&t, &acme()).await.unwrap();
    assert_eq!(org.held_usd, Decimal::ZERO, "every hold given back to acme");
    assert_eq!(org.available(now()).unwrap(), dec("0.5"));
}

pub async fn racing_org_closes_take_the_org_invoices_credit_exactly_once(store: Arc<dyn Store>) {
    use crate::orgs::{org_invoice, org_sub, rolled};
    use meter_core::credits::Draw;
    use meter_core::store::{InvoiceCharge, OrgClose};
    let t = tenant();
    let org = OrgId::parse("acme").unwrap();
    let sub = org_sub(&t, &org);
    store.put_org_subscription(&org, &sub, None).await.unwrap();
    put(&store, &t, &acme(), &grant("pool", "5", 10, None)).await;
    let grants = store.get_wallet(&t, &acme()).await.unwrap().grants;
    let charge = |amount: &str| InvoiceCharge {
        wallet: Some(acme()),
        grants: grants.clone(),
        draws: meter_core::credits::Draws {
            draws: vec![Draw {
                grant_id: GrantId::parse("pool").unwrap(),
                amount_usd: dec(amount),
            }],
            shortfall_usd: Decimal::ZERO,
        },
        overdraft_settled: Decimal::ZERO,
    };
    // More than the grant holds: nothing written, not even the invoice.
    assert_eq!(
        store
            .close_org_period_charging(
                &org,
                &org_invoice(&sub, &org, "0"),
                &rolled(&sub),
                1,
                &charge("6")
            )
            .await
            .unwrap(),
        OrgClose::Changed
    );
    assert!(store.list_org_invoices(&t, &org).await.unwrap().is_empty());
    // Eight racing closes of the period, each taking $2: one invoice, $2 taken once.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (store, sub, org, c) = (store.clone(), sub.clone(), org.clone(), charge("2"));
        tasks.push(tokio::spawn(async move {
            store
                .close_org_period_charging(
                    &org,
                    &org_invoice(&sub, &org, "0"),
                    &rolled(&sub),
                    1,
                    &c,
                )
                .await
                .unwrap()
        }));
    }
    let mut closed = 0;
    for task in tasks {
        closed += usize::from(task.await.unwrap() == OrgClose::Closed);
    }
    assert_eq!(closed, 1);
    assert_eq!(store.list_org_invoices(&t, &org).await.unwrap().len(), 1);
    let (left, overdrawn) = wallet_sum(&store, &t, &acme()).await;
    assert_eq!((left, overdrawn), (dec("3"), Decimal::ZERO));
    let credit = store.get_credit_state(&t, &acme()).await.unwrap();
    assert_eq!(
        credit.available(now()).unwrap(),
        dec("3"),
        "the head agrees"
    );
}

pub async fn a_batch_drawing_across_many_grants_records_every_event_exactly(store: Arc<dyn Store>) {
    // 90 grants of 1 cent, burning one after another, and 100 events of 1.5 cents: each
    // event drains one or two grants, so a transaction of the batch holds many grant
    // updates beside its events (on DynamoDB the chunks must still fit 100 items).
    let t = tenant();
    for i in 0..90 {
        put(
            &store,
            &t,
            &acme(),
            &grant(&format!("g{i:02}"), "0.01", i, None),
        )
        .await;
    }
    let u = user("busy");
    let events: Vec<UsageEvent> = (0..100)
        .map(|i| spend(&t, &u, &format!("busy-{i}"), dec("0.015"), i))
        .collect();
    let payers = vec![Some(acme()); events.len()];
    let out = store
        .record_events_paying(&events, &[], &payers)
        .await
        .unwrap();
    assert!(out.iter().all(|o| *o == RecordOutcome::Recorded));
    let (left, overdrawn) = wallet_sum(&store, &t, &acme()).await;
    assert_eq!(left, Decimal::ZERO, "90 cents drawn");
    assert_eq!(overdrawn, dec("0.6"), "$1.50 − $0.90 overdrawn");
    let draws = store.wallet_draws(&t, &acme(), None).await.unwrap();
    assert_eq!(draws.len(), 100);
    // In the draw order: the first event takes g00 and half of g01, the second the rest
    // of g01 and g02.
    let first = draws
        .iter()
        .find(|d| d.event_id.as_str() == "busy-0")
        .unwrap();
    let ids: Vec<(&str, Decimal)> = first
        .draws
        .draws
        .iter()
        .map(|d| (d.grant_id.as_str(), d.amount_usd))
        .collect();
    assert_eq!(ids, [("g00", dec("0.01")), ("g01", dec("0.005"))]);
    let replay = store
        .record_events_paying(&events, &[], &payers)
        .await
        .unwrap();
    assert!(replay.iter().all(|o| *o == RecordOutcome::Duplicate));
    assert_eq!(
        wallet_sum(&store, &t, &acme()).await,
        (Decimal::ZERO, dec("0.6"))
    );
}
