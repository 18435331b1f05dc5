//! Issue 18: alerts of budgets on an org's or team's pooled usage. No user owns them: they
//! are stored once under the org (`Alert::org`, owner key `org#<org_id>`), listed and counted
//! unread for the org only (never for a user of the same id), in the outbox like any alert,
//! and marked read by id.

use std::sync::Arc;

use meter_core::domain::{OrgId, TenantId, UserId};
use meter_core::store::Store;

use crate::fixtures::*;

fn org_alert(t: &TenantId, o: &str, key: &str, minute: i64) -> meter_core::domain::Alert {
    let mut a = alert(t, &UserId::parse(o).unwrap(), key, minute);
    a.org = Some(OrgId::parse(o).unwrap());
    a.period_start = at(2025, 3, 14, 0);
    a
}

pub async fn org_budget_alerts_are_stored_once_and_listed_for_the_org(store: Arc<dyn Store>) {
    let t = tenant();
    let acme = OrgId::parse("acme").unwrap();
    let mut a = org_alert(
        &t,
        "acme",
        "budget/acme-day/2025-03-14T00:00:00Z/cost_usd@80",
        0,
    );
    a.id = "alert_b_00000000000000000000000000000acme".into();
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
    // A second alert of the org, later; and a user named like the org has its own alert.
    let mut b = org_alert(
        &t,
        "acme",
        "budget/acme-day/2025-03-14T00:00:00Z/cost_usd@90",
        5,
    );
    b.id = "alert_b_00000000000000000000000000000acm2".into();
    assert!(store.create_budget_alert_once(&b).await.unwrap());
    let namesake = UserId::parse("acme").unwrap();
    let mut u = alert(&t, &namesake, "budget/u/2025-03-14T00:00:00Z/calls@80", 1);
    u.id = "alert_b_00000000000000000000000000000user".into();
    assert!(store.create_budget_alert_once(&u).await.unwrap());

    let (listed, unread) = store.list_org_alerts(&t, &acme, false, 100).await.unwrap();
    assert_eq!(
        listed.iter().map(|x| x.id.as_str()).collect::<Vec<_>>(),
        vec![b.id.as_str(), a.id.as_str()],
        "newest first, the org's only"
    );
    assert_eq!(listed[0], b, "read back as written, org and all");
    assert_eq!(unread, 2);
    let (one, _) = store.list_org_alerts(&t, &acme, false, 1).await.unwrap();
    assert_eq!(one.len(), 1);
    let (users, user_unread) = store.list_alerts(&t, &namesake, false, 100).await.unwrap();
    assert_eq!(
        users.iter().map(|x| x.id.as_str()).collect::<Vec<_>>(),
        vec![u.id.as_str()]
    );
    assert_eq!(users[0].org, None);
    assert_eq!(user_unread, 1);

    // In the outbox once each, with the org.
    let outbox = store.unpublished_alerts(1000).await.unwrap();
    let mine: Vec<_> = outbox.iter().filter(|x| x.id == a.id).collect();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].org.as_ref(), Some(&acme));

    // Marked read by id: the org's unread count follows, the user's does not move.
    assert!(store.mark_alert_read(&t, &a.id).await.unwrap());
    assert!(store.mark_alert_read(&t, &a.id).await.unwrap());
    let (unread_list, unread) = store.list_org_alerts(&t, &acme, true, 100).await.unwrap();
    assert_eq!(unread, 1);
    assert_eq!(unread_list.len(), 1);
    assert_eq!(unread_list[0].id, b.id);
    assert_eq!(
        store
            .list_alerts(&t, &namesake, false, 100)
            .await
            .unwrap()
            .1,
        1
    );

    // Other orgs and tenants see nothing.
    let globex = OrgId::parse("globex").unwrap();
    assert_eq!(
        store
            .list_org_alerts(&t, &globex, false, 100)
            .await
            .unwrap(),
        (vec![], 0)
    );
    let other = TenantId::parse(format!("{t}-other")).unwrap();
    assert_eq!(
        store
            .list_org_alerts(&other, &acme, false, 100)
            .await
            .unwrap(),
        (vec![], 0)
    );
}

/// `alert.resolved`: a denial is remembered once per key however many denials race; of
/// racing resolutions exactly one deletes it and stores the resolved alert (listed for its
/// owner, in the outbox); a resolution of a note that is gone changes nothing.
pub async fn denied_limits_are_noted_once_and_resolved_once(store: Arc<dyn Store>) {
    use meter_core::store::DeniedLimit;
    let t = tenant();
    let acme = OrgId::parse("acme").unwrap();
    let denied = DeniedLimit {
        tenant: t.clone(),
        key: "budget/acme-min/2025-03-14T10:00:00Z/calls:*/org#acme".into(),
        user: UserId::parse("acme").unwrap(),
        org: Some(acme.clone()),
        budget_id: Some(meter_core::domain::BudgetId::parse("acme-min").unwrap()),
        plan: None,
        metric: "calls:*".into(),
        window: "minute".into(),
        window_start: at(2025, 3, 14, 10),
        resets_at: at(2025, 3, 14, 10) + chrono::Duration::minutes(1),
        used: dec("60"),
        limit: dec("60"),
        denied_at: at(2025, 3, 14, 10) + chrono::Duration::seconds(30),
    };
    let mut tasks = Vec::new();
    for i in 0..12 {
        let (store, mut d) = (store.clone(), denied.clone());
        // Later racers carry later denial times: the first stored one stays.
        d.denied_at += chrono::Duration::milliseconds(i);
        tasks.push(tokio::spawn(async move {
            store.note_denied_limit(&d).await.unwrap()
        }));
    }
    let mut noted = 0;
    for task in tasks {
        if task.await.unwrap() {
            noted += 1;
        }
    }
    assert_eq!(noted, 1);
    let listed = store.denied_limits(100).await.unwrap();
    assert_eq!(listed.len(), 1);
    let stored = listed[0].clone();
    assert_eq!(stored.key, denied.key);
    assert_eq!((stored.used, stored.limit), (dec("60"), dec("60")));

    let mut resolved = org_alert(&t, "acme", &format!("resolved/{}@1", stored.key), 2);
    resolved.id = "alert_r_000000000000000000000000000acme".into();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (store, d, a) = (store.clone(), stored.clone(), resolved.clone());
        tasks.push(tokio::spawn(async move {
            store.resolve_denied_limit(&d, &a).await.unwrap()
        }));
    }
    let mut won = 0;
    for task in tasks {
        if task.await.unwrap() {
            won += 1;
        }
    }
    assert_eq!(won, 1);
    assert!(store.denied_limits(100).await.unwrap().is_empty());
    let (alerts, unread) = store.list_org_alerts(&t, &acme, false, 100).await.unwrap();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].key, resolved.key);
    assert_eq!(unread, 1);
    let outbox = store.unpublished_alerts(1000).await.unwrap();
    assert_eq!(outbox.iter().filter(|x| x.id == resolved.id).count(), 1);
    // A note of the same key again (denied again in the same window) is a new one.
    assert!(store.note_denied_limit(&denied).await.unwrap());
    assert_eq!(store.denied_limits(100).await.unwrap().len(), 1);
}
