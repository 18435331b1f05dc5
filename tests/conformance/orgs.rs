//! Issue 18: org subscriptions. Writes are versioned as users' are; every org
//! subscription is listed once; closing an org period stores one invoice and moves the
//! subscription on in one write, once however many closes race; org invoices never mix
//! with a user's of the same id.

use std::collections::BTreeSet;
use std::sync::Arc;

use meter_core::domain::{Invoice, InvoiceStatus, OrgId, PlanName, Subscription, TenantId, UserId};
use meter_core::store::{org_subscriber, OrgClose, Store, StoreError};
use rust_decimal::Decimal;

use crate::fixtures::*;

fn org(name: &str) -> OrgId {
    OrgId::parse(name).unwrap()
}

pub(crate) fn org_sub(t: &TenantId, o: &OrgId) -> Subscription {
    subscription(t, &UserId::parse(o.as_str()).unwrap(), 1)
}

pub(crate) fn org_invoice(sub: &Subscription, o: &OrgId, total: &str) -> Invoice {
    Invoice {
        id: uuid::Uuid::new_v4().to_string(),
        tenant: sub.tenant.clone(),
        user: org_subscriber(o),
        period: sub.current_period,
        plan: sub.plan.clone(),
        base_usd: dec(total),
        usage_usd: Decimal::ZERO,
        overage_usd: Decimal::ZERO,
        proration_usd: Decimal::ZERO,
        adjustments_usd: Decimal::ZERO,
        total_usd: dec(total),
        line_items: Vec::new(),
        status: InvoiceStatus::Pending,
        created_at: sub.current_period.end,
        published: false,
        extra: [("org_id".to_owned(), o.to_string())].into(),
    }
}

pub(crate) fn rolled(sub: &Subscription) -> Subscription {
    let mut next = sub.clone();
    next.version += 1;
    next.current_period = meter_core::periods::Period {
        start: sub.current_period.end,
        end: at(2025, 5, 1, 0),
    };
    next
}

pub async fn org_subscription_writes_are_versioned_and_listed_once(store: Arc<dyn Store>) {
    let t = tenant();
    let acme = org("acme");
    assert_eq!(store.get_org_subscription(&t, &acme).await.unwrap(), None);
    let sub = org_sub(&t, &acme);
    store.put_org_subscription(&acme, &sub, None).await.unwrap();
    assert!(matches!(
        store.put_org_subscription(&acme, &sub, None).await,
        Err(StoreError::VersionConflict)
    ));
    let mut next = sub.clone();
    next.plan = PlanName::parse("enterprise").unwrap();
    next.version = 2;
    store
        .put_org_subscription(&acme, &next, Some(1))
        .await
        .unwrap();
    assert!(matches!(
        store.put_org_subscription(&acme, &next, Some(1)).await,
        Err(StoreError::VersionConflict)
    ));
    assert_eq!(
        store.get_org_subscription(&t, &acme).await.unwrap(),
        Some(next.clone())
    );
    // A user of the same id has no subscription, and the org's is not the user's.
    let same_id = UserId::parse("acme").unwrap();
    assert_eq!(store.get_subscription(&t, &same_id).await.unwrap(), None);
    // Another tenant does not see it.
    let other = TenantId::parse(format!("{t}-other")).unwrap();
    assert_eq!(
        store.get_org_subscription(&other, &acme).await.unwrap(),
        None
    );

    for i in 0..5 {
        let o = org(&format!("org-{i}"));
        store
            .put_org_subscription(&o, &org_sub(&t, &o), None)
            .await
            .unwrap();
    }
    let mut seen = BTreeSet::new();
    let mut cursor = None;
    loop {
        let page = store.list_org_subscriptions(cursor, 2).await.unwrap();
        assert!(page.items.len() <= 2);
        for r in page.items {
            if r.tenant == t {
                assert!(seen.insert(r.org.to_string()), "{} listed twice", r.org);
                assert_eq!(
                    store.get_org_subscription(&t, &r.org).await.unwrap(),
                    Some(r.subscription)
                );
            }
        }
        match page.next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    assert_eq!(seen.len(), 6, "{seen:?}");
    // User listings do not include orgs.
    let mut cursor = None;
    loop {
        let page = store.list_users(cursor, 100).await.unwrap();
        assert!(page.items.iter().all(|u| u.tenant != t));
        match page.next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
}

pub async fn racing_org_closes_store_one_invoice_and_roll_once(store: Arc<dyn Store>) {
    let t = tenant();
    let acme = org("acme");
    let sub = org_sub(&t, &acme);
    store.put_org_subscription(&acme, &sub, None).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (store, sub, acme) = (store.clone(), sub.clone(), acme.clone());
        tasks.push(tokio::spawn(async move {
            store
                .close_org_period(&acme, &org_invoice(&sub, &acme, "79"), &rolled(&sub), 1)
                .await
                .unwrap()
        }));
    }
    let mut closed = 0;
    for task in tasks {
        if task.await.unwrap() == OrgClose::Closed {
            closed += 1;
        }
    }
    assert_eq!(closed, 1);
    let invoices = store.list_org_invoices(&t, &acme).await.unwrap();
    assert_eq!(invoices.len(), 1);
    assert_eq!(invoices[0].total_usd, dec("79"));
    assert_eq!(invoices[0].user, "org#acme");
    assert_eq!(
        store.get_org_subscription(&t, &acme).await.unwrap(),
        Some(rolled(&sub))
    );
    // The invoice is in the outbox.
    let unpublished = store.unpublished_invoices(1000).await.unwrap();
    assert!(unpublished.iter().any(|i| i.id == invoices[0].id));
    // A user named like the org has no invoice.
    let same_id = UserId::parse("acme").unwrap();
    assert!(store.list_invoices(&t, &same_id).await.unwrap().is_empty());
}

pub async fn an_org_close_over_a_stale_version_or_invoiced_period_changes_nothing(
    store: Arc<dyn Store>,
) {
    let t = tenant();
    let acme = org("acme");
    let sub = org_sub(&t, &acme);
    store.put_org_subscription(&acme, &sub, None).await.unwrap();
    // Stale version: nothing written, not even the invoice.
    assert_eq!(
        store
            .close_org_period(&acme, &org_invoice(&sub, &acme, "1"), &rolled(&sub), 7)
            .await
            .unwrap(),
        OrgClose::Changed
    );
    assert!(store.list_org_invoices(&t, &acme).await.unwrap().is_empty());
    assert_eq!(
        store.get_org_subscription(&t, &acme).await.unwrap(),
        Some(sub.clone())
    );
    // An invoice of that period already stored: the subscription does not move.
    assert!(store
        .put_invoice_once(&org_invoice(&sub, &acme, "2"))
        .await
        .unwrap());
    assert_eq!(
        store
            .close_org_period(&acme, &org_invoice(&sub, &acme, "3"), &rolled(&sub), 1)
            .await
            .unwrap(),
        OrgClose::Changed
    );
    assert_eq!(
        store.get_org_subscription(&t, &acme).await.unwrap(),
        Some(sub)
    );
    let invoices = store.list_org_invoices(&t, &acme).await.unwrap();
    assert_eq!(invoices.len(), 1);
    assert_eq!(invoices[0].total_usd, dec("2"));
}

pub async fn org_member_directories_are_sets_per_org_period_and_tenant(store: Arc<dyn Store>) {
    use meter_core::domain::TeamId;
    use meter_core::periods::Period;
    let t = tenant();
    let acme = org("acme");
    let march = Period {
        start: at(2026, 3, 1, 0),
        end: at(2026, 4, 1, 0),
    };
    let april = Period {
        start: at(2026, 4, 1, 0),
        end: at(2026, 5, 1, 0),
    };
    let users: Vec<UserId> = (0..40).map(|i| user(&format!("member-{i}"))).collect();
    let red = TeamId::parse("red").unwrap();
    // Racing notes of overlapping names: every name once.
    let mut tasks = Vec::new();
    for chunk in users.chunks(10) {
        let (store, t, acme, chunk, red) = (
            store.clone(),
            t.clone(),
            acme.clone(),
            chunk.to_vec(),
            red.clone(),
        );
        tasks.push(tokio::spawn(async move {
            for _ in 0..2 {
                store
                    .note_org_members(&t, &acme, &march, &chunk, std::slice::from_ref(&red))
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let read = store.org_members(&t, &acme, march.start).await.unwrap();
    assert_eq!(read.users, users.iter().cloned().collect());
    assert_eq!(read.teams, [red.clone()].into());
    // Other periods, orgs and tenants see nothing of it.
    assert_eq!(
        store.org_members(&t, &acme, april.start).await.unwrap(),
        Default::default()
    );
    assert_eq!(
        store
            .org_members(&t, &org("globex"), march.start)
            .await
            .unwrap(),
        Default::default()
    );
    let other = TenantId::parse(format!("{t}-other")).unwrap();
    assert_eq!(
        store.org_members(&other, &acme, march.start).await.unwrap(),
        Default::default()
    );
}

pub async fn budget_alerts_are_stored_once_under_concurrency(store: Arc<dyn Store>) {
    let (t, u) = (tenant(), user("bea"));
    // The user's state exists (budget alerts follow recorded usage).
    store
        .record_events(&[event(&t, &u, "ba-1", 10, "0.1")])
        .await
        .unwrap();
    let mut a = alert(&t, &u, "budget/daily/2025-03-14T00:00:00Z/calls:*@80", 0);
    a.id = "alert_b_0123456789abcdef0123456789abcdef".into();
    a.period_start = at(2025, 3, 14, 0);
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (store, a) = (store.clone(), a.clone());
        tasks.push(tokio::spawn(async move {
            store.create_budget_alert_once(&a).await.unwrap()
        }));
    }
    let mut stored = 0;
    for task in tasks {
        if task.await.unwrap() {
            stored += 1;
        }
    }
    assert_eq!(stored, 1);
    let (listed, unread) = store.list_alerts(&t, &u, false, 100).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].key, a.key);
    assert_eq!(unread, 1);
    let outbox = store.unpublished_alerts(1000).await.unwrap();
    assert_eq!(outbox.iter().filter(|x| x.id == a.id).count(), 1);
    // Marking it read counts it read.
    assert!(store.mark_alert_read(&t, &a.id).await.unwrap());
    assert_eq!(store.list_alerts(&t, &u, true, 100).await.unwrap().1, 0);
}
