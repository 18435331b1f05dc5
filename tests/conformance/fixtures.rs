//! Fresh stores, a fresh tenant per test, and the reads the tests share; the sample
//! records (one gemini user's March 2025) come from `meter_core::testing`.

use std::sync::Arc;

use meter_core::domain::{TenantId, UserId};
use meter_core::limits::Metric;
use meter_core::store::{Guard, Store};
use meter_core::usage::{PeriodUsage, ProviderUsage};
use rust_decimal::Decimal;

pub use meter_core::testing::{
    alert, at, dec, event, march, provider, reservation, subscription, user,
};

/// A fresh store, and what must outlive it (the SQLite file's directory).
pub struct Fresh {
    pub store: Arc<dyn Store>,
    _dir: Option<tempfile::TempDir>,
}

/// A fresh SQLite store in its own temporary directory.
pub async fn sqlite_store() -> Fresh {
    let (dir, store) = meter_core::testing::sqlite_store();
    Fresh {
        store: Arc::new(store),
        _dir: Some(dir),
    }
}

/// A fresh table on the emulator that `scripts/with-moto` started.
#[cfg(feature = "emulator")]
pub async fn dynamo_store() -> Fresh {
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
    Fresh {
        store: Arc::new(dynamo::DynamoStore::new(client, table)),
        _dir: None,
    }
}

/// A new tenant on every call: tests read the outbox and the user list (which span
/// tenants) through their own tenant, and isolation tests take two.
pub fn tenant() -> TenantId {
    TenantId::parse(format!("t-{}", uuid::Uuid::new_v4().simple())).unwrap()
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
