//! Promises added after the review of issue 16: publishing claims on the outbox (each
//! alert and invoice goes out once under overlapping aggregation passes), erasing a user
//! twice keeps every invoice, and API keys are stored and revoked without key material.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use meter_core::domain::{
    Alert, Invoice, InvoiceStatus, LineItem, PlanName, Severity, TenantId, UserId,
};
use meter_core::periods::Period;
use meter_core::store::Store;

use crate::fixtures::{at, dec, march, tenant, user};

/// An unpublished alert of `u` in March.
fn alert(t: &TenantId, u: &UserId) -> Alert {
    Alert {
        id: uuid::Uuid::new_v4().to_string(),
        tenant: t.clone(),
        user: u.clone(),
        period_start: march(),
        key: "calls:gemini@80".into(),
        metric: Some("calls:gemini".into()),
        threshold: Some(80),
        severity: Severity::Info,
        title: "API usage notice - gemini".into(),
        message: "You have used 80 of 100 gemini calls".into(),
        created_at: at(2025, 3, 10, 12),
        read: false,
        published: false,
        org: None,
        budget: None,
    }
}

/// An unpublished invoice of `u` for March 2025 of `total` USD.
fn invoice(t: &TenantId, u: &str, total: &str) -> Invoice {
    let total = dec(total);
    Invoice {
        id: format!("inv_{}", uuid::Uuid::new_v4().simple()),
        tenant: t.clone(),
        user: u.to_owned(),
        period: Period {
            start: march(),
            end: at(2025, 4, 1, 0),
        },
        plan: PlanName::free(),
        base_usd: rust_decimal::Decimal::ZERO,
        usage_usd: total,
        overage_usd: rust_decimal::Decimal::ZERO,
        proration_usd: rust_decimal::Decimal::ZERO,
        adjustments_usd: rust_decimal::Decimal::ZERO,
        total_usd: total,
        line_items: vec![LineItem {
            kind: "usage".into(),
            description: "usage".into(),
            amount_usd: total,
        }],
        status: InvoiceStatus::Pending,
        created_at: at(2025, 4, 1, 1),
        published: false,
        extra: Default::default(),
    }
}

/// The claims' clock: an instant and the end of a 5-minute claim taken then.
fn claim_at(minute: i64) -> (DateTime<Utc>, DateTime<Utc>) {
    let now = at(2025, 4, 1, 1) + Duration::minutes(minute);
    (now, now + Duration::minutes(5))
}

pub async fn concurrent_claims_of_an_unpublished_record_have_exactly_one_winner(
    store: Arc<dyn Store>,
) {
    let (t, u) = (tenant(), user("cleo"));
    let a = alert(&t, &u);
    assert!(store.create_alert_once(&a).await.unwrap());
    let inv = invoice(&t, u.as_str(), "4.20");
    assert!(store.put_invoice_once(&inv).await.unwrap());

    let (now, until) = claim_at(0);
    let mut alerts = Vec::new();
    let mut invoices = Vec::new();
    for _ in 0..16 {
        let (s, t, id) = (store.clone(), t.clone(), a.id.clone());
        alerts.push(tokio::spawn(async move {
            s.claim_alert(&t, &id, now, until).await.unwrap()
        }));
        let (s, inv) = (store.clone(), inv.clone());
        invoices.push(tokio::spawn(async move {
            s.claim_invoice(&inv, now, until).await.unwrap()
        }));
    }
    let mut won = (0, 0);
    for task in alerts {
        won.0 += usize::from(task.await.unwrap());
    }
    for task in invoices {
        won.1 += usize::from(task.await.unwrap());
    }
    assert_eq!(
        won,
        (1, 1),
        "one claimer of the alert and one of the invoice"
    );
}

pub async fn an_expired_or_released_claim_can_be_taken_again(store: Arc<dyn Store>) {
    let (t, u) = (tenant(), user("cleo"));
    let a = alert(&t, &u);
    store.create_alert_once(&a).await.unwrap();
    let inv = invoice(&t, u.as_str(), "4.20");
    store.put_invoice_once(&inv).await.unwrap();

    let (now, first) = claim_at(0);
    assert!(store.claim_alert(&t, &a.id, now, first).await.unwrap());
    assert!(store.claim_invoice(&inv, now, first).await.unwrap());
    // Held for 5 minutes.
    let (later, until) = claim_at(4);
    assert!(!store.claim_alert(&t, &a.id, later, until).await.unwrap());
    assert!(!store.claim_invoice(&inv, later, until).await.unwrap());
    // A crashed publisher's claim expires.
    let (later, second) = claim_at(5);
    assert!(store.claim_alert(&t, &a.id, later, second).await.unwrap());
    assert!(store.claim_invoice(&inv, later, second).await.unwrap());
    // The first claimer, back late, cannot release the claim it no longer holds.
    store.release_alert_claim(&t, &a.id, first).await.unwrap();
    store.release_invoice_claim(&inv, first).await.unwrap();
    let (later, until) = claim_at(6);
    assert!(!store.claim_alert(&t, &a.id, later, until).await.unwrap());
    assert!(!store.claim_invoice(&inv, later, until).await.unwrap());
    // Its holder gives it back (its publish failed): the next claim gets it at once.
    store.release_alert_claim(&t, &a.id, second).await.unwrap();
    store.release_invoice_claim(&inv, second).await.unwrap();
    assert!(store.claim_alert(&t, &a.id, later, until).await.unwrap());
    assert!(store.claim_invoice(&inv, later, until).await.unwrap());
}

pub async fn a_published_record_cannot_be_claimed(store: Arc<dyn Store>) {
    let (t, u) = (tenant(), user("cleo"));
    let a = alert(&t, &u);
    store.create_alert_once(&a).await.unwrap();
    let inv = invoice(&t, u.as_str(), "4.20");
    store.put_invoice_once(&inv).await.unwrap();

    // Published while claimed (the claimer's own mark), and never claimed: both final.
    let (now, until) = claim_at(0);
    assert!(store.claim_alert(&t, &a.id, now, until).await.unwrap());
    store.mark_alert_published(&t, &a.id).await.unwrap();
    store.mark_invoice_published(&inv).await.unwrap();
    for minute in [1, 10] {
        let (now, until) = claim_at(minute);
        assert!(!store.claim_alert(&t, &a.id, now, until).await.unwrap());
        assert!(!store.claim_invoice(&inv, now, until).await.unwrap());
    }
    assert!(store.unpublished_alerts(10).await.unwrap().is_empty());
    assert!(store.unpublished_invoices(10).await.unwrap().is_empty());
    // Unknown records are not claimed either.
    let (now, until) = claim_at(20);
    assert!(!store
        .claim_alert(&t, "no-such-alert", now, until)
        .await
        .unwrap());
    let other = invoice(&t, "nobody", "1.00");
    assert!(!store.claim_invoice(&other, now, until).await.unwrap());
}

/// Erases `u` until done; the records changed.
async fn erase(store: &Arc<dyn Store>, t: &TenantId, u: &UserId, anon: &UserId) -> usize {
    let mut changed = 0;
    for _ in 0..100 {
        let step = store.erase_user(t, u, anon, 50).await.unwrap();
        changed += step.changed;
        if step.done {
            return changed;
        }
    }
    panic!("erasure of {u} never finished");
}

/// (id, total) of the invoices listed for `u`.
async fn invoices_of(store: &Arc<dyn Store>, t: &TenantId, u: &UserId) -> Vec<(String, String)> {
    let mut out: Vec<_> = store
        .list_invoices(t, u)
        .await
        .unwrap()
        .into_iter()
        .map(|i| (i.id, i.total_usd.to_string()))
        .collect();
    out.sort();
    out
}

pub async fn erasing_a_user_twice_keeps_every_invoice_under_the_pseudonym(store: Arc<dyn Store>) {
    let (t, x) = (tenant(), user("xena"));
    let anon = UserId::parse("anon_0123456789abcdef0123456789abcdef").unwrap();
    // March is invoiced, X is erased, comes back, is invoiced for March again (another id,
    // another amount: the first invoice moved away), and is erased again.
    let mut first = invoice(&t, x.as_str(), "4.20");
    first.published = true;
    assert!(store.put_invoice_once(&first).await.unwrap());
    erase(&store, &t, &x, &anon).await;
    let second = invoice(&t, x.as_str(), "7.35");
    assert!(store.put_invoice_once(&second).await.unwrap());
    erase(&store, &t, &x, &anon).await;

    let mut want = vec![
        (first.id.clone(), "4.20".to_owned()),
        (second.id.clone(), "7.35".to_owned()),
    ];
    want.sort();
    assert_eq!(
        invoices_of(&store, &t, &anon).await,
        want,
        "both amounts kept"
    );
    assert!(store.list_invoices(&t, &x).await.unwrap().is_empty());
    let kept = store.list_invoices(&t, &anon).await.unwrap();
    assert!(kept.iter().all(|i| i.user == anon.as_str()));

    // A third erasure changes nothing.
    assert_eq!(erase(&store, &t, &x, &anon).await, 0);
    assert_eq!(invoices_of(&store, &t, &anon).await, want);

    // The second invoice was not published yet: it is still delivered, under the pseudonym.
    let pending = store.unpublished_invoices(100).await.unwrap();
    let moved = pending
        .iter()
        .find(|i| i.id == second.id)
        .expect("the unpublished invoice stays in the outbox");
    assert_eq!(moved.user, anon.as_str());
    let (now, until) = claim_at(0);
    assert!(store.claim_invoice(moved, now, until).await.unwrap());
    store.mark_invoice_published(moved).await.unwrap();
    assert!(!store
        .unpublished_invoices(100)
        .await
        .unwrap()
        .iter()
        .any(|i| i.id == second.id));
    assert_eq!(invoices_of(&store, &t, &anon).await, want);
}

/// Whether `text` holds any 10 consecutive characters of `secret`.
fn holds_a_piece_of(text: &str, secret: &str) -> bool {
    secret
        .as_bytes()
        .windows(10)
        .any(|w| text.contains(std::str::from_utf8(w).unwrap()))
}

pub async fn keys_are_listed_and_revoked_by_id_within_their_tenant(store: Arc<dyn Store>) {
    let (t, other) = (tenant(), tenant());
    let now = at(2025, 3, 1, 9);
    // A 20-character key set by an operator (METER_BOOTSTRAP_ADMIN_KEY) and a generated one.
    let bootstrap = "Operator-SET-Key-20c";
    let admin = meter_core::auth::record_for(bootstrap, &t, meter_core::domain::Role::Admin, now);
    let service = meter_core::auth::generate_key(
        &t,
        meter_core::domain::Role::Service,
        now + Duration::hours(1),
    );
    store.put_api_key(&admin).await.unwrap();
    store.put_api_key(&service.record).await.unwrap();

    let listed = store.list_api_keys(&t).await.unwrap();
    assert_eq!(
        listed,
        vec![admin.clone(), service.record.clone()],
        "oldest first"
    );
    for (key, secret) in [
        (&listed[0], bootstrap),
        (&listed[1], service.secret.as_str()),
    ] {
        assert!(key.id().starts_with("key_") && key.id().len() == 20);
        let shown = format!("{key:?} {}", serde_json::to_string(key).unwrap());
        assert!(!holds_a_piece_of(&shown, secret), "{shown}");
    }
    assert!(store.list_api_keys(&other).await.unwrap().is_empty());

    // Another tenant cannot revoke it by id; an id that is not one revokes nothing.
    assert_eq!(
        store
            .delete_api_key_by_id(&other, &admin.id())
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .delete_api_key_by_id(&t, "key_0000000000000000")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.delete_api_key_by_id(&t, "not-an-id").await.unwrap(),
        None
    );
    assert!(store.get_api_key(&admin.hash).await.unwrap().is_some());

    assert_eq!(
        store.delete_api_key_by_id(&t, &admin.id()).await.unwrap(),
        Some(admin.clone())
    );
    assert_eq!(store.get_api_key(&admin.hash).await.unwrap(), None);
    assert_eq!(
        store.delete_api_key_by_id(&t, &admin.id()).await.unwrap(),
        None
    );
    assert_eq!(
        store.list_api_keys(&t).await.unwrap(),
        vec![service.record.clone()]
    );
    // Revoking by hash drops the key from the listing too.
    assert_eq!(
        store.delete_api_key(&service.record.hash).await.unwrap(),
        Some(service.record.clone())
    );
    assert!(store.list_api_keys(&t).await.unwrap().is_empty());
}
