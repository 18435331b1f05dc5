//! Accounts: versioned subscriptions, plans, price versions and API keys, invoices stored
//! once per period, and tenant isolation.

use std::collections::BTreeSet;
use std::sync::Arc;

use meter_core::domain::{ApiKeyRecord, Invoice, InvoiceStatus, LineItem, PlanName, Role};
use meter_core::limits::{Limits, Metric, Plan, PlanTier};
use meter_core::periods::Period;
use meter_core::store::{RecordOutcome, ReleaseOutcome, Store, StoreError};
use rust_decimal::Decimal;

use crate::fixtures::*;

pub async fn subscription_writes_are_versioned(store: Arc<dyn Store>) {
    let (t, u) = (tenant(), user("pete"));
    let sub = subscription(&t, &u, 1);
    store.put_subscription(&sub, None).await.unwrap();
    assert!(matches!(
        store.put_subscription(&sub, None).await,
        Err(StoreError::VersionConflict)
    ));
    let mut next = sub.clone();
    next.plan = PlanName::parse("enterprise").unwrap();
    next.version = 2;
    store.put_subscription(&next, Some(1)).await.unwrap();
    assert!(matches!(
        store.put_subscription(&next, Some(1)).await,
        Err(StoreError::VersionConflict)
    ));
    assert_eq!(store.get_subscription(&t, &u).await.unwrap(), Some(next));

    // Paging lists every subscription once.
    for i in 0..5 {
        store
            .put_subscription(&subscription(&t, &user(&format!("s{i}")), 1), None)
            .await
            .unwrap();
    }
    let mut seen = BTreeSet::new();
    let mut cursor = None;
    loop {
        let page = store.list_users(cursor, 2).await.unwrap();
        for s in page.items.into_iter().filter(|s| s.tenant == t) {
            assert!(s.subscription.is_some());
            assert!(seen.insert(s.user.to_string()), "listed twice");
        }
        match page.next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen.len(), 6);
}

pub async fn plans_prices_and_keys_round_trip(store: Arc<dyn Store>) {
    let t = tenant();
    assert!(store.create_tenant_if_absent(&t, march()).await.unwrap());
    assert!(!store.create_tenant_if_absent(&t, march()).await.unwrap());

    let mut limits = Limits::default();
    limits
        .0
        .insert(Metric::Calls(Some(provider("gemini"))), Decimal::from(100));
    limits.0.insert(Metric::CostUsd, dec("2.00"));
    let plan = Plan {
        name: PlanName::parse("free").unwrap(),
        tier: PlanTier::Free,
        monthly_price_usd: Decimal::ZERO,
        yearly_price_usd: Decimal::ZERO,
        description: "Free".into(),
        features: vec!["a".into()],
        alert_thresholds: vec![80, 90, 100],
        limits,
        overage_rate: None,
        payment: Default::default(),
        active: true,
    };
    store.put_plan(&t, &plan).await.unwrap();
    assert_eq!(
        store.get_plan(&t, &plan.name).await.unwrap(),
        Some(plan.clone())
    );
    assert_eq!(store.list_plans(&t).await.unwrap(), vec![plan.clone()]);
    assert_eq!(store.list_plans(&tenant()).await.unwrap(), vec![]);
    // Putting a plan again replaces it.
    let changed = Plan {
        description: "Free, changed".into(),
        ..plan.clone()
    };
    store.put_plan(&t, &changed).await.unwrap();
    assert_eq!(store.list_plans(&t).await.unwrap(), vec![changed.clone()]);
    assert_eq!(store.get_plan(&t, &plan.name).await.unwrap(), Some(changed));

    let v1 = serde_json::json!({"id": "openai/gpt-4o@2025", "input": "0.0000025"});
    let v2 = serde_json::json!({"id": "openai/gpt-4o@2025", "input": "0.0000030"});
    store
        .put_price_version(None, "openai/gpt-4o@2025", &v1)
        .await
        .unwrap();
    store
        .put_price_version(Some(&t), "openai/gpt-4o@2025", &v2)
        .await
        .unwrap();
    assert!(store.list_price_versions(None).await.unwrap().contains(&v1));
    assert_eq!(
        store.list_price_versions(Some(&t)).await.unwrap(),
        vec![v2.clone()]
    );
    store
        .put_price_version(Some(&t), "openai/gpt-4o@2025", &v1)
        .await
        .unwrap();
    assert_eq!(store.list_price_versions(Some(&t)).await.unwrap(), vec![v1]);

    let key = ApiKeyRecord {
        hash: "ab".repeat(32),
        tenant: t.clone(),
        role: Role::Admin,
        created_at: march(),
    };
    store.put_api_key(&key).await.unwrap();
    assert_eq!(
        store.get_api_key(&key.hash).await.unwrap(),
        Some(key.clone())
    );
    assert_eq!(store.get_api_key(&"cd".repeat(32)).await.unwrap(), None);
    // Revoking: the deleted record once, then nothing; another key is untouched.
    let other = ApiKeyRecord {
        hash: "ef".repeat(32),
        ..key.clone()
    };
    store.put_api_key(&other).await.unwrap();
    assert_eq!(
        store.delete_api_key(&key.hash).await.unwrap(),
        Some(key.clone())
    );
    assert_eq!(store.get_api_key(&key.hash).await.unwrap(), None);
    assert_eq!(store.delete_api_key(&key.hash).await.unwrap(), None);
    assert_eq!(store.get_api_key(&other.hash).await.unwrap(), Some(other));
}

pub async fn invoices_are_stored_once_per_period(store: Arc<dyn Store>) {
    let (t, u) = (tenant(), user("quinn"));
    let invoice = |start: u32, total: &str| Invoice {
        id: uuid::Uuid::new_v4().to_string(),
        tenant: t.clone(),
        user: u.to_string(),
        period: Period {
            start: at(2025, start, 1, 0),
            end: at(2025, start + 1, 1, 0),
        },
        plan: PlanName::parse("pro").unwrap(),
        base_usd: dec("79"),
        usage_usd: dec("1.234567"),
        overage_usd: Decimal::ZERO,
        proration_usd: Decimal::ZERO,
        adjustments_usd: Decimal::ZERO,
        total_usd: dec(total),
        line_items: vec![LineItem {
            kind: "base".into(),
            description: "Pro".into(),
            amount_usd: dec("79"),
        }],
        status: InvoiceStatus::Pending,
        created_at: at(2025, start + 1, 1, 0),
        published: false,
        extra: Default::default(),
    };
    let feb = invoice(2, "80.23");
    assert!(store.put_invoice_once(&feb).await.unwrap());
    assert!(!store.put_invoice_once(&invoice(2, "99.99")).await.unwrap());
    assert!(store.put_invoice_once(&invoice(3, "81.00")).await.unwrap());
    let list = store.list_invoices(&t, &u).await.unwrap();
    assert_eq!(
        list.iter()
            .map(|i| i.total_usd.to_string())
            .collect::<Vec<_>>(),
        vec!["81.00", "80.23"]
    );
    assert_eq!(list[1], feb);
}

pub async fn tenants_are_isolated(store: Arc<dyn Store>) {
    let (a, b, u) = (tenant(), tenant(), user("same-user"));
    let r = reservation(&a, &u, 1, "0.01", at(2025, 3, 10, 13));
    store.reserve(&r, &[]).await.unwrap();
    assert_eq!(
        store.release_reservation(&b, &r.id).await.unwrap(),
        ReleaseOutcome::NotFound
    );
    assert_eq!(store.get_reservation(&b, &r.id).await.unwrap(), None);
    let al = alert(&a, &u, "k", 0);
    store.create_alert_once(&al).await.unwrap();
    assert!(!store.mark_alert_read(&b, &al.id).await.unwrap());
    assert_eq!(
        store.list_alerts(&b, &u, false, 10).await.unwrap(),
        (vec![], 0)
    );
    store
        .record_events(&[event(&a, &u, "iso-1", 1, "0.01")])
        .await
        .unwrap();
    // The same event id in another tenant is a different event.
    assert_eq!(
        store
            .record_events(&[event(&b, &u, "iso-1", 2, "0.02")])
            .await
            .unwrap(),
        vec![RecordOutcome::Recorded]
    );
    assert_eq!(gemini(&store, &b, &u).await.recorded.tokens, 2);
    assert!(
        store
            .get_event(&b, &meter_core::domain::EventId::parse("iso-1").unwrap())
            .await
            .unwrap()
            .unwrap()
            .counts
            .input_tokens
            == 2
    );
}
