//! The web dashboard's store ports: tenant-wide reads (`DirectoryStore`) and token signing
//! keys (`TokenKeyStore`), the same on every adapter.

use std::sync::Arc;

use chrono::Duration;
use meter_core::domain::{
    Alert, PlanName, Severity, Subscription, SubscriptionStatus, TenantId, UserId,
};
use meter_core::periods::{Anchor, BillingCycle, Period};
use meter_core::store::{Store, StoreError};
use meter_core::tokens::TokenKeys;

use crate::fixtures::*;

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
        org: None,
        budget: None,
    }
}

fn subscription(t: &TenantId, u: &UserId) -> Subscription {
    Subscription {
        tenant: t.clone(),
        user: u.clone(),
        plan: PlanName::parse("pro").unwrap(),
        cycle: BillingCycle::Monthly,
        anchor: Anchor::Calendar,
        started_at: at(2025, 1, 1, 0),
        current_period: Period {
            start: march(),
            end: at(2025, 4, 1, 0),
        },
        status: SubscriptionStatus::Active,
        auto_renew: true,
        pending_plan: None,
        prorations: Vec::new(),
        history: Vec::new(),
        version: 1,
        updated_at: at(2025, 1, 1, 0),
    }
}

/// Pages until the end, checking that every page respects `limit`.
async fn all_users(
    store: &Arc<dyn Store>,
    t: &TenantId,
    limit: usize,
) -> Vec<meter_core::store::TenantUser> {
    let mut out = Vec::new();
    let mut after: Option<UserId> = None;
    for _ in 0..20 {
        let page = store
            .list_tenant_users(t, after.as_ref(), limit, &|_| march())
            .await
            .unwrap();
        assert!(page.items.len() <= limit);
        out.extend(page.items);
        match page.next {
            Some(n) => after = Some(UserId::parse(n).unwrap()),
            None => return out,
        }
    }
    panic!("paging did not end");
}

pub async fn tenant_users_are_paged_in_id_order_with_their_period_usage(store: Arc<dyn Store>) {
    // Arrange: four users with usage or a subscription, one user of another tenant.
    let (t, other) = (tenant(), tenant());
    for (name, n) in [("dora", 3u64), ("ann", 1), ("cleo", 2)] {
        let u = user(name);
        let events: Vec<_> = (0..n)
            .map(|i| event(&t, &u, &format!("{name}-{i}"), 10, "0.25"))
            .collect();
        store.record_events(&events).await.unwrap();
    }
    store
        .put_subscription(&subscription(&t, &user("bea")), None)
        .await
        .unwrap();
    store
        .record_events(&[event(&other, &user("zed"), "zed-1", 10, "1")])
        .await
        .unwrap();
    store
        .create_alert_once(&alert(&t, &user("cleo"), "calls:gemini@80", 0))
        .await
        .unwrap();

    // Act: pages of two.
    let users = all_users(&store, &t, 2).await;

    // Assert: every user of the tenant once, in id order, with its usage and unread count.
    let names: Vec<&str> = users.iter().map(|u| u.user.as_str()).collect();
    assert_eq!(names, ["ann", "bea", "cleo", "dora"]);
    let dora = &users[3];
    let gemini = &dora.usage.usage.by_provider[&provider("gemini")];
    assert_eq!(gemini.recorded.calls, 3);
    assert_eq!(gemini.recorded.cost_usd, dec("0.75"));
    assert_eq!(dora.usage.period_start, Some(march()));
    assert_eq!(dora.usage.subscription, None);
    assert_eq!(
        users[1].usage.subscription,
        Some(subscription(&t, &user("bea")))
    );
    assert!(users[1].usage.usage.by_provider.is_empty());
    assert_eq!(users[2].unread_alerts, 1);
    assert!(users[2].usage.fired_alerts.contains("calls:gemini@80"));
    assert_eq!(users[0].unread_alerts, 0);
    // One page of everything; a page after the last user is empty.
    assert_eq!(all_users(&store, &t, 100).await.len(), 4);
    let after_last = store
        .list_tenant_users(&t, Some(&user("dora")), 10, &|_| march())
        .await
        .unwrap();
    assert!(after_last.items.is_empty() && after_last.next.is_none());
    // The other tenant sees only its own.
    let theirs = all_users(&store, &other, 10).await;
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0].user.as_str(), "zed");
}

pub async fn tenant_alerts_are_newest_first_and_one_alert_reads_back(store: Arc<dyn Store>) {
    let (t, other) = (tenant(), tenant());
    let mut stored = Vec::new();
    for (i, name) in ["amy", "ben", "amy", "cal", "ben"].iter().enumerate() {
        let a = alert(&t, &user(name), &format!("k{i}"), i as i64);
        assert!(store.create_alert_once(&a).await.unwrap());
        stored.push(a);
    }
    let foreign = alert(&other, &user("amy"), "k0", 60);
    store.create_alert_once(&foreign).await.unwrap();

    let latest = store.tenant_alerts(&t, 3).await.unwrap();
    let ids: Vec<&str> = latest.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, [&stored[4].id, &stored[3].id, &stored[2].id]);
    assert_eq!(latest[0], stored[4]);
    assert_eq!(store.tenant_alerts(&t, 100).await.unwrap().len(), 5);
    assert!(store.tenant_alerts(&t, 0).await.unwrap().is_empty());
    // Read state shows through.
    assert!(store.mark_alert_read(&t, &stored[4].id).await.unwrap());
    assert!(store.tenant_alerts(&t, 1).await.unwrap()[0].read);

    // One alert by id, only in its tenant.
    let mut read = stored[4].clone();
    read.read = true;
    assert_eq!(
        store.get_alert(&t, &stored[4].id).await.unwrap(),
        Some(read)
    );
    assert_eq!(store.get_alert(&other, &stored[4].id).await.unwrap(), None);
    assert_eq!(store.get_alert(&t, "no-such-alert").await.unwrap(), None);
    assert_eq!(
        store.get_alert(&other, &foreign.id).await.unwrap(),
        Some(foreign)
    );
}

pub async fn token_keys_are_created_once_and_replaced_by_version(store: Arc<dyn Store>) {
    let t = tenant();
    assert_eq!(store.get_token_keys(&t).await.unwrap(), None);

    // Concurrent first uses agree on one set of keys.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (store, t) = (store.clone(), t.clone());
        tasks.push(tokio::spawn(async move {
            store
                .create_token_keys(&TokenKeys::generate(&t, march()))
                .await
                .unwrap()
        }));
    }
    let mut created = Vec::new();
    for task in tasks {
        created.push(task.await.unwrap());
    }
    assert!(created.windows(2).all(|w| w[0] == w[1]), "one winner");
    let first = store.get_token_keys(&t).await.unwrap().unwrap();
    assert_eq!(first, created[0]);

    // A rotation replaces them only over the version it read.
    let rotated = first.rotated(march(), Duration::hours(24));
    store
        .replace_token_keys(&rotated, first.version)
        .await
        .unwrap();
    assert_eq!(
        store.get_token_keys(&t).await.unwrap(),
        Some(rotated.clone())
    );
    let stale = first.rotated(march(), Duration::zero());
    assert!(matches!(
        store.replace_token_keys(&stale, first.version).await,
        Err(StoreError::VersionConflict)
    ));
    assert_eq!(store.get_token_keys(&t).await.unwrap(), Some(rotated));
    // Another tenant has none.
    assert_eq!(store.get_token_keys(&tenant()).await.unwrap(), None);
}
