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
        scope: Some(meter_core::budgets::Scope::Org {
            org_id: acme.clone(),
        }),
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
    let listed = store.denied_limits(None, 100).await.unwrap();
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
    assert!(store.denied_limits(None, 100).await.unwrap().is_empty());
    let (alerts, unread) = store.list_org_alerts(&t, &acme, false, 100).await.unwrap();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].key, resolved.key);
    assert_eq!(unread, 1);
    let outbox = store.unpublished_alerts(1000).await.unwrap();
    assert_eq!(outbox.iter().filter(|x| x.id == resolved.id).count(), 1);
    // A note of the same key again (denied again in the same window) is a new one.
    assert!(store.note_denied_limit(&denied).await.unwrap());
    assert_eq!(store.denied_limits(None, 100).await.unwrap().len(), 1);
}

/// A published budget alert of `u` of a `window` budget on `u`'s own scope.
fn budget_alert(
    t: &TenantId,
    u: &UserId,
    window: meter_core::budgets::Window,
    n: i64,
) -> meter_core::domain::Alert {
    let mut a = alert(
        t,
        u,
        &format!("budget/b-{n}/2025-03-10T12:00:00Z/calls:*@80"),
        n,
    );
    a.budget = Some(meter_core::budgets::BudgetOrigin {
        scope: meter_core::budgets::Scope::User { user_id: u.clone() },
        window,
    });
    a
}

/// Issue 18 (§12): budget alerts of windows shorter than a month are deleted once their
/// 30 days of retention end — once each under racing passes, only once published, with
/// the owner's unread count exact whichever of "mark read" and the deletion comes first.
pub async fn short_window_budget_alerts_expire_once_with_their_unread_count(store: Arc<dyn Store>) {
    use meter_core::budgets::Window;
    let t = tenant();
    let alice = UserId::parse("alice").unwrap();
    let minute = budget_alert(&t, &alice, Window::Minute, 0);
    let read = budget_alert(&t, &alice, Window::Hour, 1);
    let month = budget_alert(&t, &alice, Window::Month, 2);
    let unpublished = budget_alert(&t, &alice, Window::Day, 3);
    let racing = budget_alert(&t, &alice, Window::Week, 4);
    for a in [&minute, &read, &month, &unpublished, &racing] {
        assert!(store.create_budget_alert_once(a).await.unwrap());
        if a.id != unpublished.id {
            store.mark_alert_published(&t, &a.id).await.unwrap();
        }
    }
    assert!(store.mark_alert_read(&t, &read.id).await.unwrap());
    assert_eq!(
        store.list_alerts(&t, &alice, false, 100).await.unwrap().1,
        4
    );

    let mine = |listed: Vec<meter_core::domain::Alert>| -> Vec<String> {
        let mut ids: Vec<String> = listed
            .into_iter()
            .filter(|a| a.tenant == t)
            .map(|a| a.id)
            .collect();
        ids.sort();
        ids
    };
    let ends = minute.created_at + chrono::Duration::days(30);
    assert_eq!(
        mine(
            store
                .expired_alerts(ends - chrono::Duration::seconds(1), 1000)
                .await
                .unwrap()
        ),
        Vec::<String>::new(),
        "kept until 30 days after it was raised"
    );
    let due = store
        .expired_alerts(racing.created_at + chrono::Duration::days(30), 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|a| a.tenant == t)
        .collect::<Vec<_>>();
    let mut expected = vec![minute.id.clone(), read.id.clone(), racing.id.clone()];
    expected.sort();
    assert_eq!(mine(due.clone()), expected, "short windows, published only");
    let listed_minute = due.iter().find(|a| a.id == minute.id).unwrap();
    assert_eq!(
        listed_minute.budget, minute.budget,
        "read back with its scope"
    );

    // Racing deletions of one alert: exactly one deletes it, and its unread count once.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (store, a) = (store.clone(), listed_minute.clone());
        tasks.push(tokio::spawn(async move {
            store.delete_expired_alert(&a).await.unwrap()
        }));
    }
    let mut deleted = 0;
    for task in tasks {
        deleted += usize::from(task.await.unwrap());
    }
    assert_eq!(deleted, 1);
    assert_eq!(
        store.list_alerts(&t, &alice, false, 100).await.unwrap().1,
        3
    );

    // A read alert goes without touching the count.
    let listed_read = due.iter().find(|a| a.id == read.id).unwrap();
    assert!(store.delete_expired_alert(listed_read).await.unwrap());
    assert_eq!(
        store.list_alerts(&t, &alice, false, 100).await.unwrap().1,
        3
    );

    // Listed unread, then marked read while the deletion runs: either order, one change.
    let listed_racing = due.iter().find(|a| a.id == racing.id).unwrap().clone();
    let (s1, s2, id) = (store.clone(), store.clone(), racing.id.clone());
    let t2 = t.clone();
    let del = tokio::spawn(async move { s1.delete_expired_alert(&listed_racing).await.unwrap() });
    let mark = tokio::spawn(async move { s2.mark_alert_read(&t2, &id).await.unwrap() });
    assert!(del.await.unwrap(), "deleted, read or not");
    mark.await.unwrap();
    let (left, unread) = store.list_alerts(&t, &alice, false, 100).await.unwrap();
    let mut left_ids: Vec<String> = left.iter().map(|a| a.id.clone()).collect();
    left_ids.sort();
    let mut kept = vec![month.id.clone(), unpublished.id.clone()];
    kept.sort();
    assert_eq!(left_ids, kept, "the month's and the unpublished alert stay");
    assert_eq!(unread, 2, "the unread count is the unread alerts left");
    assert_eq!(
        mine(
            store
                .expired_alerts(ends + chrono::Duration::days(400), 1000)
                .await
                .unwrap()
        ),
        Vec::<String>::new()
    );
}

/// `alert.resolved`'s notes are read page by page, oldest first (by denial time, tenant,
/// key): every note once, however many share a denial time, so that notes that stay
/// (a prepaid wallet still empty) do not hide newer ones from an aggregation pass.
pub async fn denied_limits_are_paged_oldest_first_each_once(store: Arc<dyn Store>) {
    use meter_core::store::DeniedLimit;
    let t = tenant();
    let other = TenantId::parse(format!("{t}-b")).unwrap();
    let note = |tenant: &TenantId, user: &str, second: i64| {
        let u = UserId::parse(user).unwrap();
        DeniedLimit {
            tenant: tenant.clone(),
            key: format!("credits/user/{user}"),
            user: u.clone(),
            org: None,
            budget_id: None,
            plan: None,
            scope: Some(meter_core::budgets::Scope::User { user_id: u }),
            metric: "credits_usd".into(),
            window: "credits".into(),
            window_start: at(2025, 3, 14, 10),
            resets_at: at(2025, 4, 13, 10),
            used: dec("0"),
            limit: dec("0"),
            denied_at: at(2025, 3, 14, 10) + chrono::Duration::seconds(second),
        }
    };
    // Seven notes; three share a denial time, across two tenants.
    let notes = [
        note(&t, "ann", 5),
        note(&other, "bob", 1),
        note(&t, "cid", 1),
        note(&t, "dee", 1),
        note(&t, "eve", 9),
        note(&other, "fay", 3),
        note(&t, "gus", 0),
    ];
    for n in &notes {
        assert!(store.note_denied_limit(n).await.unwrap());
    }
    let mut seen: Vec<(chrono::DateTime<chrono::Utc>, String, String)> = Vec::new();
    let mut after: Option<DeniedLimit> = None;
    let mut pages = 0;
    loop {
        let page = store.denied_limits(after.as_ref(), 2).await.unwrap();
        pages += 1;
        seen.extend(
            page.iter()
                .map(|d| (d.denied_at, d.tenant.to_string(), d.key.clone())),
        );
        if page.len() < 2 {
            break;
        }
        after = page.last().cloned();
    }
    let mut expected: Vec<_> = notes
        .iter()
        .map(|d| (d.denied_at, d.tenant.to_string(), d.key.clone()))
        .collect();
    expected.sort();
    assert_eq!(seen, expected, "every note once, oldest first");
    assert_eq!(pages, 4, "2 + 2 + 2 + 1");
}
