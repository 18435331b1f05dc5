//! The alert port down for a while: alerts and invoices wait in the outbox through any
//! number of passes, the service answers as usual, and after recovery each is delivered
//! once; a publish that went out but answered an error is delivered again with the same id
//! (at-least-once, subscribers de-duplicate by id).

use std::collections::BTreeMap;

use meter_core::domain::UserId;
use meter_core::testing::instant;

use crate::faulty::{Fault, Timing};
use crate::helpers::{event, spawn_app};

fn counts(ids: Vec<String>) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for id in ids {
        *out.entry(id).or_default() += 1;
    }
    out
}

#[tokio::test]
async fn an_alert_port_outage_keeps_alerts_and_invoices_in_the_outbox_until_it_recovers() {
    let app = spawn_app("2025-03-20T12:00:00Z").await;
    // Nothing gets through (a refused publish never reaches subscribers).
    app.publisher
        .faults
        .inject(Fault::every(Timing::Before).on(&["publish"]));
    // Both users cross 80 % and 90 % of the Free plan's gemini calls.
    for user in ["olga", "omar"] {
        let events: Vec<_> = (0..90)
            .map(|i| event(&format!("{user}-{i}"), user, 5, "2025-03-20T10:00:00Z"))
            .collect();
        app.ingest(&events)
            .await
            .assert_ok("ingest during the outage");
    }
    app.set_now(instant("2025-04-01T00:05:00Z"));
    for _ in 0..3 {
        let report = app.aggregate().await.unwrap();
        assert_eq!((report.alerts_delivered, report.invoices_delivered), (0, 0));
    }
    assert_eq!(app.store.unpublished_alerts(100).await.unwrap().len(), 4);
    assert_eq!(app.store.unpublished_invoices(100).await.unwrap().len(), 2);
    assert!(app.publisher.accepted("alert").is_empty());

    // Recovery: the next pass delivers everything once; the one after, nothing.
    app.publisher.faults.heal();
    let report = app.aggregate().await.unwrap();
    assert_eq!((report.alerts_delivered, report.invoices_delivered), (4, 2));
    let again = app.aggregate().await.unwrap();
    assert_eq!((again.alerts_delivered, again.invoices_delivered), (0, 0));
    let alerts = counts(app.publisher.accepted("alert"));
    let invoices = counts(app.publisher.accepted("invoice.created"));
    assert_eq!(alerts.len(), 4);
    assert_eq!(invoices.len(), 2);
    assert!(alerts.values().chain(invoices.values()).all(|&n| n == 1));
    for user in ["olga", "omar"] {
        let u = UserId::parse(user).unwrap();
        let (stored, _) = app
            .store
            .list_alerts(&app.tenant, &u, false, 10)
            .await
            .unwrap();
        assert!(stored
            .iter()
            .all(|a| a.published && alerts.contains_key(&a.id)));
        let inv = app.store.list_invoices(&app.tenant, &u).await.unwrap();
        assert!(inv
            .iter()
            .all(|i| i.published && invoices.contains_key(&i.id)));
    }
}

#[tokio::test]
async fn a_publish_that_went_out_but_failed_is_delivered_again_with_the_same_id() {
    let app = spawn_app("2025-03-20T12:00:00Z").await;
    app.publisher
        .faults
        .inject(Fault::nth(1, Timing::After).on(&["publish"]));
    let events: Vec<_> = (0..80)
        .map(|i| event(&format!("pia-{i}"), "pia", 5, "2025-03-20T10:00:00Z"))
        .collect();
    app.ingest(&events).await.assert_ok("ingest");
    assert_eq!(app.store.unpublished_alerts(10).await.unwrap().len(), 1);
    let report = app.aggregate().await.unwrap();
    assert_eq!(report.alerts_delivered, 1);
    let accepted = app.publisher.accepted("alert");
    assert_eq!(
        accepted.len(),
        2,
        "at-least-once: delivered again after the error"
    );
    assert_eq!(accepted[0], accepted[1], "with the same id");
    assert!(app.store.unpublished_alerts(10).await.unwrap().is_empty());
}
