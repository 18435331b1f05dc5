//! Billing promises of the port: users listed for the aggregation, periods closed into
//! exactly one invoice, late usage and re-pricing billed once through adjustments.

use std::collections::BTreeSet;
use std::sync::Arc;

use meter_core::domain::{Invoice, InvoiceStatus, LineItem, PlanName, TenantId, UserId};
use meter_core::periods::Period;
use meter_core::store::{Adjustment, BillingState, CloseOutcome, Store};
use rust_decimal::Decimal;

use crate::fixtures::*;

fn period(month: u32) -> Period {
    Period {
        start: at(2025, month, 1, 0),
        end: at(2025, month + 1, 1, 0),
    }
}

/// An invoice for `state` (the amounts do not matter to the store).
fn invoice_for(state: &BillingState, month: u32) -> Invoice {
    let usage: Decimal = state
        .usage
        .by_provider
        .values()
        .map(|p| p.recorded.cost_usd)
        .sum();
    Invoice {
        id: uuid::Uuid::new_v4().to_string(),
        tenant: state.tenant.clone(),
        user: state.user.to_string(),
        period: period(month),
        plan: PlanName::free(),
        base_usd: Decimal::ZERO,
        usage_usd: usage,
        overage_usd: Decimal::ZERO,
        proration_usd: Decimal::ZERO,
        adjustments_usd: state.adjustments.values().map(|a| a.cost_usd).sum(),
        total_usd: usage,
        line_items: vec![LineItem {
            kind: "usage".into(),
            description: "usage".into(),
            amount_usd: usage,
        }],
        status: InvoiceStatus::Pending,
        created_at: at(2025, month + 1, 1, 1),
        published: false,
        extra: Default::default(),
    }
}

async fn state(store: &Arc<dyn Store>, t: &TenantId, u: &UserId, month: u32) -> BillingState {
    store
        .billing_state(t, u, at(2025, month, 1, 0))
        .await
        .unwrap()
}

fn unpriced(t: &TenantId, u: &UserId, id: &str) -> meter_core::domain::UsageEvent {
    let mut e = event(t, u, id, 1000, "0");
    e.cost_usd = None;
    e.price_version = None;
    e
}

pub async fn users_with_a_subscription_or_usage_are_listed_once(store: Arc<dyn Store>) {
    let t = tenant();
    for i in 0..5 {
        store
            .record_events(&[event(
                &t,
                &user(&format!("ev{i}")),
                &format!("e{i}"),
                1,
                "0.1",
            )])
            .await
            .unwrap();
    }
    let mut seen = BTreeSet::new();
    let mut cursor = None;
    loop {
        let page = store.list_users(cursor, 2).await.unwrap();
        assert!(page.items.len() <= 2);
        for r in page.items.into_iter().filter(|r| r.tenant == t) {
            assert!(r.subscription.is_none());
            assert!(seen.insert(r.user.to_string()), "listed twice");
        }
        match page.next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5);
}

pub async fn closing_a_period_stores_one_invoice_and_moves_billed_to(store: Arc<dyn Store>) {
    let (t, u) = (tenant(), user("rita"));
    let events: Vec<_> = (0..3)
        .map(|i| event(&t, &u, &format!("c{i}"), 10, "0.0000001"))
        .collect();
    store.record_events(&events).await.unwrap();

    let s = state(&store, &t, &u, 3).await;
    assert_eq!(s.billed_to, None);
    assert!(s.adjustments.is_empty());
    assert_eq!(
        s.usage.by_provider[&provider("gemini")].recorded.cost_usd,
        dec("0.0000003")
    );
    let inv = invoice_for(&s, 3);
    assert_eq!(
        store.close_period(&inv, &s, inv.period.end).await.unwrap(),
        CloseOutcome::Closed
    );
    // The same close again, or another invoice for the period: nothing changes.
    assert_eq!(
        store
            .close_period(&invoice_for(&s, 3), &s, invoice_for(&s, 3).period.end)
            .await
            .unwrap(),
        CloseOutcome::AlreadyInvoiced
    );
    assert_eq!(
        store.list_invoices(&t, &u).await.unwrap(),
        vec![inv.clone()]
    );
    assert_eq!(
        state(&store, &t, &u, 4).await.billed_to,
        Some(at(2025, 4, 1, 0))
    );

    // The new invoice waits in the outbox until published.
    let waiting = store.unpublished_invoices(100).await.unwrap();
    assert!(waiting.iter().any(|i| i.id == inv.id));
    store.mark_invoice_published(&inv).await.unwrap();
    let waiting = store.unpublished_invoices(100).await.unwrap();
    assert!(!waiting.iter().any(|i| i.id == inv.id));
    assert!(store.list_invoices(&t, &u).await.unwrap()[0].published);
}

pub async fn concurrent_closes_store_one_invoice(store: Arc<dyn Store>) {
    let (t, u) = (tenant(), user("sam"));
    store
        .record_events(&[event(&t, &u, "x1", 10, "1.25")])
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (store, t, u) = (store.clone(), t.clone(), u.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let s = state(&store, &t, &u, 3).await;
                match store
                    .close_period(&invoice_for(&s, 3), &s, invoice_for(&s, 3).period.end)
                    .await
                    .unwrap()
                {
                    CloseOutcome::Changed => continue,
                    other => return other,
                }
            }
        }));
    }
    let mut closed = 0;
    for task in tasks {
        if task.await.unwrap() == CloseOutcome::Closed {
            closed += 1;
        }
    }
    assert_eq!(closed, 1);
    assert_eq!(store.list_invoices(&t, &u).await.unwrap().len(), 1);
}

pub async fn a_close_over_a_stale_state_changes_nothing(store: Arc<dyn Store>) {
    let (t, u) = (tenant(), user("tom"));
    store
        .record_events(&[event(&t, &u, "s1", 10, "1")])
        .await
        .unwrap();
    let stale = state(&store, &t, &u, 3).await;
    store
        .record_events(&[event(&t, &u, "s2", 10, "2")])
        .await
        .unwrap();
    assert_eq!(
        store
            .close_period(
                &invoice_for(&stale, 3),
                &stale,
                invoice_for(&stale, 3).period.end
            )
            .await
            .unwrap(),
        CloseOutcome::Changed
    );
    assert!(store.list_invoices(&t, &u).await.unwrap().is_empty());
    let fresh = state(&store, &t, &u, 3).await;
    assert_ne!(fresh.version, stale.version);
    let inv = invoice_for(&fresh, 3);
    assert_eq!(inv.usage_usd, dec("3"));
    assert_eq!(
        store
            .close_period(&inv, &fresh, inv.period.end)
            .await
            .unwrap(),
        CloseOutcome::Closed
    );
}

pub async fn late_events_are_billed_once_as_adjustments(store: Arc<dyn Store>) {
    let (t, u) = (tenant(), user("uma"));
    store
        .record_events(&[event(&t, &u, "m1", 10, "1")])
        .await
        .unwrap();
    let s = state(&store, &t, &u, 3).await;
    store
        .close_period(&invoice_for(&s, 3), &s, invoice_for(&s, 3).period.end)
        .await
        .unwrap();

    // An event of March arrives after March was invoiced: counted in March, billed later.
    store
        .record_events(&[event(&t, &u, "m2", 10, "0.5")])
        .await
        .unwrap();
    let march = state(&store, &t, &u, 3).await;
    assert_eq!(
        march.usage.by_provider[&provider("gemini")]
            .recorded
            .cost_usd,
        dec("1.5")
    );
    let april = state(&store, &t, &u, 4).await;
    assert_eq!(
        april.adjustments.get(&at(2025, 3, 1, 0)),
        Some(&Adjustment {
            events: 1,
            cost_usd: dec("0.5")
        })
    );
    // A late event after the state was read makes the close retry.
    store
        .record_events(&[event(&t, &u, "m3", 10, "0.25")])
        .await
        .unwrap();
    assert_eq!(
        store
            .close_period(
                &invoice_for(&april, 4),
                &april,
                invoice_for(&april, 4).period.end
            )
            .await
            .unwrap(),
        CloseOutcome::Changed
    );
    let april = state(&store, &t, &u, 4).await;
    assert_eq!(april.adjustments[&at(2025, 3, 1, 0)].cost_usd, dec("0.75"));
    assert_eq!(
        store
            .close_period(
                &invoice_for(&april, 4),
                &april,
                invoice_for(&april, 4).period.end
            )
            .await
            .unwrap(),
        CloseOutcome::Closed
    );
    // Consumed: the next period has nothing pending.
    let may = state(&store, &t, &u, 5).await;
    assert!(may.adjustments.is_empty(), "{:?}", may.adjustments);
    assert_eq!(may.billed_to, Some(at(2025, 5, 1, 0)));
}

pub async fn repricing_moves_counters_rollups_and_adjustments_exactly(store: Arc<dyn Store>) {
    let (t, u) = (tenant(), user("vera"));
    let first = unpriced(&t, &u, "p1");
    store
        .record_events(std::slice::from_ref(&first))
        .await
        .unwrap();
    let listed = store.unpriced_events(None, 1000).await.unwrap();
    assert!(listed.items.iter().any(|e| e.event_id == first.event_id));

    assert!(store
        .price_event(&t, &first.event_id, dec("0.0125"), "v1")
        .await
        .unwrap());
    assert!(!store
        .price_event(&t, &first.event_id, dec("0.0125"), "v1")
        .await
        .unwrap());
    let stored = store.get_event(&t, &first.event_id).await.unwrap().unwrap();
    assert_eq!(stored.cost_usd, Some(dec("0.0125")));
    assert_eq!(stored.price_version.as_deref(), Some("v1"));
    let g = state(&store, &t, &u, 3).await.usage.by_provider[&provider("gemini")].clone();
    assert_eq!(
        (g.recorded.cost_usd, g.unpriced_calls, g.recorded.calls),
        (dec("0.0125"), 0, 1)
    );
    let day = first.timestamp.date_naive();
    let days = store.daily_usage(&t, &u, day, day).await.unwrap();
    assert_eq!(
        days[0].by_provider[&provider("gemini")].cost_usd,
        dec("0.0125")
    );
    let listed = store.unpriced_events(None, 1000).await.unwrap();
    assert!(!listed.items.iter().any(|e| e.event_id == first.event_id));

    // Re-pricing an event of an invoiced period lands in the adjustments.
    let late = unpriced(&t, &u, "p2");
    store
        .record_events(std::slice::from_ref(&late))
        .await
        .unwrap();
    let s = state(&store, &t, &u, 3).await;
    store
        .close_period(&invoice_for(&s, 3), &s, invoice_for(&s, 3).period.end)
        .await
        .unwrap();
    assert!(store
        .price_event(&t, &late.event_id, dec("2"), "v1")
        .await
        .unwrap());
    let april = state(&store, &t, &u, 4).await;
    assert_eq!(
        april.adjustments.get(&at(2025, 3, 1, 0)),
        Some(&Adjustment {
            events: 1,
            cost_usd: dec("2")
        })
    );
}

pub async fn job_cursors_round_trip(store: Arc<dyn Store>) {
    let job = format!("aggregate-{}", uuid::Uuid::new_v4().simple());
    assert_eq!(store.get_job_cursor(&job).await.unwrap(), None);
    store.put_job_cursor(&job, Some("abc")).await.unwrap();
    assert_eq!(
        store.get_job_cursor(&job).await.unwrap().as_deref(),
        Some("abc")
    );
    store.put_job_cursor(&job, None).await.unwrap();
    assert_eq!(store.get_job_cursor(&job).await.unwrap(), None);
}
