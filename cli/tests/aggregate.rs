//! `meter aggregate --at` over the SQLite store (and the DynamoDB emulator with the
//! `emulator` feature): a month of events becomes one invoice equal to their exact sum, a
//! second pass changes nothing, two concurrent passes create one invoice.

use std::process::Command;
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use meter_core::domain::{EventId, ModelId, ProviderId, TenantId, UsageEvent, UserId};
use meter_core::store::Store;
use meter_core::usage::UsageCounts;
use rust_decimal::Decimal;
use serde_json::Value;

fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
}

/// `n` priced events of `user` in the month starting at `month`, with exact odd costs.
fn events(user: &UserId, month: DateTime<Utc>, n: usize) -> Vec<UsageEvent> {
    (0..n)
        .map(|i| {
            let ts = month + chrono::Duration::hours(1 + 7 * i as i64);
            UsageEvent {
                tenant: TenantId::parse("default").unwrap(),
                user: user.clone(),
                event_id: EventId::parse(format!("{user}-{}-{i}", month.date_naive())).unwrap(),
                fingerprint: format!("fp-{i}"),
                provider: ProviderId::parse("gemini").unwrap(),
                model: Some(ModelId::parse("gemini-2.5-flash").unwrap()),
                timestamp: ts,
                period_start: month,
                counts: UsageCounts {
                    input_tokens: 100 + i as u64,
                    ..UsageCounts::default()
                },
                cost_usd: Some(Decimal::new(3 * i as i64 + 7, 7)),
                price_version: Some("gemini/gemini-2.5-flash@2025-01-01T00:00:00Z".into()),
                estimated: false,
                endpoint: None,
                status_code: Some(200),
                latency_ms: Some(120),
                reservation_id: None,
                metadata: None,
                recorded_at: ts,
                org_id: None,
                team_id: None,
                payer: None,
            }
        })
        .collect()
}

fn aggregate(store_args: &[String], at: &str) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_meter"))
        .arg("aggregate")
        .args(store_args)
        .args(["--at", at])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

fn report(child: std::process::Child) -> Value {
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "meter aggregate failed");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The scenario, for a store the test can write to and the CLI arguments naming it.
async fn scenario(store: Arc<dyn Store>, store_args: Vec<String>) {
    let tenant = TenantId::parse("default").unwrap();
    meter_core::service::bootstrap::bootstrap(store.as_ref(), &tenant, None, at(2025, 3, 1, 0))
        .await
        .unwrap();
    let user = UserId::parse(format!("cli-{}", uuid::Uuid::new_v4().simple())).unwrap();
    let march = events(&user, at(2025, 3, 1, 0), 90);
    let expected: Decimal = march.iter().filter_map(|e| e.cost_usd).sum();
    store.record_events(&march).await.unwrap();

    let first = report(aggregate(&store_args, "2025-04-01T01:00:00Z"));
    assert!(first["invoices_created"].as_u64().unwrap() >= 1, "{first}");
    let invoices = store.list_invoices(&tenant, &user).await.unwrap();
    assert_eq!(invoices.len(), 1);
    assert_eq!(invoices[0].usage_usd, expected);
    assert_eq!(
        invoices[0].total_usd,
        expected.round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
    );

    let second = report(aggregate(&store_args, "2025-04-01T02:00:00Z"));
    assert_eq!(second["invoices_created"], 0, "{second}");
    assert_eq!(store.list_invoices(&tenant, &user).await.unwrap(), invoices);

    // April's events, then two passes at once: one more invoice.
    store
        .record_events(&events(&user, at(2025, 4, 1, 0), 30))
        .await
        .unwrap();
    let a = aggregate(&store_args, "2025-05-01T01:00:00Z");
    let b = aggregate(&store_args, "2025-05-01T01:00:00Z");
    let (a, b) = (report(a), report(b));
    let created = a["invoices_created"].as_u64().unwrap() + b["invoices_created"].as_u64().unwrap();
    assert!(created >= 1, "{a} {b}");
    let invoices = store.list_invoices(&tenant, &user).await.unwrap();
    assert_eq!(invoices.len(), 2, "one invoice per period");
    assert_eq!(invoices[0].period.start, at(2025, 4, 1, 0));
}

#[tokio::test]
async fn aggregate_at_closes_a_month_into_one_exact_invoice_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meter.db");
    let store: Arc<dyn Store> =
        Arc::new(meter_core::store::sqlite::SqliteStore::open(&path).unwrap());
    scenario(
        store,
        vec!["--db".into(), path.to_string_lossy().into_owned()],
    )
    .await;
}

#[cfg(feature = "emulator")]
#[tokio::test]
async fn aggregate_at_closes_a_month_into_one_exact_invoice_on_dynamodb() {
    assert!(
        std::env::var("AWS_ENDPOINT_URL").is_ok(),
        "run through scripts/with-moto (see README)"
    );
    let client = meter_core::config::dynamo_client().await;
    let table = format!("meter-agg-{}", uuid::Uuid::new_v4().simple());
    meter_core::store::dynamo::create_table(&client, &table)
        .await
        .unwrap();
    let store: Arc<dyn Store> = Arc::new(meter_core::store::dynamo::DynamoStore::new(
        client,
        table.clone(),
    ));
    scenario(store, vec!["--table".into(), table]).await;
}
