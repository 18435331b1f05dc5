//! Fresh stores, test data and the reads the tests share.

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use meter_core::domain::{
    Alert, EventId, PlanName, ProviderId, Reservation, ReservationStatus, Severity, Subscription,
    SubscriptionStatus, TenantId, UsageEvent, UserId,
};
use meter_core::limits::Metric;
use meter_core::periods::{Anchor, BillingCycle, Period};
use meter_core::store::{Guard, Store};
use meter_core::usage::{PeriodUsage, ProviderUsage, Tally, UsageCounts};
use rust_decimal::Decimal;

/// A fresh SQLite store in its own temporary directory (kept alive for the process).
pub async fn sqlite_store() -> Arc<dyn Store> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("meter.db");
    // The directory must outlive the store; tests are short-lived processes.
    std::mem::forget(dir);
    Arc::new(meter_core::store::sqlite::SqliteStore::open(&path).expect("open sqlite store"))
}

/// A fresh table on the emulator that `scripts/with-moto` started.
#[cfg(feature = "emulator")]
pub async fn dynamo_store() -> Arc<dyn Store> {
    use meter_core::store::dynamo;
    assert!(
        std::env::var("AWS_ENDPOINT_URL").is_ok(),
        "DynamoDB conformance tests need the emulator: run them through scripts/with-moto (see README)"
    );
    let client = dynamo::client_from_env().await;
    let table = format!("meter-test-{}", uuid::Uuid::new_v4().simple());
    dynamo::create_table(&client, &table)
        .await
        .expect("create table");
    Arc::new(dynamo::DynamoStore::new(client, table))
}

pub fn tenant() -> TenantId {
    TenantId::parse(format!("t-{}", uuid::Uuid::new_v4().simple())).unwrap()
}

pub fn user(name: &str) -> UserId {
    UserId::parse(name).unwrap()
}

pub fn provider(name: &str) -> ProviderId {
    ProviderId::parse(name).unwrap()
}

pub fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
}

/// The period start used by most tests.
pub fn march() -> DateTime<Utc> {
    at(2025, 3, 1, 0)
}

pub fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

/// A priced gemini event in March 2025 with `tokens` input tokens and the given cost.
pub fn event(tenant: &TenantId, user: &UserId, id: &str, tokens: u64, cost: &str) -> UsageEvent {
    UsageEvent {
        tenant: tenant.clone(),
        user: user.clone(),
        event_id: EventId::parse(id).unwrap(),
        fingerprint: format!("fp-{id}-{tokens}-{cost}"),
        provider: provider("gemini"),
        model: Some(meter_core::domain::ModelId::parse("gemini-2.5-flash").unwrap()),
        timestamp: at(2025, 3, 10, 12),
        period_start: march(),
        counts: UsageCounts {
            input_tokens: tokens,
            ..UsageCounts::default()
        },
        cost_usd: Some(dec(cost)),
        price_version: Some("gemini/gemini-2.5-flash@2025-01-01".into()),
        estimated: false,
        endpoint: None,
        status_code: Some(200),
        latency_ms: None,
        reservation_id: None,
        metadata: None,
        recorded_at: at(2025, 3, 10, 12),
    }
}

/// A held reservation of one gemini call with `tokens` tokens and `cost`, expiring at `expires`.
pub fn reservation(
    tenant: &TenantId,
    user: &UserId,
    tokens: u64,
    cost: &str,
    expires: DateTime<Utc>,
) -> Reservation {
    Reservation {
        id: Reservation::new_id(user),
        tenant: tenant.clone(),
        user: user.clone(),
        provider: provider("gemini"),
        period_start: march(),
        held: Tally {
            calls: 1,
            tokens,
            cost_usd: dec(cost),
        },
        status: ReservationStatus::Held,
        created_at: at(2025, 3, 10, 12),
        expires_at: expires,
    }
}

/// The March 2025 usage of `u`.
pub async fn march_usage(store: &Arc<dyn Store>, t: &TenantId, u: &UserId) -> PeriodUsage {
    store
        .get_period_usage(t, u, &[march()])
        .await
        .unwrap()
        .remove(0)
}

/// `u`'s gemini usage in March 2025 (zero when there is none).
pub async fn gemini(store: &Arc<dyn Store>, t: &TenantId, u: &UserId) -> ProviderUsage {
    march_usage(store, t, u)
        .await
        .by_provider
        .get(&provider("gemini"))
        .cloned()
        .unwrap_or_default()
}

/// A guard of `limit` gemini calls, one call per reservation.
pub fn calls_guard(limit: u64) -> Guard {
    Guard {
        metric: Metric::Calls(Some(provider("gemini"))),
        increment: Decimal::ONE,
        limit: Decimal::from(limit),
        strict: false,
    }
}

/// An unpublished March alert for `key`, created `minute` minutes after 2025-03-10 12:00.
pub fn alert(t: &TenantId, u: &UserId, key: &str, minute: i64) -> Alert {
    Alert {
        id: uuid::Uuid::new_v4().to_string(),
        tenant: t.clone(),
        user: u.clone(),
        period_start: march(),
        key: key.into(),
        metric: Some("calls:gemini".into()),
        threshold: Some(80),
        severity: Severity::Info,
        title: "API usage notice - gemini".into(),
        message: "You have used 80 of 100 gemini calls".into(),
        created_at: at(2025, 3, 10, 12) + Duration::minutes(minute),
        read: false,
        published: false,
    }
}

/// A monthly pro subscription started on 2025-01-`anchor_day`, in its March period.
pub fn subscription(t: &TenantId, u: &UserId, anchor_day: u32) -> Subscription {
    Subscription {
        tenant: t.clone(),
        user: u.clone(),
        plan: PlanName::parse("pro").unwrap(),
        cycle: BillingCycle::Monthly,
        anchor: Anchor::Anniversary,
        started_at: at(2025, 1, anchor_day, 0),
        current_period: Period {
            start: at(2025, 3, anchor_day, 0),
            end: at(2025, 4, anchor_day, 0),
        },
        status: SubscriptionStatus::Active,
        auto_renew: true,
        pending_plan: None,
        prorations: Vec::new(),
        version: 1,
        updated_at: at(2025, 1, anchor_day, 0),
    }
}
