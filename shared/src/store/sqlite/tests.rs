//! Unit tests of what is SQLite's own: the exact-decimal SQL functions, the schema and its
//! migrations, WAL, the per-user indexes, a reopened file keeping every record, the
//! counters' overflow, and the guards' comparison in SQL. What the storage port promises is
//! tested on both adapters by the conformance suite (tests/conformance).

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

use super::*;
use crate::limits::Metric;
use crate::testing::{
    alert, at, event, march, provider, reservation, sqlite_store, subscription, tenant, user,
};
use crate::usage::UsageCounts;

/// `u`'s gemini usage in March 2025.
async fn gemini(store: &SqliteStore, u: &str) -> crate::usage::ProviderUsage {
    let usage = store
        .get_period_usage(&tenant(), &user(u), &[march()])
        .await
        .unwrap();
    usage[0]
        .by_provider
        .get(&provider("gemini"))
        .cloned()
        .unwrap_or_default()
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
    let (dir, store) = sqlite_store();
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
    let (t, alice) = (tenant(), user("alice"));
    // Nanoseconds, output tokens and a latency survive the round trip too.
    let e = UsageEvent {
        timestamp: at(2025, 3, 10, 12) + Duration::nanoseconds(123_456_789),
        counts: UsageCounts {
            input_tokens: 100,
            output_tokens: 20,
            ..UsageCounts::default()
        },
        latency_ms: Some(40),
        ..event(&t, &alice, "e1", 100, "0.0008125")
    };
    let sub = subscription(&t, &alice, 1);
    {
        let store = SqliteStore::open(&path).unwrap();
        assert!(store.create_tenant_if_absent(&t, march()).await.unwrap());
        assert_eq!(
            store.record_events(std::slice::from_ref(&e)).await.unwrap(),
            vec![RecordOutcome::Recorded]
        );
        store.put_subscription(&sub, None).await.unwrap();
        assert!(store
            .create_alert_once(&alert(&t, &alice, "calls:gemini@80", 1))
            .await
            .unwrap());
    }
    let store = SqliteStore::open(&path).unwrap();
    assert!(!store.create_tenant_if_absent(&t, march()).await.unwrap());
    assert_eq!(
        store.get_event(&t, &e.event_id).await.unwrap(),
        Some(e.clone())
    );
    assert_eq!(store.get_subscription(&t, &alice).await.unwrap(), Some(sub));
    assert_eq!(gemini(&store, "alice").await.recorded, e.tally());
    assert_eq!(
        store.record_events(&[e]).await.unwrap(),
        vec![RecordOutcome::Duplicate]
    );
    let pick = |_: Option<&Subscription>| march();
    let uu = store.get_user_usage(&t, &alice, &pick).await.unwrap();
    assert!(uu.fired_alerts.contains("calls:gemini@80"));
}

// ---- counters and guards in SQL ------------------------------------------------------

#[tokio::test]
async fn an_overflowing_event_fails_alone_and_changes_nothing() {
    let (_dir, store) = sqlite_store();
    let (t, alice) = (tenant(), user("alice"));
    let ok = event(&t, &alice, "e1", 100, &Decimal::MAX.to_string());
    store
        .record_events(std::slice::from_ref(&ok))
        .await
        .unwrap();
    let (e2, e3) = (
        [event(&t, &alice, "e2", 100, "1")],
        [event(&t, &user("bob"), "e3", 100, "1")],
    );
    let (a, b) = tokio::join!(store.record_events(&e2), store.record_events(&e3));
    assert!(matches!(a, Err(StoreError::Overflow(_))), "{a:?}");
    assert_eq!(b.unwrap(), vec![RecordOutcome::Recorded]);
    assert_eq!(gemini(&store, "alice").await.recorded, ok.tally());
    assert_eq!(
        store
            .get_event(&t, &EventId::parse("e2").unwrap())
            .await
            .unwrap(),
        None
    );
}

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
        let (_dir, store) = sqlite_store();
        let (t, alice, half) = (tenant(), user("alice"), (cost / dec!(2)).to_string());
        let mut other = event(&t, &alice, "e1", 100, &half);
        other.provider = provider("openai");
        store
            .record_events(&[other, event(&t, &alice, "e2", 100, &half)])
            .await
            .unwrap();
        let guard = Guard {
            metric: Metric::CostUsd,
            increment,
            limit,
            strict,
        };
        let got = store
            .reserve(
                &reservation(&t, &alice, 0, "0", at(2025, 3, 10, 13)),
                &[guard],
            )
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
    // A file of the build before key ids (schema 7), whose key rows kept `prefix`.
    {
        let mut conn = Connection::open(&path).unwrap();
        schema::migrate(&mut conn, &schema::MIGRATIONS[..7]).unwrap();
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

// ---- budget counters: what is kept ------------------------------------------------------

/// A counter write of one call on `org`'s counter of `window` that ends at `end`.
fn org_call(window: crate::budgets::Window, end: DateTime<Utc>) -> crate::budgets::CounterWrite {
    crate::budgets::CounterWrite {
        counter: crate::budgets::CounterKey::Scope {
            scope: crate::budgets::Scope::Org {
                org_id: crate::domain::OrgId::parse("acme").unwrap(),
            },
            window,
            window_start: end - Duration::days(1),
        },
        window_end: end,
        provider: provider("gemini"),
        add: crate::usage::Tally {
            calls: 1,
            ..Default::default()
        },
        held: Default::default(),
        guards: vec![],
    }
}

#[test]
fn a_period_counter_outlives_its_window_by_two_months_others_by_a_day() {
    use crate::budgets::Window;
    let mut conn = Connection::open_in_memory().unwrap();
    schema::configure(&conn).unwrap();
    schema::migrate(&mut conn, schema::MIGRATIONS).unwrap();
    let end = at(2025, 4, 1, 0);
    let (period, day) = (org_call(Window::Period, end), org_call(Window::Day, end));
    budget_counters::add_all(&conn, "t", &[period.clone(), day.clone()], end).unwrap();
    let calls = |w: &crate::budgets::CounterWrite| {
        budget_counters::read_counter(&conn, "t", &w.counter.key())
            .unwrap()
            .by_provider
            .get(&provider("gemini"))
            .map_or(0, |p| p.recorded.calls)
    };
    // Two days after the end (a pass that did not run for a day): the period counter an
    // org's invoice bills is still there; the day's is gone.
    let later = org_call(Window::Minute, end + Duration::days(2));
    budget_counters::add_all(
        &conn,
        "t",
        std::slice::from_ref(&later),
        end + Duration::days(2),
    )
    .unwrap();
    assert_eq!((calls(&period), calls(&day)), (1, 0));
    // 63 days after: gone too.
    budget_counters::add_all(&conn, "t", &[later], end + Duration::days(63)).unwrap();
    assert_eq!(calls(&period), 0);
}

#[test]
fn migration_22_keeps_existing_period_counters_for_two_months() {
    let mut conn = Connection::open_in_memory().unwrap();
    schema::configure(&conn).unwrap();
    schema::migrate(&mut conn, &schema::MIGRATIONS[..21]).unwrap();
    for counter in [
        "org#acme#period#2025-03-01T00:00:00Z",
        "org#acme#day#2025-03-31T00:00:00Z",
    ] {
        conn.execute(
            "INSERT INTO budget_counters (tenant, counter, provider, window_end, calls, tokens, cost)
             VALUES ('t', ?1, 'gemini', '2025-04-01T00:00:00.250000000Z', 1, 0, '0')",
            [counter],
        )
        .unwrap();
    }
    schema::migrate(&mut conn, schema::MIGRATIONS).unwrap();
    let kept: Vec<(String, String)> = conn
        .prepare("SELECT counter, keep_until FROM budget_counters ORDER BY counter")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        kept,
        [
            (
                "org#acme#day#2025-03-31T00:00:00Z".to_owned(),
                "2025-04-01T00:00:00.250000000Z".to_owned()
            ),
            (
                "org#acme#period#2025-03-01T00:00:00Z".to_owned(),
                "2025-06-01T00:00:00.250000000Z".to_owned()
            ),
        ]
    );
}

/// The check's cached statements keep their plan: on a connection set up by `configure`,
/// binding new values never makes SQLite parse and plan a statement again. Without the
/// query planner stability guarantee the budgets-by-scope lookup was re-prepared on every
/// check over budgets (issue 23: a fifth of that check's time), and it still searches its
/// index with the plan made before any binding.
#[test]
fn cached_statements_are_not_prepared_again_for_new_bindings() {
    let (dir, _store) = sqlite_store();
    let conn = Connection::open(dir.path().join("meter.db")).unwrap();
    schema::configure(&conn).unwrap();
    for sql in [
        check_view::SCOPE_BUDGETS,
        "SELECT subscription FROM subscriptions WHERE tenant = ?1 AND user = ?2",
        "SELECT sub FROM org_subscriptions WHERE tenant = ?1 AND org_id = ?2",
    ] {
        for i in 0..4 {
            let mut stmt = conn.prepare_cached(sql).unwrap();
            let mut rows = stmt.query([format!("t{i}"), format!("s{i}")]).unwrap();
            while rows.next().unwrap().is_some() {}
        }
        let stmt = conn.prepare_cached(sql).unwrap();
        assert_eq!(
            stmt.get_status(rusqlite::StatementStatus::RePrepare),
            0,
            "{sql}"
        );
    }
    let plan: String = conn
        .query_row(
            &format!("EXPLAIN QUERY PLAN {}", check_view::SCOPE_BUDGETS),
            ["t", "s"],
            |r| r.get(3),
        )
        .unwrap();
    assert!(plan.contains("USING INDEX budgets_by_scope"), "{plan}");
}

/// The writer checkpoints between commit groups once the WAL holds SQLite's threshold of
/// pages (1,000 of 4 KiB), and the next write starts the log again from its beginning:
/// under thousands of single-event commits with readers reading all along, the commits
/// reach the database file and the `-wal` file stays near the threshold instead of
/// growing with every commit. (A checkpoint thread beside the writer let it grow past
/// 200 MB under load: only the writer can restart the log, issue 23.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_writers_checkpoints_keep_the_wal_bounded_under_reads() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let (dir, store) = sqlite_store();
    let store = Arc::new(store);
    let file = dir.path().join("meter.db");
    let wal = dir.path().join("meter.db-wal");
    let size = |path: &std::path::Path| std::fs::metadata(path).map_or(0, |m| m.len());
    let before = size(&file);
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (store, stop) = (Arc::clone(&store), Arc::clone(&stop));
            tokio::spawn(async move {
                let mut reads = 0_u64;
                while !stop.load(Ordering::Relaxed) {
                    store
                        .get_period_usage(&tenant(), &user("ann"), &[march()])
                        .await
                        .unwrap();
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    // A few pages per commit: the threshold is passed every few hundred commits.
    let mut largest = 0;
    for i in 0..8_000 {
        let e = event(&tenant(), &user("ann"), &format!("e{i}"), 10, "0.01");
        store.record_events(&[e]).await.unwrap();
        largest = largest.max(size(&wal));
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.await.unwrap() > 0, "a reader never read");
    }
    assert!(
        size(&file) > before,
        "8,000 commits and no checkpoint: the file stayed at {before} bytes"
    );
    // The threshold's 4 MB and the commit that passed it (4.15 MB here), with room for
    // restarts put off by readers still on the log on a loaded machine. With the
    // checkpoint thread of before, this test saw 13.8–15.6 MB.
    assert!(
        largest < 8 << 20,
        "the WAL grew to {largest} bytes: it is not restarted after checkpoints"
    );
}
