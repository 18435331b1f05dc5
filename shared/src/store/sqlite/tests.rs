//! Unit tests of the SQLite adapter: the exact-decimal functions, migrations, reopening,
//! index use, and edges of the port the conformance suite (tests/conformance, run on both
//! adapters) does not reach: a failing write inside a committed group, the guard SQL's
//! boundaries, expiry limits, alert order by time rather than insertion, upserts.

use std::sync::Arc;

use chrono::{Duration, NaiveDate, TimeZone, Utc};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

use super::*;
use crate::domain::{InvoiceStatus, ProviderId, ReservationStatus, Severity, SubscriptionStatus};
use crate::limits::Metric;
use crate::periods::{Anchor, BillingCycle, Period};
use crate::usage::{Tally, UsageCounts};

fn tmp() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("meter.db")).unwrap();
    (dir, store)
}

fn tenant() -> TenantId {
    TenantId::parse("acme").unwrap()
}

fn user(u: &str) -> UserId {
    UserId::parse(u).unwrap()
}

fn provider(p: &str) -> ProviderId {
    ProviderId::parse(p).unwrap()
}

fn period_start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap()
}

fn event(u: &str, id: &str, cost: Option<Decimal>) -> UsageEvent {
    UsageEvent {
        tenant: tenant(),
        user: user(u),
        event_id: EventId::parse(id).unwrap(),
        fingerprint: format!("fp-{id}"),
        provider: provider("gemini"),
        model: None,
        timestamp: Utc.with_ymd_and_hms(2026, 11, 5, 12, 0, 0).unwrap()
            + Duration::nanoseconds(123_456_789),
        period_start: period_start(),
        counts: UsageCounts {
            input_tokens: 100,
            output_tokens: 20,
            ..UsageCounts::default()
        },
        cost_usd: cost,
        price_version: None,
        estimated: false,
        endpoint: None,
        status_code: Some(200),
        latency_ms: Some(40),
        reservation_id: None,
        metadata: None,
        recorded_at: Utc.with_ymd_and_hms(2026, 11, 5, 12, 0, 1).unwrap(),
    }
}

fn reservation(u: &str, held: Tally) -> Reservation {
    let user = user(u);
    Reservation {
        id: Reservation::new_id(&user),
        tenant: tenant(),
        user,
        provider: provider("gemini"),
        period_start: period_start(),
        held,
        status: ReservationStatus::Held,
        created_at: Utc.with_ymd_and_hms(2026, 11, 5, 12, 0, 0).unwrap(),
        expires_at: Utc.with_ymd_and_hms(2026, 11, 5, 12, 5, 0).unwrap(),
    }
}

fn one_call() -> Tally {
    Tally {
        calls: 1,
        tokens: 0,
        cost_usd: Decimal::ZERO,
    }
}

fn calls_guard(limit: u32) -> Guard {
    Guard {
        metric: Metric::Calls(Some(provider("gemini"))),
        increment: Decimal::ONE,
        limit: Decimal::from(limit),
        strict: false,
    }
}

async fn usage_of(store: &SqliteStore, u: &str) -> crate::usage::ProviderUsage {
    let usage = store
        .get_period_usage(&tenant(), &user(u), &[period_start()])
        .await
        .unwrap();
    usage[0]
        .by_provider
        .get(&provider("gemini"))
        .cloned()
        .unwrap_or_default()
}

fn subscription(u: &str, version: u64) -> Subscription {
    let start = period_start();
    Subscription {
        tenant: tenant(),
        user: user(u),
        plan: PlanName::parse("pro").unwrap(),
        cycle: BillingCycle::Monthly,
        anchor: Anchor::Calendar,
        started_at: start,
        current_period: Period {
            start,
            end: Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap(),
        },
        status: SubscriptionStatus::Active,
        auto_renew: true,
        pending_plan: None,
        prorations: Vec::new(),
        history: Vec::new(),
        version,
        updated_at: start,
    }
}

fn alert(u: &str, id: &str, key: &str, minute: u32) -> Alert {
    Alert {
        id: id.to_owned(),
        tenant: tenant(),
        user: user(u),
        period_start: period_start(),
        key: key.to_owned(),
        metric: Some("calls:gemini".to_owned()),
        threshold: Some(80),
        severity: Severity::Info,
        title: "80 % of calls".to_owned(),
        message: "…".to_owned(),
        created_at: Utc.with_ymd_and_hms(2026, 11, 5, 12, minute, 0).unwrap(),
        read: false,
        published: false,
    }
}

// ---- exact decimal functions -------------------------------------------------------

fn scalar(sql: &str) -> Result<String, StoreError> {
    let conn = Connection::open_in_memory().unwrap();
    decimal::register(&conn).unwrap();
    conn.query_row(&format!("SELECT CAST(({sql}) AS TEXT)"), [], |r| {
        r.get::<_, String>(0)
    })
    .map_err(StoreError::from)
}

#[test]
fn decimal_functions_are_exact() {
    let cases = [
        ("dec_add('0.1', '0.2')", "0.3"),
        ("dec_add('0.0008125', '0.0000001')", "0.0008126"),
        ("dec_add(1, '0.50')", "1.5"),
        ("dec_add('1.10', '-1.1')", "0"),
        ("dec_sub('2', '0.0000000000000000000000000001')", "1.9999999999999999999999999999"),
        ("dec_cmp('0.30', '0.3')", "0"),
        ("dec_cmp(dec_add('0.1', '0.2'), '0.3')", "0"),
        ("dec_cmp('10', '9.99')", "1"),
        ("dec_cmp(49, '50')", "-1"),
        ("int_add(2, 3)", "5"),
        ("(SELECT dec_sum(x) FROM (SELECT '0.1' AS x UNION ALL SELECT '0.2' UNION ALL SELECT 3))", "3.3"),
        ("(SELECT dec_sum(x) FROM (SELECT '1' AS x WHERE 0))", "0"),
    ];
    for (sql, want) in cases {
        assert_eq!(scalar(sql).unwrap(), want, "{sql}");
    }
}

fn arb_decimal() -> impl proptest::strategy::Strategy<Value = Decimal> {
    use proptest::prelude::*;
    (any::<i64>(), 0u32..=28).prop_map(|(m, scale)| Decimal::new(m, scale))
}

proptest::proptest! {
    #[test]
    fn sql_decimal_arithmetic_agrees_with_rust_decimal(a in arb_decimal(), b in arb_decimal()) {
        let conn = Connection::open_in_memory().unwrap();
        decimal::register(&conn).unwrap();
        let (sum, diff, cmp): (String, String, i64) = conn
            .query_row("SELECT dec_add(?1, ?2), dec_sub(?1, ?2), dec_cmp(?1, ?2)", [a.to_string(), b.to_string()], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap();
        proptest::prop_assert_eq!(Decimal::from_str_exact(&sum).unwrap(), a + b);
        proptest::prop_assert_eq!(Decimal::from_str_exact(&diff).unwrap(), a - b);
        proptest::prop_assert_eq!(cmp, a.cmp(&b) as i64);
    }
}

#[test]
fn the_store_is_usable_as_a_shared_port_object() {
    let (_dir, store) = tmp();
    let port: Arc<dyn crate::store::Store> = Arc::new(store);
    drop(port);
}

#[test]
fn decimal_overflow_is_an_overflow_error_not_a_wrap() {
    let max = Decimal::MAX.to_string();
    for sql in [
        format!("dec_add('{max}', '1')"),
        format!("dec_sub('-{max}', '1')"),
        format!("int_add({}, 1)", i64::MAX),
        format!("(SELECT dec_sum(x) FROM (SELECT '{max}' AS x UNION ALL SELECT '1'))"),
    ] {
        assert!(
            matches!(scalar(&sql), Err(StoreError::Overflow(_))),
            "{sql}"
        );
    }
}

#[test]
fn decimal_functions_reject_what_is_not_an_exact_decimal() {
    for sql in [
        "dec_add(0.1, '1')",
        "dec_add(NULL, '1')",
        "dec_add('abc', '1')",
        "dec_cmp('1e3', '1')",
        "int_add('1', 1)",
    ] {
        assert!(scalar(sql).is_err(), "{sql}");
    }
}

// ---- schema, migrations, reopening -------------------------------------------------

#[tokio::test]
async fn open_creates_a_wal_file_at_the_current_schema_version() {
    let (dir, store) = tmp();
    assert_eq!(
        store.schema_version().await.unwrap(),
        schema::MIGRATIONS.len() as i64
    );
    let conn = Connection::open(dir.path().join("meter.db")).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn migrations_apply_only_the_missing_steps_and_keep_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let v1 = ["CREATE TABLE t (x TEXT NOT NULL);"];
    let v2 = [
        v1[0],
        "ALTER TABLE t ADD COLUMN y INTEGER NOT NULL DEFAULT 7;",
    ];
    {
        let mut conn = Connection::open(&path).unwrap();
        schema::migrate(&mut conn, &v1).unwrap();
        conn.execute("INSERT INTO t (x) VALUES ('kept')", [])
            .unwrap();
    }
    let mut conn = Connection::open(&path).unwrap();
    schema::migrate(&mut conn, &v2).unwrap();
    // Applying again is a no-op (step 1 would fail if re-run: the table exists).
    schema::migrate(&mut conn, &v2).unwrap();
    assert_eq!(schema::version(&conn).unwrap(), 2);
    let row: (String, i64) = conn
        .query_row("SELECT x, y FROM t", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap();
    assert_eq!(row, ("kept".to_owned(), 7));
}

#[test]
fn a_file_from_a_newer_build_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.db");
    Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", schema::MIGRATIONS.len() as i64 + 1)
        .unwrap();
    assert!(matches!(
        SqliteStore::open(&path),
        Err(StoreError::Corrupt(_))
    ));
}

/// Export and erasure read and delete one user's rows by an index: a table scan would cost
/// every user's rows (the 10-minute soak's audit of 400 exports found the reservations
/// scan).
#[test]
fn per_user_statements_search_an_index() {
    let mut conn = Connection::open_in_memory().unwrap();
    schema::migrate(&mut conn, schema::MIGRATIONS).unwrap();
    for sql in super::privacy::statements() {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let nulls = vec![rusqlite::types::Null; stmt.parameter_count()];
        let plan: Vec<String> = stmt
            .query_map(rusqlite::params_from_iter(nulls), |r| r.get(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        // Each table access is an index search on the user (or, for the outer delete of
        // events, on the rowids found so): a search on `tenant=?` alone reads every user's
        // rows of the tenant.
        let by_user = |step: &String| {
            !step.starts_with("SEARCH") || step.contains("user=?") || step.contains("(rowid=?)")
        };
        assert!(
            plan.iter()
                .all(|step| !step.starts_with("SCAN") && by_user(step)),
            "{sql}\ndoes not search an index on the user: {plan:?}"
        );
    }
}

#[tokio::test]
async fn reopening_keeps_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meter.db");
    let e = event("alice", "e1", Some(dec!(0.0008125)));
    let sub = subscription("alice", 1);
    {
        let store = SqliteStore::open(&path).unwrap();
        assert!(store
            .create_tenant_if_absent(&tenant(), period_start())
            .await
            .unwrap());
        assert_eq!(
            store.record_events(std::slice::from_ref(&e)).await.unwrap(),
            vec![RecordOutcome::Recorded]
        );
        store.put_subscription(&sub, None).await.unwrap();
        assert!(store
            .create_alert_once(&alert("alice", "a1", "calls:gemini@80", 1))
            .await
            .unwrap());
    }
    let store = SqliteStore::open(&path).unwrap();
    assert!(!store
        .create_tenant_if_absent(&tenant(), period_start())
        .await
        .unwrap());
    assert_eq!(
        store.get_event(&tenant(), &e.event_id).await.unwrap(),
        Some(e.clone())
    );
    assert_eq!(
        store
            .get_subscription(&tenant(), &user("alice"))
            .await
            .unwrap(),
        Some(sub)
    );
    let p = usage_of(&store, "alice").await;
    assert_eq!(p.recorded, e.tally());
    assert_eq!(
        store.record_events(&[e]).await.unwrap(),
        vec![RecordOutcome::Duplicate]
    );
    let pick = |_: Option<&Subscription>| period_start();
    let uu = store
        .get_user_usage(&tenant(), &user("alice"), &pick)
        .await
        .unwrap();
    assert!(uu.fired_alerts.contains("calls:gemini@80"));
}

// ---- events and counters -----------------------------------------------------------

#[tokio::test]
async fn recording_counts_calls_tokens_cost_quality_and_the_daily_rollup() {
    let (_dir, store) = tmp();
    let mut unpriced = event("alice", "e2", None);
    unpriced.estimated = true;
    unpriced.status_code = Some(503);
    unpriced.latency_ms = None;
    let priced = event("alice", "e1", Some(dec!(0.25)));
    let out = store.record_events(&[priced, unpriced]).await.unwrap();
    assert_eq!(out, vec![RecordOutcome::Recorded; 2]);

    let p = usage_of(&store, "alice").await;
    assert_eq!(
        p,
        crate::usage::ProviderUsage {
            recorded: Tally {
                calls: 2,
                tokens: 240,
                cost_usd: dec!(0.25)
            },
            held: Tally::default(),
            unpriced_calls: 1,
            estimated_calls: 1,
            error_calls: 1,
            latency_ms_sum: 40,
            latency_count: 1,
        }
    );
    let day = NaiveDate::from_ymd_opt(2026, 11, 5).unwrap();
    let daily = store
        .daily_usage(&tenant(), &user("alice"), day, day)
        .await
        .unwrap();
    assert_eq!(daily.len(), 1);
    assert_eq!(daily[0].by_provider[&provider("gemini")].calls, 2);
    let none = store
        .daily_usage(
            &tenant(),
            &user("alice"),
            day.succ_opt().unwrap(),
            day.succ_opt().unwrap(),
        )
        .await
        .unwrap();
    assert!(none.is_empty());
}

#[tokio::test]
async fn an_overflowing_event_fails_alone_and_changes_nothing() {
    let (_dir, store) = tmp();
    let ok = event("alice", "e1", Some(Decimal::MAX));
    store
        .record_events(std::slice::from_ref(&ok))
        .await
        .unwrap();
    let (e2, e3) = (
        [event("alice", "e2", Some(dec!(1)))],
        [event("bob", "e3", Some(dec!(1)))],
    );
    let (a, b) = tokio::join!(store.record_events(&e2), store.record_events(&e3));
    assert!(matches!(a, Err(StoreError::Overflow(_))), "{a:?}");
    assert_eq!(b.unwrap(), vec![RecordOutcome::Recorded]);
    assert_eq!(usage_of(&store, "alice").await.recorded, ok.tally());
    assert_eq!(
        store
            .get_event(&tenant(), &EventId::parse("e2").unwrap())
            .await
            .unwrap(),
        None
    );
}

// ---- reservations ------------------------------------------------------------------

#[tokio::test]
async fn guards_compare_used_plus_increment_with_the_limit() {
    // (recorded cost, increment, limit, strict, allowed)
    let cases = [
        (dec!(1.5), dec!(0.5), dec!(2), false, true),
        (dec!(1.5), dec!(0.5), dec!(2), true, false),
        (dec!(1.5), dec!(0.5000001), dec!(2), false, false),
        (dec!(2), dec!(0), dec!(2), true, false),
        (dec!(0), dec!(0), dec!(0), false, true),
    ];
    for (cost, increment, limit, strict, allowed) in cases {
        let (_dir, store) = tmp();
        let mut other = event("alice", "e1", Some(cost / dec!(2)));
        other.provider = provider("openai");
        store
            .record_events(&[other, event("alice", "e2", Some(cost / dec!(2)))])
            .await
            .unwrap();
        let guard = Guard {
            metric: Metric::CostUsd,
            increment,
            limit,
            strict,
        };
        let got = store
            .reserve(&reservation("alice", one_call()), &[guard])
            .await
            .unwrap();
        let want = if allowed {
            ReserveOutcome::Reserved
        } else {
            ReserveOutcome::Denied {
                metric: Metric::CostUsd,
            }
        };
        assert_eq!(
            got, want,
            "cost {cost} + {increment} vs {limit} strict={strict}"
        );
    }
}

#[tokio::test]
async fn a_denied_reservation_names_the_failing_guard_and_holds_nothing() {
    let (_dir, store) = tmp();
    let tokens = Guard {
        metric: Metric::Tokens(None),
        increment: dec!(1000),
        limit: dec!(999),
        strict: false,
    };
    let r = reservation("alice", one_call());
    let got = store
        .reserve(&r, &[calls_guard(10), tokens.clone()])
        .await
        .unwrap();
    assert_eq!(
        got,
        ReserveOutcome::Denied {
            metric: tokens.metric
        }
    );
    assert_eq!(usage_of(&store, "alice").await, Default::default());
    assert_eq!(store.get_reservation(&tenant(), &r.id).await.unwrap(), None);
}

#[tokio::test]
async fn settling_with_actual_usage_adjusts_counters_by_actual_minus_held() {
    let (_dir, store) = tmp();
    let held = Tally {
        calls: 1,
        tokens: 500,
        cost_usd: dec!(0.01),
    };
    let r = reservation("alice", held);
    assert_eq!(
        store.reserve(&r, &[]).await.unwrap(),
        ReserveOutcome::Reserved
    );
    let mut e = event("alice", "e1", Some(dec!(0.004)));
    e.reservation_id = Some(r.id.clone());
    store.record_events(std::slice::from_ref(&e)).await.unwrap();
    let p = usage_of(&store, "alice").await;
    assert_eq!(p.recorded, e.tally());
    assert_eq!(p.held, Tally::default());
    let stored = store
        .get_reservation(&tenant(), &r.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.status, ReservationStatus::Settled);
    assert_eq!(
        stored,
        Reservation {
            status: ReservationStatus::Settled,
            ..r.clone()
        }
    );
    // Settling again (another event naming it) or releasing changes nothing.
    let mut again = event("alice", "e2", Some(dec!(0.004)));
    again.reservation_id = Some(r.id.clone());
    store.record_events(&[again]).await.unwrap();
    assert_eq!(
        store.release_reservation(&tenant(), &r.id).await.unwrap(),
        ReleaseOutcome::AlreadyClosed(ReservationStatus::Settled)
    );
    assert_eq!(usage_of(&store, "alice").await.held, Tally::default());
}

#[tokio::test]
async fn release_returns_the_hold_once_and_other_tenants_see_not_found() {
    let (_dir, store) = tmp();
    let r = reservation("alice", one_call());
    store.reserve(&r, &[]).await.unwrap();
    let other = TenantId::parse("globex").unwrap();
    assert_eq!(
        store.release_reservation(&other, &r.id).await.unwrap(),
        ReleaseOutcome::NotFound
    );
    assert_eq!(
        store.release_reservation(&tenant(), &r.id).await.unwrap(),
        ReleaseOutcome::Released
    );
    assert_eq!(
        store.release_reservation(&tenant(), &r.id).await.unwrap(),
        ReleaseOutcome::AlreadyClosed(ReservationStatus::Released)
    );
    assert_eq!(
        store
            .release_reservation(&tenant(), "rsv_nope")
            .await
            .unwrap(),
        ReleaseOutcome::NotFound
    );
    assert_eq!(usage_of(&store, "alice").await, Default::default());
}

#[tokio::test]
async fn expire_closes_only_due_holds_up_to_the_limit() {
    let (_dir, store) = tmp();
    let mut rs = Vec::new();
    for minutes in [1, 2, 3, 60] {
        let mut r = reservation("alice", one_call());
        r.expires_at = period_start() + Duration::minutes(minutes);
        store.reserve(&r, &[]).await.unwrap();
        rs.push(r);
    }
    let now = period_start() + Duration::minutes(3);
    assert_eq!(store.expire_reservations(now, 2).await.unwrap(), 2);
    assert_eq!(store.expire_reservations(now, 10).await.unwrap(), 1);
    assert_eq!(store.expire_reservations(now, 10).await.unwrap(), 0);
    assert_eq!(usage_of(&store, "alice").await.held.calls, 1);
    let last = store
        .get_reservation(&tenant(), &rs[3].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(last.status, ReservationStatus::Held);
    assert_eq!(
        store
            .release_reservation(&tenant(), &rs[0].id)
            .await
            .unwrap(),
        ReleaseOutcome::AlreadyClosed(ReservationStatus::Expired)
    );
}

// ---- alerts, subscriptions, catalog, invoices --------------------------------------

#[tokio::test]
async fn alerts_list_newest_first_count_all_unread_and_drain_the_outbox_oldest_first() {
    let (_dir, store) = tmp();
    for (id, key, minute) in [("a1", "k1", 1), ("a2", "k2", 3), ("a3", "k3", 2)] {
        assert!(store
            .create_alert_once(&alert("alice", id, key, minute))
            .await
            .unwrap());
    }
    assert!(store.mark_alert_read(&tenant(), "a2").await.unwrap());
    assert!(store.mark_alert_read(&tenant(), "a2").await.unwrap());
    assert!(!store
        .mark_alert_read(&TenantId::parse("globex").unwrap(), "a1")
        .await
        .unwrap());

    let (all, unread) = store
        .list_alerts(&tenant(), &user("alice"), false, 2)
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
        ["a2", "a3"]
    );
    assert_eq!(unread, 2);
    let (only_unread, _) = store
        .list_alerts(&tenant(), &user("alice"), true, 10)
        .await
        .unwrap();
    assert_eq!(
        only_unread
            .iter()
            .map(|a| a.id.as_str())
            .collect::<Vec<_>>(),
        ["a3", "a1"]
    );

    let outbox = store.unpublished_alerts(10).await.unwrap();
    assert_eq!(
        outbox.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
        ["a1", "a3", "a2"]
    );
    assert_eq!(outbox[0], alert("alice", "a1", "k1", 1));
    store.mark_alert_published(&tenant(), "a1").await.unwrap();
    assert_eq!(store.unpublished_alerts(10).await.unwrap().len(), 2);
}

#[tokio::test]
async fn plans_price_versions_keys_and_invoices_round_trip() {
    let (_dir, store) = tmp();
    let plan: Plan = serde_json::from_value(serde_json::json!({
        "name": "pro", "tier": "pro", "monthly_price_usd": "79", "yearly_price_usd": "790",
        "description": "Pro", "features": [], "alert_thresholds": [80, 90, 100],
        "limits": {"calls:gemini": "5000", "cost_usd": "150"}, "active": true
    }))
    .unwrap();
    store.put_plan(&tenant(), &plan).await.unwrap();
    store.put_plan(&tenant(), &plan).await.unwrap();
    assert_eq!(
        store.list_plans(&tenant()).await.unwrap(),
        vec![plan.clone()]
    );
    assert_eq!(
        store.get_plan(&tenant(), &plan.name).await.unwrap(),
        Some(plan)
    );

    let v = |n: &str| serde_json::json!({"id": n, "price": "0.0000001"});
    store.put_price_version(None, "v2", &v("v2")).await.unwrap();
    store.put_price_version(None, "v1", &v("v1")).await.unwrap();
    store
        .put_price_version(Some(&tenant()), "t1", &v("t1"))
        .await
        .unwrap();
    let replaced = serde_json::json!({"id": "v2", "price": "0.2"});
    store
        .put_price_version(None, "v2", &replaced)
        .await
        .unwrap();
    assert_eq!(
        store.list_price_versions(None).await.unwrap(),
        vec![replaced, v("v1")]
    );
    assert_eq!(
        store.list_price_versions(Some(&tenant())).await.unwrap(),
        vec![v("t1")]
    );

    let key = ApiKeyRecord {
        hash: "ab".repeat(32),
        tenant: tenant(),
        role: crate::domain::Role::Admin,
        created_at: period_start(),
    };
    store.put_api_key(&key).await.unwrap();
    assert_eq!(store.get_api_key(&key.hash).await.unwrap(), Some(key));
    assert_eq!(store.get_api_key("missing").await.unwrap(), None);

    let invoice = |id: &str, month: u32| Invoice {
        id: id.to_owned(),
        tenant: tenant(),
        user: "alice".to_owned(),
        period: Period {
            start: Utc.with_ymd_and_hms(2026, month, 1, 0, 0, 0).unwrap(),
            end: Utc.with_ymd_and_hms(2026, month + 1, 1, 0, 0, 0).unwrap(),
        },
        plan: PlanName::parse("pro").unwrap(),
        base_usd: dec!(79),
        usage_usd: dec!(1.0000001),
        overage_usd: dec!(0),
        proration_usd: dec!(0),
        adjustments_usd: dec!(0),
        total_usd: dec!(80.00),
        line_items: Vec::new(),
        status: InvoiceStatus::Pending,
        created_at: period_start(),
        published: false,
        extra: Default::default(),
    };
    assert!(store.put_invoice_once(&invoice("i9", 9)).await.unwrap());
    assert!(store.put_invoice_once(&invoice("i10", 10)).await.unwrap());
    assert!(!store
        .put_invoice_once(&invoice("i10-again", 10))
        .await
        .unwrap());
    let listed = store
        .list_invoices(&tenant(), &user("alice"))
        .await
        .unwrap();
    assert_eq!(listed, vec![invoice("i10", 10), invoice("i9", 9)]);
}

// ---- API keys: no piece of a key is stored ----------------------------------------------

/// Whether `text` holds any 10 consecutive characters of `secret`.
fn holds_a_piece_of(text: &str, secret: &str) -> bool {
    secret
        .as_bytes()
        .windows(10)
        .any(|w| text.contains(std::str::from_utf8(w).unwrap()))
}

#[tokio::test]
async fn key_rows_hold_no_piece_of_the_key_and_migration_scrubs_rows_that_did() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meter.db");
    let t = tenant();
    let (old, new) = ("Operator-SET-Key-20c", "Another-Operator-KEY");
    // A file of the build before key ids (schema 6), whose key rows kept `prefix`.
    {
        let mut conn = Connection::open(&path).unwrap();
        schema::migrate(&mut conn, &schema::MIGRATIONS[..6]).unwrap();
        let record = serde_json::json!({
            "hash": crate::auth::hash_key(old), "prefix": &old[..10], "tenant": t.as_str(),
            "role": "admin", "created_at": "2025-03-01T00:00:00Z"
        });
        conn.execute(
            "INSERT INTO api_keys (hash, tenant, record) VALUES (?1, ?2, ?3)",
            rusqlite::params![crate::auth::hash_key(old), t.as_str(), record.to_string()],
        )
        .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    let added = crate::auth::record_for(new, &t, crate::domain::Role::Service, Utc::now());
    store.put_api_key(&added).await.unwrap();

    let rows: Vec<String> = {
        let conn = Connection::open(&path).unwrap();
        let mut stmt = conn.prepare("SELECT record FROM api_keys").unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    assert_eq!(rows.len(), 2);
    for row in &rows {
        assert!(
            !holds_a_piece_of(row, old) && !holds_a_piece_of(row, new),
            "{row}"
        );
    }
    // Listed and revoked by id, old and new alike.
    let listed = store.list_api_keys(&t).await.unwrap();
    assert_eq!(listed.len(), 2);
    let old_id = crate::auth::key_id(&crate::auth::hash_key(old));
    assert_eq!(listed[0].id(), old_id);
    let revoked = store.delete_api_key_by_id(&t, &old_id).await.unwrap();
    assert_eq!(revoked.map(|r| r.id()), Some(old_id));
    assert_eq!(store.list_api_keys(&t).await.unwrap(), vec![added]);
    drop(store);

    // Nor anywhere in the file once the log is checkpointed.
    let conn = Connection::open(&path).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    drop(conn);
    let raw = std::fs::read(&path).unwrap();
    let raw = String::from_utf8_lossy(&raw);
    assert!(
        !holds_a_piece_of(&raw, old),
        "the old key's prefix is in the file"
    );
}
