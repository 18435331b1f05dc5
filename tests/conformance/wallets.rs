//! Prepaid-credit wallets (`WalletStore`): grants stored once per id (exactly one of
//! racing inserts wins), exact amounts, a void once, at most `MAX_GRANTS_PER_WALLET`
//! grants per wallet even when inserts race, settings, wallets and tenants isolated.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use meter_core::credits::{Grant, GrantKind, GrantRequest, Subscriber};
use meter_core::domain::{GrantId, OrgId, TenantId};
use meter_core::store::{GrantInsert, GrantVoid, Store, WalletRecord, MAX_GRANTS_PER_WALLET};

use crate::fixtures::*;

fn gid(id: &str) -> GrantId {
    GrantId::parse(id).unwrap()
}

fn alice() -> Subscriber {
    Subscriber::User(user("alice"))
}

fn acme() -> Subscriber {
    Subscriber::Org(OrgId::parse("acme").unwrap())
}

fn now() -> DateTime<Utc> {
    at(2025, 3, 10, 12)
}

/// A grant of `amount` created at `now()` by a valid request.
fn grant(id: &str, amount: &str, kind: GrantKind) -> Grant {
    GrantRequest::new(dec(amount), kind)
        .into_grant(gid(id), now())
        .unwrap()
}

pub async fn wallets_keep_grants_exactly_and_store_an_id_once(store: Arc<dyn Store>) {
    let t = tenant();
    assert_eq!(
        store.get_wallet(&t, &alice()).await.unwrap(),
        WalletRecord::default()
    );
    let mut promo = grant("promo-spring", "5.000001", GrantKind::Promo);
    promo.expires_at = Some(at(2025, 3, 31, 0));
    promo.priority = 0;
    promo.note = Some("spring promo ✓".to_owned());
    let purchase = grant("purchase/2025-03:1", "10", GrantKind::Purchase);
    assert_eq!(
        store.insert_grant(&t, &alice(), &purchase).await.unwrap(),
        GrantInsert::Created(purchase.clone())
    );
    assert_eq!(
        store.insert_grant(&t, &alice(), &promo).await.unwrap(),
        GrantInsert::Created(promo.clone())
    );

    // The id is taken: another grant under it changes nothing and reads back the stored one.
    let other = grant("promo-spring", "50", GrantKind::Refund);
    assert_eq!(
        store.insert_grant(&t, &alice(), &other).await.unwrap(),
        GrantInsert::Exists(promo.clone())
    );

    // Grant-id order (bytes), exact amounts.
    let wallet = store.get_wallet(&t, &alice()).await.unwrap();
    assert_eq!(wallet.grants, vec![promo.clone(), purchase.clone()]);
    assert_eq!(wallet.grants[0].amount_usd, dec("5.000001"));
    assert_eq!(wallet.low_balance_usd, None);
    assert_eq!(
        store
            .get_grant(&t, &alice(), &gid("promo-spring"))
            .await
            .unwrap(),
        Some(promo.clone())
    );
    assert_eq!(
        store.get_grant(&t, &alice(), &gid("nope")).await.unwrap(),
        None
    );

    // Wallets are per subscriber: the org `acme` and another user see none of it.
    assert_eq!(
        store.get_wallet(&t, &acme()).await.unwrap(),
        WalletRecord::default()
    );
    assert_eq!(
        store
            .get_wallet(&t, &Subscriber::User(user("acme")))
            .await
            .unwrap(),
        WalletRecord::default()
    );
    // The same grant id in another wallet is another grant.
    assert!(matches!(
        store.insert_grant(&t, &acme(), &other).await.unwrap(),
        GrantInsert::Created(_)
    ));
}

pub async fn wallets_void_a_grant_once_and_report_unknown_grants(store: Arc<dyn Store>) {
    let t = tenant();
    let g = grant("g1", "7.25", GrantKind::Adjustment);
    store.insert_grant(&t, &acme(), &g).await.unwrap();
    assert_eq!(
        store
            .void_grant(&t, &acme(), &gid("missing"), now())
            .await
            .unwrap(),
        GrantVoid::Unknown
    );
    let first = at(2025, 3, 11, 0);
    let voided = Grant {
        voided_at: Some(first),
        ..g.clone()
    };
    assert_eq!(
        store.void_grant(&t, &acme(), &g.id, first).await.unwrap(),
        GrantVoid::Voided(voided.clone())
    );
    // Again, later: nothing changes; the first void's time stays.
    assert_eq!(
        store
            .void_grant(&t, &acme(), &g.id, at(2025, 3, 12, 0))
            .await
            .unwrap(),
        GrantVoid::AlreadyVoided(voided.clone())
    );
    assert_eq!(
        store.get_wallet(&t, &acme()).await.unwrap().grants,
        vec![voided]
    );
}

pub async fn wallets_racing_inserts_of_one_grant_id_have_exactly_one_winner(store: Arc<dyn Store>) {
    let t = tenant();
    let mut tasks = Vec::new();
    for i in 1..=16 {
        let (store, t) = (store.clone(), t.clone());
        let g = grant("contended", &format!("{i}.5"), GrantKind::Purchase);
        tasks.push(tokio::spawn(async move {
            store.insert_grant(&t, &alice(), &g).await.unwrap()
        }));
    }
    let mut winners = Vec::new();
    let mut seen = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            GrantInsert::Created(g) => winners.push(g),
            GrantInsert::Exists(g) => seen.push(g),
            GrantInsert::WalletFull => panic!("the wallet is not full"),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    // Every loser saw the winner's grant, and only it is stored.
    assert!(seen.iter().all(|g| *g == winners[0]));
    assert_eq!(
        store.get_wallet(&t, &alice()).await.unwrap().grants,
        winners
    );
}

pub async fn wallets_hold_at_most_the_cap_even_when_inserts_race(store: Arc<dyn Store>) {
    let t = tenant();
    for i in 0..MAX_GRANTS_PER_WALLET - 3 {
        let g = grant(&format!("g{i:03}"), "1", GrantKind::Promo);
        assert!(matches!(
            store.insert_grant(&t, &acme(), &g).await.unwrap(),
            GrantInsert::Created(_)
        ));
    }
    // A voided grant still takes its slot.
    store
        .void_grant(&t, &acme(), &gid("g000"), now())
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..10 {
        let (store, t) = (store.clone(), t.clone());
        let g = grant(&format!("late-{i}"), "1", GrantKind::Promo);
        tasks.push(tokio::spawn(async move {
            store.insert_grant(&t, &acme(), &g).await.unwrap()
        }));
    }
    let mut created = 0;
    for task in tasks {
        match task.await.unwrap() {
            GrantInsert::Created(_) => created += 1,
            GrantInsert::WalletFull => {}
            GrantInsert::Exists(g) => panic!("no id was reused: {g:?}"),
        }
    }
    assert_eq!(created, 3);
    let wallet = store.get_wallet(&t, &acme()).await.unwrap();
    assert_eq!(wallet.grants.len(), MAX_GRANTS_PER_WALLET);
    // Full: a new id is refused, an existing one still answers its grant.
    assert_eq!(
        store
            .insert_grant(&t, &acme(), &grant("one-more", "1", GrantKind::Promo))
            .await
            .unwrap(),
        GrantInsert::WalletFull
    );
    assert!(matches!(
        store
            .insert_grant(&t, &acme(), &grant("g001", "1", GrantKind::Promo))
            .await
            .unwrap(),
        GrantInsert::Exists(_)
    ));
}

pub async fn wallets_settings_are_set_and_cleared_and_tenants_isolated(store: Arc<dyn Store>) {
    let t = tenant();
    let other = TenantId::parse("globex-tenant").unwrap();
    store
        .set_low_balance(&t, &alice(), Some(dec("2.50")))
        .await
        .unwrap();
    assert_eq!(
        store
            .get_wallet(&t, &alice())
            .await
            .unwrap()
            .low_balance_usd,
        Some(dec("2.5"))
    );
    let g = grant("g", "3", GrantKind::Refund);
    store.insert_grant(&t, &alice(), &g).await.unwrap();
    assert_eq!(
        store.get_wallet(&other, &alice()).await.unwrap(),
        WalletRecord::default()
    );
    assert_eq!(
        store
            .void_grant(&other, &alice(), &g.id, now())
            .await
            .unwrap(),
        GrantVoid::Unknown
    );
    store.set_low_balance(&t, &alice(), None).await.unwrap();
    let wallet = store.get_wallet(&t, &alice()).await.unwrap();
    assert_eq!(
        wallet,
        WalletRecord {
            grants: vec![g],
            low_balance_usd: None,
            ..WalletRecord::default()
        }
    );
}
