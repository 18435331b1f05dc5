//! The views of wallets (`WalletViewsStore`, issue 19): a user's draws name the wallet
//! that paid (the user's own or an org's) and never list another user's events; the
//! tenant's wallets page in key order with their figures, one tenant only.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use meter_core::credits::{Grant, GrantKind, GrantRequest, Subscriber};
use meter_core::domain::{GrantId, OrgId, TenantId, UsageEvent, UserId};
use meter_core::store::{GrantInsert, RecordOutcome, Store};
use rust_decimal::Decimal;

use crate::fixtures::*;

fn now() -> DateTime<Utc> {
    at(2025, 3, 10, 12)
}

fn org(name: &str) -> Subscriber {
    Subscriber::Org(OrgId::parse(name).unwrap())
}

async fn grant(store: &Arc<dyn Store>, t: &TenantId, w: &Subscriber, id: &str, amount: &str) {
    let g: Grant = GrantRequest::new(dec(amount), GrantKind::Purchase)
        .into_grant(GrantId::parse(id).unwrap(), now() - Duration::days(1))
        .unwrap();
    assert!(matches!(
        store.insert_grant(t, w, &g).await.unwrap(),
        GrantInsert::Created(_)
    ));
}

/// An event of `u` naming acme, costing `cost`, at `now() + i` seconds.
fn spend(t: &TenantId, u: &UserId, id: &str, cost: &str, i: i64) -> UsageEvent {
    let mut e = event(t, u, id, 100, cost);
    e.timestamp = now() + Duration::seconds(i);
    e.recorded_at = e.timestamp;
    e.org_id = Some(OrgId::parse("acme").unwrap());
    e
}

pub async fn a_users_draws_name_the_wallet_that_paid(store: Arc<dyn Store>) {
    let t = tenant();
    let (sue, ann) = (user("sue"), user("ann"));
    let mine = Subscriber::User(sue.clone());
    grant(&store, &t, &org("acme"), "pool", "2").await;
    grant(&store, &t, &mine, "own", "1").await;
    // sue: one event acme pays, one she pays, one nobody pays (postpaid); ann: one acme
    // pays (listed in ann's draws and acme's, never in sue's).
    let events = vec![
        spend(&t, &sue, "s-0", "0.5", 0),
        spend(&t, &sue, "s-1", "0.25", 1),
        spend(&t, &sue, "s-2", "0.1", 2),
        spend(&t, &ann, "a-0", "0.3", 3),
    ];
    let payers = vec![
        Some(org("acme")),
        Some(mine.clone()),
        None,
        Some(org("acme")),
    ];
    let out = store
        .record_events_paying(&events, &[], &payers)
        .await
        .unwrap();
    assert!(out.iter().all(|o| *o == RecordOutcome::Recorded), "{out:?}");

    let hers = store.user_event_draws(&t, &sue).await.unwrap();
    let seen: Vec<(&str, &Subscriber, Decimal)> = hers
        .iter()
        .map(|d| (d.event_id.as_str(), &d.wallet, d.cost_usd))
        .collect();
    assert_eq!(
        seen,
        [
            ("s-0", &org("acme"), dec("0.5")),
            ("s-1", &mine, dec("0.25"))
        ],
        "sue's draws, oldest first, each naming its payer"
    );
    assert_eq!(hers[0].draws.draws[0].grant_id.as_str(), "pool");
    assert_eq!(hers[1].draws.draws[0].grant_id.as_str(), "own");
    for d in &hers {
        assert_eq!(d.draws.total_usd().unwrap(), d.cost_usd);
    }
    let anns = store.user_event_draws(&t, &ann).await.unwrap();
    assert_eq!(anns.len(), 1);
    assert_eq!(
        (anns[0].event_id.as_str(), &anns[0].wallet),
        ("a-0", &org("acme"))
    );
    // The org's ledger has both of its events; the user's own wallet only hers.
    assert_eq!(
        store
            .wallet_draws(&t, &org("acme"), None)
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(store.event_draws(&t, &sue, None).await.unwrap().len(), 1);
    assert!(store
        .user_event_draws(&t, &user("nobody"))
        .await
        .unwrap()
        .is_empty());
}

pub async fn tenant_wallets_are_paged_in_key_order_with_their_figures(store: Arc<dyn Store>) {
    let t = tenant();
    let other = TenantId::parse("other-tenant").unwrap();
    let (u1, u2) = (user("u1"), user("u2"));
    let w1 = Subscriber::User(u1.clone());
    let w2 = Subscriber::User(u2.clone());
    grant(&store, &t, &w2, "g", "5").await;
    grant(&store, &t, &w1, "g", "1").await;
    grant(&store, &t, &w1, "h", "2").await;
    grant(&store, &t, &org("beta"), "g", "7").await;
    grant(&store, &t, &org("acme"), "g", "3").await;
    grant(&store, &other, &org("zeta"), "g", "9").await;
    store
        .set_low_balance(&t, &w1, Some(dec("2.5")))
        .await
        .unwrap();
    // A wallet with a setting but no grant is not listed.
    store
        .set_low_balance(&t, &org("empty"), Some(dec("1")))
        .await
        .unwrap();
    // u1 spends $3.5 from own wallet: $3 from grants, $0.5 overdrawn.
    let mut e = event(&t, &u1, "e-1", 100, "3.5");
    e.timestamp = now();
    e.recorded_at = now();
    let out = store
        .record_events_paying(&[e], &[], &[Some(w1.clone())])
        .await
        .unwrap();
    assert_eq!(out, [RecordOutcome::Recorded]);

    let first = store.list_wallets(&t, None, 3).await.unwrap();
    let keys: Vec<String> = first.items.iter().map(|w| w.wallet.to_string()).collect();
    assert_eq!(keys, ["org/acme", "org/beta", "user/u1"]);
    assert_eq!(first.next.as_deref(), Some("user/u1"));
    let u1_row = &first.items[2];
    assert_eq!(u1_row.low_balance_usd, Some(dec("2.5")));
    assert_eq!(u1_row.credit.balance(now()).unwrap(), dec("-0.5"));
    assert_eq!(u1_row.credit.overdrawn_usd, dec("0.5"));
    assert_eq!(first.items[0].credit.balance(now()).unwrap(), dec("3"));
    assert_eq!(first.items[0].low_balance_usd, None);

    let second = store.list_wallets(&t, Some(&w1), 3).await.unwrap();
    let keys: Vec<String> = second.items.iter().map(|w| w.wallet.to_string()).collect();
    assert_eq!(keys, ["user/u2"]);
    assert_eq!(second.next, None);
    assert_eq!(second.items[0].credit.available(now()).unwrap(), dec("5"));

    // Every wallet's figures equal its own read.
    for w in first.items.iter().chain(&second.items) {
        let record = store.get_wallet(&t, &w.wallet).await.unwrap();
        assert_eq!(w.credit.overdrawn_usd, record.overdrawn_usd, "{}", w.wallet);
        assert_eq!(w.credit.held_usd, record.held_usd, "{}", w.wallet);
        let left: Decimal = record.grants.iter().map(|g| g.remaining_usd).sum();
        assert_eq!(
            w.credit.balance(now()).unwrap(),
            left - record.overdrawn_usd,
            "{}",
            w.wallet
        );
    }
    let others = store.list_wallets(&other, None, 10).await.unwrap();
    assert_eq!(others.items.len(), 1);
    assert_eq!(others.items[0].wallet, org("zeta"));
}
