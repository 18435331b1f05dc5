//! Export and erasure: complete, idempotent, safe under concurrent ingest.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use meter_core::domain::{Invoice, InvoiceStatus, PlanName, TenantId, UserId};
use meter_core::periods::Period;
use meter_core::store::{Store, UserRecords};
use rust_decimal::Decimal;

use crate::fixtures::*;

fn pseudonym(u: &UserId) -> UserId {
    UserId::parse(format!("anon_{u}")).unwrap()
}

async fn erase_all(store: &Arc<dyn Store>, t: &TenantId, u: &UserId) -> usize {
    let mut steps = 0;
    loop {
        steps += 1;
        let p = store.erase_user(t, u, &pseudonym(u), 7).await.unwrap();
        if p.done {
            return steps;
        }
        assert!(steps < 1000, "erasure does not finish");
    }
}

async fn fill(store: &Arc<dyn Store>, t: &TenantId, u: &UserId) -> Invoice {
    let events: Vec<_> = (0..20)
        .map(|i| event(t, u, &format!("x-{u}-{i}"), 10, "0.01"))
        .collect();
    store.record_events(&events).await.unwrap();
    let r = reservation(t, u, 5, "0.02", at(2025, 3, 10, 13));
    store.reserve(&r, &[]).await.unwrap();
    let mut settled = event(t, u, &format!("settle-{u}"), 3, "0.01");
    let r2 = reservation(t, u, 5, "0.02", at(2025, 3, 10, 13));
    store.reserve(&r2, &[]).await.unwrap();
    settled.reservation_id = Some(r2.id.clone());
    store.record_events(&[settled]).await.unwrap();
    let mut a = alert(t, u, "calls:gemini@80", 0);
    a.published = true;
    store.create_alert_once(&a).await.unwrap();
    let invoice = Invoice {
        id: format!("inv-{u}"),
        tenant: t.clone(),
        user: u.to_string(),
        period: Period {
            start: at(2025, 2, 1, 0),
            end: at(2025, 3, 1, 0),
        },
        plan: PlanName::free(),
        base_usd: Decimal::ZERO,
        usage_usd: dec("0.21"),
        overage_usd: Decimal::ZERO,
        proration_usd: Decimal::ZERO,
        adjustments_usd: Decimal::ZERO,
        total_usd: dec("0.21"),
        line_items: Vec::new(),
        status: InvoiceStatus::Pending,
        created_at: at(2025, 3, 1, 1),
        published: true,
        extra: Default::default(),
    };
    assert!(store.put_invoice_once(&invoice).await.unwrap());
    invoice
}

pub async fn export_then_erase_then_export_leaves_only_pseudonymised_invoices(
    store: Arc<dyn Store>,
) {
    let (t, u, other) = (tenant(), user("wendy"), user("xavier"));
    let invoice = fill(&store, &t, &u).await;
    fill(&store, &t, &other).await;

    let before = store.user_records(&t, &u).await.unwrap();
    assert_eq!(before.events.len(), 21);
    assert_eq!(before.periods.len(), 1);
    assert_eq!(
        before.periods[&march()].by_provider[&provider("gemini")]
            .recorded
            .calls,
        21
    );
    assert_eq!(before.daily.len(), 1);
    assert_eq!(before.reservations.len(), 2, "one open, one settled");

    erase_all(&store, &t, &u).await;
    assert_eq!(
        store.user_records(&t, &u).await.unwrap(),
        UserRecords::default()
    );
    assert_eq!(
        store.list_alerts(&t, &u, false, 100).await.unwrap(),
        (vec![], 0)
    );
    assert_eq!(store.get_subscription(&t, &u).await.unwrap(), None);
    assert!(store.list_invoices(&t, &u).await.unwrap().is_empty());
    let kept = store.list_invoices(&t, &pseudonym(&u)).await.unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].user, pseudonym(&u).to_string());
    assert_eq!(kept[0].total_usd, invoice.total_usd);
    let usage = store.get_period_usage(&t, &u, &[march()]).await.unwrap();
    assert_eq!(usage[0], Default::default());

    // Another user is untouched; erasing twice changes nothing more.
    assert_eq!(
        store.user_records(&t, &other).await.unwrap().events.len(),
        21
    );
    let again = store.erase_user(&t, &u, &pseudonym(&u), 7).await.unwrap();
    assert!(again.done);
    assert_eq!(
        store.list_invoices(&t, &pseudonym(&u)).await.unwrap().len(),
        1
    );
}

pub async fn erasure_during_concurrent_ingest_completes_once_traffic_stops(store: Arc<dyn Store>) {
    let (t, u) = (tenant(), user("yara"));
    fill(&store, &t, &u).await;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (store, t, u, stop) = (store.clone(), t.clone(), u.clone(), stop.clone());
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let e = event(&t, &u, &format!("live-{i}"), 1, "0.001");
                store.record_events(&[e]).await.unwrap();
                i += 1;
            }
            i
        })
    };
    // Erasure steps while events keep arriving: each succeeds (it may never be "done"
    // while the traffic goes on).
    for _ in 0..30 {
        store.erase_user(&t, &u, &pseudonym(&u), 7).await.unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    let written = writer.await.unwrap();
    assert!(written > 0);
    // Once the traffic stops, one more erasure leaves nothing.
    erase_all(&store, &t, &u).await;
    assert_eq!(
        store.user_records(&t, &u).await.unwrap(),
        UserRecords::default()
    );
}
