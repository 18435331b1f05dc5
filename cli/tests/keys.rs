//! `meter keys create | list | revoke --id` on a SQLite store: a key is named by its id
//! (`key_` + 16 hex digits of its hash), never by a piece of the key.

use std::process::Command;

fn meter(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_meter"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// Whether `text` holds any 10 consecutive characters of `secret`.
fn holds_a_piece_of(text: &[u8], secret: &str) -> bool {
    secret
        .as_bytes()
        .windows(10)
        .any(|piece| text.windows(10).any(|w| w == piece))
}

/// Creates a key and returns (key, id as printed on stderr).
fn create(db: &str, tenant: &str, role: &str) -> (String, String) {
    let (ok, stdout, stderr) = meter(&[
        "keys", "create", "--tenant", tenant, "--role", role, "--db", db,
    ]);
    assert!(ok, "{stderr}");
    let key = stdout.trim().to_owned();
    let id = meter_core::auth::key_id(&meter_core::auth::hash_key(&key));
    assert!(
        stderr.contains(&id) && stderr.contains("shown only this once"),
        "the id next to the once-only note: {stderr}"
    );
    assert!(!holds_a_piece_of(stderr.as_bytes(), &key), "{stderr}");
    (key, id)
}

#[test]
fn keys_create_prints_the_id_and_keys_list_shows_ids_roles_and_dates_never_key_material() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("meter.db");
    let db = db.to_str().unwrap();
    let (admin, admin_id) = create(db, "acme", "admin");
    let (service, service_id) = create(db, "acme", "service");
    let (_, other_id) = create(db, "globex", "service");

    let (ok, stdout, stderr) = meter(&["keys", "list", "--tenant", "acme", "--db", db]);
    assert!(ok, "{stderr}");
    let lines: Vec<Vec<&str>> = stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert_eq!(lines[0][..2], [admin_id.as_str(), "admin"], "{stdout}");
    assert_eq!(lines[1][..2], [service_id.as_str(), "service"], "{stdout}");
    for line in &lines {
        chrono::DateTime::parse_from_rfc3339(line[2]).expect("created_at");
    }
    assert!(
        !stdout.contains(&other_id),
        "another tenant's key: {stdout}"
    );
    for key in [&admin, &service] {
        assert!(!holds_a_piece_of(stdout.as_bytes(), key), "{stdout}");
        // Nor a longer piece of the hash than the id shows.
        let hash = meter_core::auth::hash_key(key);
        assert!(!stdout.contains(&hash[..17]), "{stdout}");
    }
    // The file holds no piece of any key.
    let raw = std::fs::read(db).unwrap();
    for key in [&admin, &service] {
        assert!(!holds_a_piece_of(&raw, key), "a piece of the key is stored");
    }

    let (ok, stdout, stderr) = meter(&["keys", "list", "--tenant", "initech", "--db", db]);
    assert!(ok && stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("no keys"), "{stderr}");
}

#[tokio::test]
async fn keys_revoke_by_id_revokes_that_key_of_that_tenant_only() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("meter.db");
    let db = db.to_str().unwrap();
    let (gone, gone_id) = create(db, "acme", "service");
    let (kept, _) = create(db, "acme", "admin");

    // Another tenant's id, or text that is not an id: nothing revoked.
    let (ok, _, stderr) = meter(&[
        "keys", "revoke", "--id", &gone_id, "--tenant", "globex", "--db", db,
    ]);
    assert!(!ok && stderr.contains("nothing revoked"), "{stderr}");
    let (ok, _, stderr) = meter(&[
        "keys", "revoke", "--id", "key_XYZ", "--tenant", "acme", "--db", db,
    ]);
    assert!(!ok && stderr.contains("key id"), "{stderr}");
    let (ok, _, stderr) = meter(&["keys", "revoke", "--id", &gone_id, "--db", db]);
    assert!(
        !ok && stderr.contains("--tenant"),
        "--id needs --tenant: {stderr}"
    );

    let (ok, stdout, stderr) = meter(&[
        "keys", "revoke", "--id", &gone_id, "--tenant", "acme", "--db", db,
    ]);
    assert!(ok, "{stderr}");
    assert!(stdout.is_empty());
    assert!(
        stderr.contains(&gone_id) && stderr.contains("service key") && stderr.contains("acme"),
        "{stderr}"
    );
    assert!(!holds_a_piece_of(stderr.as_bytes(), &gone), "{stderr}");

    let store = meter_core::store::sqlite::SqliteStore::open(std::path::Path::new(db)).unwrap();
    use meter_core::store::TenantStore as _;
    let hash = meter_core::auth::hash_key;
    assert_eq!(store.get_api_key(&hash(&gone)).await.unwrap(), None);
    assert!(store.get_api_key(&hash(&kept)).await.unwrap().is_some());
    drop(store);

    let (ok, _, stderr) = meter(&[
        "keys", "revoke", "--id", &gone_id, "--tenant", "acme", "--db", db,
    ]);
    assert!(!ok && stderr.contains("nothing revoked"), "again: {stderr}");
    let (_, stdout, _) = meter(&["keys", "list", "--tenant", "acme", "--db", db]);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
}
