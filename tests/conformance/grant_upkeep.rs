//! Grant upkeep (`GrantUpkeepStore`, issue 19): the due index lists a grant at its expiry
//! and no sooner; of racing passes exactly one records an expiry (remaining → 0,
//! `expired_usd` = what was left, the credit gone from the check's figures too); a
//! finished grant is pruned once, frees its slot of the cap and keeps its id.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use meter_core::credits::{Grant, GrantKind, GrantRequest, Subscriber};
use meter_core::domain::{GrantId, TenantId};
use meter_core::store::{
    DueGrant, GrantInsert, GrantVoid, Store, FINISHED_GRANT_KEPT, MAX_GRANTS_PER_WALLET,
};
use rust_decimal::Decimal;

use crate::fixtures::*;

fn gid(id: &str) -> GrantId {
    GrantId::parse(id).unwrap()
}

fn alice() -> Subscriber {
    Subscriber::User(user("alice"))
}

fn now() -> DateTime<Utc> {
    at(2025, 3, 10, 12)
}

fn grant(id: &str, amount: &str, expires: Option<DateTime<Utc>>) -> Grant {
    let mut req = GrantRequest::new(dec(amount), GrantKind::Promo);
    req.expires_at = expires;
    req.into_grant(gid(id), now()).unwrap()
}

async fn put(store: &Arc<dyn Store>, t: &TenantId, g: &Grant) {
    assert!(matches!(
        store.insert_grant(t, &alice(), g).await.unwrap(),
        GrantInsert::Created(_)
    ));
}

/// The due grants of tenant `t` at `at`.
async fn due(store: &Arc<dyn Store>, t: &TenantId, at: DateTime<Utc>) -> Vec<DueGrant> {
    let mut out = store.due_grants(at, 1000).await.unwrap();
    out.retain(|d| &d.tenant == t);
    out
}

async fn stored(store: &Arc<dyn Store>, t: &TenantId, id: &str) -> Option<Grant> {
    store
        .get_wallet(t, &alice())
        .await
        .unwrap()
        .grants
        .into_iter()
        .find(|g| g.id == gid(id))
}

pub async fn grant_upkeep_records_an_expiry_once_under_racing_passes(store: Arc<dyn Store>) {
    let t = tenant();
    let expiry = now() + Duration::hours(1);
    put(&store, &t, &grant("promo", "5.000001", Some(expiry))).await;
    put(&store, &t, &grant("purchase", "10", None)).await;

    // Not due a nanosecond before its expiry; due at it; a grant without expiry never.
    assert!(due(&store, &t, expiry - Duration::nanoseconds(1))
        .await
        .is_empty());
    let listed = due(&store, &t, expiry).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].grant.id, gid("promo"));
    assert_eq!(listed[0].wallet, alice());
    assert_eq!(listed[0].due_at, expiry);

    // Eight racing passes, each from the grant as it read it: one writes.
    let read = listed[0].grant.clone();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (store, t, read) = (store.clone(), t.clone(), read.clone());
            tokio::spawn(async move { store.record_grant_expiry(&t, &alice(), &read).await })
        })
        .collect();
    let mut wrote = 0;
    for task in tasks {
        wrote += usize::from(task.await.unwrap().unwrap());
    }
    assert_eq!(wrote, 1, "exactly one racing pass records the expiry");

    let promo = stored(&store, &t, "promo").await.unwrap();
    assert_eq!(promo.remaining_usd, Decimal::ZERO);
    assert_eq!(promo.expired_usd, Some(dec("5.000001")));
    // Again from the stale read, or from the recorded grant: nothing more.
    assert!(!store
        .record_grant_expiry(&t, &alice(), &read)
        .await
        .unwrap());
    assert!(!store
        .record_grant_expiry(&t, &alice(), &promo)
        .await
        .unwrap());
    assert_eq!(stored(&store, &t, "promo").await.unwrap(), promo);
    // The check's figures agree: before the expiry the wallet now counts only $10.
    let credit = store.get_credit_state(&t, &alice()).await.unwrap();
    assert_eq!(credit.balance(now()).unwrap(), dec("10"));
    // Listed again only once it has been finished for the keeping time.
    assert!(due(
        &store,
        &t,
        expiry + FINISHED_GRANT_KEPT - Duration::seconds(1)
    )
    .await
    .is_empty());
    let later = due(&store, &t, expiry + FINISHED_GRANT_KEPT).await;
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].grant, promo);
}

pub async fn grant_upkeep_prunes_a_finished_grant_once_freeing_its_slot_and_keeping_its_id(
    store: Arc<dyn Store>,
) {
    let t = tenant();
    let w = alice();
    for i in 0..MAX_GRANTS_PER_WALLET - 1 {
        put(&store, &t, &grant(&format!("g{i:03}"), "1", None)).await;
    }
    let doomed = grant("doomed", "2", None);
    put(&store, &t, &doomed).await;
    assert_eq!(
        store
            .insert_grant(&t, &w, &grant("new", "1", None))
            .await
            .unwrap(),
        GrantInsert::WalletFull
    );
    // An active grant is not pruned.
    assert!(!store.archive_grant(&t, &w, &doomed).await.unwrap());
    let voided = match store.void_grant(&t, &w, &doomed.id, now()).await.unwrap() {
        GrantVoid::Voided(g) => g,
        other => panic!("{other:?}"),
    };
    // A void lists it for pruning once it has been finished for the keeping time.
    let listed = due(&store, &t, now() + FINISHED_GRANT_KEPT).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].grant, voided);
    // Racing prunes: one.
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (store, t, g) = (store.clone(), t.clone(), voided.clone());
            tokio::spawn(async move { store.archive_grant(&t, &alice(), &g).await })
        })
        .collect();
    let mut pruned = 0;
    for task in tasks {
        pruned += usize::from(task.await.unwrap().unwrap());
    }
    assert_eq!(pruned, 1);
    assert!(due(&store, &t, now() + FINISHED_GRANT_KEPT * 10)
        .await
        .is_empty());

    let wallet = store.get_wallet(&t, &w).await.unwrap();
    assert_eq!(wallet.grants.len(), MAX_GRANTS_PER_WALLET - 1);
    assert!(wallet.grants.iter().all(|g| g.id != doomed.id));
    // Its slot is free, and the id stays taken: a replay answers the pruned grant.
    assert!(matches!(
        store
            .insert_grant(&t, &w, &grant("new", "1", None))
            .await
            .unwrap(),
        GrantInsert::Created(_)
    ));
    assert_eq!(
        store.insert_grant(&t, &w, &doomed).await.unwrap(),
        GrantInsert::Exists(voided.clone())
    );
    assert_eq!(
        store.get_grant(&t, &w, &doomed.id).await.unwrap(),
        Some(voided.clone())
    );
    assert_eq!(
        store
            .void_grant(&t, &w, &doomed.id, now() + Duration::days(1))
            .await
            .unwrap(),
        GrantVoid::AlreadyVoided(voided)
    );
    assert_eq!(
        store.get_wallet(&t, &w).await.unwrap().grants.len(),
        MAX_GRANTS_PER_WALLET
    );
    // A grant drawn to 0 is finished too (pruned on demand).
    let mut empty = grant("empty", "3", None);
    empty.remaining_usd = Decimal::ZERO;
    let t2 = tenant();
    put(&store, &t2, &empty).await;
    assert!(store.archive_grant(&t2, &w, &empty).await.unwrap());
    assert!(store.get_wallet(&t2, &w).await.unwrap().grants.is_empty());
}
