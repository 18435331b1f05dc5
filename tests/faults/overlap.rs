//! Overlapping aggregation passes (several `meter serve --table` processes each run one a
//! minute; a pass delivers what it creates at once and retries the outbox at its end) and
//! the requests that raise alerts all deliver the outbox. With a slow alert
//! port, each invoice and alert is still published once: a publisher claims a record
//! before publishing it, and only the claimer publishes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use meter_core::testing::instant;

use crate::helpers::{event, spawn_app, App};

/// How often each id was accepted by the alert port.
fn counts(ids: Vec<String>) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for id in ids {
        *out.entry(id).or_default() += 1;
    }
    out
}

/// Two passes at once, each in its own task, while a third process's pass keeps retrying
/// the invoice outbox; the invoices the passes created.
async fn overlapping_passes(app: &App) -> usize {
    let opts = meter_core::service::aggregate::AggregateOptions {
        grace: chrono::Duration::zero(),
        ..Default::default()
    };
    let passes: Vec<_> = (0..2)
        .map(|_| {
            let (meter, opts) = (app.meter.clone(), opts.clone());
            tokio::spawn(async move { meter.aggregate(&opts).await.unwrap() })
        })
        .collect();
    let done = Arc::new(AtomicBool::new(false));
    let outbox = {
        let (meter, done) = (app.meter.clone(), done.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::SeqCst) {
                meter.deliver_invoices(100).await.unwrap();
                tokio::task::yield_now().await;
            }
        })
    };
    let mut created = 0;
    for pass in passes {
        created += pass.await.unwrap().invoices_created;
    }
    done.store(true, Ordering::SeqCst);
    outbox.await.unwrap();
    created
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn overlapping_passes_publish_each_invoice_once_with_a_slow_alert_port() {
    let app = spawn_app("2025-03-20T12:00:00Z").await;
    let users: Vec<String> = (0..24).map(|i| format!("inez-{i}")).collect();
    for user in &users {
        let e = event(&format!("{user}-1"), user, 40, "2025-03-20T10:00:00Z");
        app.ingest(&[e]).await.assert_ok("ingest");
    }
    app.publisher
        .faults
        .slow("publish", Duration::from_millis(20));
    app.set_now(instant("2025-04-01T00:05:00Z"));

    assert_eq!(
        overlapping_passes(&app).await,
        users.len(),
        "one invoice per user"
    );
    let published = counts(app.publisher.accepted("invoice.created"));
    assert_eq!(published.len(), users.len());
    assert!(
        published.values().all(|&n| n == 1),
        "an invoice went out more than once: {published:?}"
    );
    assert!(app
        .store
        .unpublished_invoices(100)
        .await
        .unwrap()
        .is_empty());
    let again = app.aggregate().await.unwrap();
    assert_eq!(again.invoices_delivered, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn alerts_raised_by_requests_during_passes_are_published_once() {
    let app = spawn_app("2025-03-20T12:00:00Z").await;
    app.publisher
        .faults
        .slow("publish", Duration::from_millis(20));
    let done = AtomicBool::new(false);
    // Requests cross 80 % and 90 % of the Free plan's gemini calls while passes run.
    let ingest = async {
        for u in 0..6 {
            let user = format!("ivo-{u}");
            for chunk in 0..3 {
                let events: Vec<_> = (0..30)
                    .map(|i| {
                        let n = chunk * 30 + i;
                        event(&format!("{user}-{n}"), &user, 5, "2025-03-20T10:00:00Z")
                    })
                    .collect();
                app.ingest(&events).await.assert_ok("ingest");
            }
        }
        done.store(true, Ordering::SeqCst);
    };
    // The outbox retry of passes, back to back until the requests are done.
    let passes = async {
        while !done.load(Ordering::SeqCst) {
            app.meter.retry_outbox(100).await.unwrap();
            tokio::task::yield_now().await;
        }
    };
    tokio::join!(ingest, passes);
    app.aggregate().await.unwrap();

    let published = counts(app.publisher.accepted("alert"));
    assert_eq!(published.len(), 12, "two alerts for each of 6 users");
    assert!(
        published.values().all(|&n| n == 1),
        "an alert went out more than once: {published:?}"
    );
    assert!(app.store.unpublished_alerts(100).await.unwrap().is_empty());
}
