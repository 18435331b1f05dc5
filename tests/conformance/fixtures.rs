//! Fresh stores and test data.

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use meter_core::domain::{
    EventId, ProviderId, Reservation, ReservationStatus, TenantId, UsageEvent, UserId,
};
use meter_core::store::Store;
use meter_core::usage::{Tally, UsageCounts};
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
    let client = meter_core::config::dynamo_client().await;
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
