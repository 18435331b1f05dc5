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
