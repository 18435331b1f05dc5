//! `meter doctor --db`: a bootstrapped store passes; a missing, corrupt or outdated file fails
//! with a line that says how to fix it.

use std::path::Path;
use std::process::{Command, Output};

use meter_core::domain::TenantId;
use meter_core::service::bootstrap::bootstrap;
use meter_core::store::sqlite::SqliteStore;

fn doctor(db: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_meter"))
        .args(["doctor", "--db"])
        .arg(db)
        .env_remove("ALERT_TOPIC_ARN")
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The line of the check `name`.
fn line<'a>(text: &'a str, name: &str) -> &'a str {
    text.lines()
        .find(|l| l.split_whitespace().nth(1) == Some(name))
        .unwrap_or_else(|| panic!("no `{name}` line in:\n{text}"))
}

async fn bootstrapped(path: &Path) {
    let store = SqliteStore::open(path).unwrap();
    let tenant = TenantId::parse("default").unwrap();
    bootstrap(&store, &tenant, None, chrono::Utc::now())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_store_bootstrapped_like_meter_serve_passes_every_check() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("meter.db");
    bootstrapped(&db).await;

    let out = doctor(&db);
    let text = stdout(&out);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in ["file", "schema", "plans", "catalog", "clock"] {
        assert!(line(&text, name).starts_with("ok "), "{text}");
    }
    assert!(line(&text, "plans").contains("free"), "{text}");
    assert!(line(&text, "topic").starts_with("skipped "), "{text}");
    assert!(!text.contains("PROBLEM"), "{text}");
}

#[test]
fn a_missing_file_is_a_problem_and_is_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nowhere.db");

    let out = doctor(&db);
    let text = stdout(&out);
    assert!(!out.status.success(), "{text}");
    let file = line(&text, "file");
    assert!(file.starts_with("PROBLEM "), "{text}");
    assert!(
        file.contains("does not exist") && file.contains("meter serve --db"),
        "{text}"
    );
    assert!(!db.exists(), "doctor must not create the file");
}

#[test]
fn a_corrupt_file_is_a_problem() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("meter.db");
    std::fs::write(
        &db,
        b"this is not a SQLite database, just some text in a file\n".repeat(100),
    )
    .unwrap();

    let out = doctor(&db);
    let text = stdout(&out);
    assert!(!out.status.success(), "{text}");
    let file = line(&text, "file");
    assert!(file.starts_with("PROBLEM "), "{text}");
    assert!(file.contains("not a readable SQLite database"), "{text}");
    assert!(line(&text, "schema").starts_with("skipped "), "{text}");
}

#[test]
fn an_empty_database_has_an_old_schema_and_doctor_does_not_migrate_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("meter.db");
    // A valid SQLite file that no meter has opened: schema version 0.
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch("CREATE TABLE unrelated (x INTEGER);")
        .unwrap();

    let out = doctor(&db);
    let text = stdout(&out);
    assert!(!out.status.success(), "{text}");
    let schema = line(&text, "schema");
    assert!(
        schema.starts_with("PROBLEM ") && schema.contains("version 0"),
        "{text}"
    );
    let version: i64 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 0, "doctor must not migrate");
}

#[tokio::test]
async fn a_store_without_bootstrap_data_reports_plans_and_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("meter.db");
    drop(SqliteStore::open(&db).unwrap()); // migrated, but never bootstrapped

    let out = doctor(&db);
    let text = stdout(&out);
    assert!(!out.status.success(), "{text}");
    assert!(line(&text, "schema").starts_with("ok "), "{text}");
    assert!(line(&text, "plans").starts_with("PROBLEM "), "{text}");
    let catalog = line(&text, "catalog");
    assert!(
        catalog.starts_with("PROBLEM ")
            && catalog.contains("meter pricing import")
            && catalog.contains("--db "),
        "{text}"
    );
}
