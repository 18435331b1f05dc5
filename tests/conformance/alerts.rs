//! Alerts: stored once per (user, period, key) under concurrency, listed newest first with
//! the unread count, the outbox, and re-armed keys.

use std::collections::BTreeSet;
use std::sync::Arc;

use meter_core::domain::Alert;
use meter_core::store::Store;

use crate::fixtures::*;

pub async fn alert_is_stored_once_under_concurrency(store: Arc<dyn Store>) {
    let (t, u) = (tenant(), user("jack"));
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let store = store.clone();
        let a = alert(&t, &u, "calls:gemini@80", 0);
        tasks.push(tokio::spawn(async move {
            store.create_alert_once(&a).await.unwrap()
        }));
    }
    let mut created = 0;
    for task in tasks {
        created += usize::from(task.await.unwrap());
    }
    assert_eq!(created, 1);
    let (alerts, unread) = store.list_alerts(&t, &u, false, 100).await.unwrap();
    assert_eq!((alerts.len(), unread), (1, 1));
    let state = store.get_user_usage(&t, &u, &|_| march()).await.unwrap();
    assert_eq!(
        state.fired_alerts,
        BTreeSet::from(["calls:gemini@80".to_owned()])
    );
    // Another period re-arms the key.
    let mut april = alert(&t, &u, "calls:gemini@80", 0);
    april.period_start = at(2025, 4, 1, 0);
    assert!(store.create_alert_once(&april).await.unwrap());
}

pub async fn rearmed_alert_keys_can_fire_again_and_old_alerts_stay_listed(store: Arc<dyn Store>) {
    let (t, u) = (tenant(), user("lars"));
    // Nothing fired yet (and no state at all): re-arming is a no-op, not an error.
    store
        .rearm_alerts(&t, &u, march(), &["calls:gemini@80".to_owned()])
        .await
        .unwrap();
    for key in ["calls:gemini@80", "calls:gemini@90"] {
        assert!(store
            .create_alert_once(&alert(&t, &u, key, 0))
            .await
            .unwrap());
    }
    let april = at(2025, 4, 1, 0);
    let mut later = alert(&t, &u, "calls:gemini@80", 1);
    later.period_start = april;
    assert!(store.create_alert_once(&later).await.unwrap());

    let keys = [
        "calls:gemini@80".to_owned(),
        "calls:gemini@80".to_owned(),
        "never".to_owned(),
    ];
    store.rearm_alerts(&t, &u, march(), &keys).await.unwrap();
    store.rearm_alerts(&t, &u, march(), &keys).await.unwrap();

    let fired = |p| {
        let store = store.clone();
        let (t, u) = (t.clone(), u.clone());
        async move {
            store
                .get_user_usage(&t, &u, &|_| p)
                .await
                .unwrap()
                .fired_alerts
        }
    };
    assert_eq!(
        fired(march()).await,
        BTreeSet::from(["calls:gemini@90".to_owned()])
    );
    assert_eq!(
        fired(april).await,
        BTreeSet::from(["calls:gemini@80".to_owned()]),
        "other periods keep their keys"
    );
    // The key fires again once, and both alerts are listed.
    assert!(store
        .create_alert_once(&alert(&t, &u, "calls:gemini@80", 2))
        .await
        .unwrap());
    assert!(!store
        .create_alert_once(&alert(&t, &u, "calls:gemini@80", 3))
        .await
        .unwrap());
    let (listed, unread) = store.list_alerts(&t, &u, false, 100).await.unwrap();
    let march_80 = listed
        .iter()
        .filter(|a| a.key == "calls:gemini@80" && a.period_start == march())
        .count();
    assert_eq!((march_80, listed.len(), unread), (2, 4, 4));
}

pub async fn alerts_list_newest_first_with_total_unread_and_outbox(store: Arc<dyn Store>) {
    let (t, u) = (tenant(), user("kate"));
    let mut ids = Vec::new();
    for i in 0..5 {
        let a = alert(&t, &u, &format!("k{i}"), i);
        ids.push(a.id.clone());
        assert!(store.create_alert_once(&a).await.unwrap());
    }
    assert!(store.mark_alert_read(&t, &ids[4]).await.unwrap());
    assert!(
        store.mark_alert_read(&t, &ids[4]).await.unwrap(),
        "marking read is idempotent"
    );
    assert!(!store.mark_alert_read(&t, "no-such-alert").await.unwrap());

    let (page, unread) = store.list_alerts(&t, &u, false, 2).await.unwrap();
    assert_eq!(
        unread, 4,
        "unread_count counts every unread alert, not the page"
    );
    assert_eq!(
        page.iter().map(|a| a.id.clone()).collect::<Vec<_>>(),
        vec![ids[4].clone(), ids[3].clone()]
    );
    assert!(page[0].read);
    let (unread_page, _) = store.list_alerts(&t, &u, true, 10).await.unwrap();
    assert_eq!(
        unread_page.iter().map(|a| a.id.clone()).collect::<Vec<_>>(),
        vec![
            ids[3].clone(),
            ids[2].clone(),
            ids[1].clone(),
            ids[0].clone()
        ]
    );

    // Outbox: unpublished, oldest first (other tenants' alerts may be there too).
    let mine = |v: Vec<Alert>| {
        v.into_iter()
            .filter(|a| a.tenant == t)
            .map(|a| a.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(mine(store.unpublished_alerts(1000).await.unwrap()), ids);
    store.mark_alert_published(&t, &ids[0]).await.unwrap();
    store.mark_alert_published(&t, &ids[0]).await.unwrap();
    assert_eq!(
        mine(store.unpublished_alerts(1000).await.unwrap()),
        ids[1..].to_vec()
    );

    // The order is the alerts' creation time, not the order they were written in.
    let other = tenant();
    let written: Vec<Alert> = [10, 30, 20]
        .into_iter()
        .map(|minute| alert(&other, &u, &format!("late-{minute}"), minute))
        .collect();
    for a in &written {
        assert!(store.create_alert_once(a).await.unwrap());
    }
    let keys = |v: &[Alert]| v.iter().map(|a| a.key.clone()).collect::<Vec<_>>();
    let (listed, _) = store.list_alerts(&other, &u, false, 10).await.unwrap();
    assert_eq!(keys(&listed), ["late-30", "late-20", "late-10"]);
    let outbox: Vec<Alert> = store
        .unpublished_alerts(1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|a| a.tenant == other)
        .collect();
    assert_eq!(keys(&outbox), ["late-10", "late-20", "late-30"]);
    assert_eq!(outbox[0], written[0], "stored as written");
}
