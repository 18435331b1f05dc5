//! The operator commands, run as a user would run them.

use std::process::Command;

use meter_core::domain::{Role, TenantId};
use meter_core::store::{CatalogStore, TenantStore};

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

#[tokio::test]
async fn keys_create_prints_a_key_once_and_stores_only_its_hash_for_a_new_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("meter.db");
    let (ok, stdout, stderr) = meter(&[
        "keys",
        "create",
        "--tenant",
        "acme",
        "--role",
        "service",
        "--db",
        db.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    let key = stdout.trim();
    assert!(
        key.starts_with("mk_") && key.len() == meter_core::auth::KEY_LEN,
        "{stdout}"
    );

    let store = meter_core::store::sqlite::SqliteStore::open(&db).unwrap();
    let record = store
        .get_api_key(&meter_core::auth::hash_key(key))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (record.tenant.as_str(), record.role),
        ("acme", Role::Service)
    );
    let raw = std::fs::read(&db).unwrap();
    assert!(
        !raw.windows(key.len()).any(|w| w == key.as_bytes()),
        "the key itself is stored"
    );
    // A new tenant starts with the default plans.
    let plans = store
        .list_plans(&TenantId::parse("acme").unwrap())
        .await
        .unwrap();
    assert_eq!(plans.len(), 4);
}

#[test]
fn plans_list_without_a_store_prints_the_shipped_defaults() {
    let (ok, stdout, _) = meter(&["plans", "list"]);
    assert!(ok);
    let names: Vec<String> = stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["name"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(names, ["free", "basic", "pro", "enterprise"]);
}

#[test]
fn pricing_quote_answers_one_line_per_line_in_order() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_meter"))
        .args(["pricing", "quote"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"{\"provider\":\"openai\",\"model\":\"gpt-4o\",\"input_tokens\":1000,\"output_tokens\":100}\nnot json\n{\"provider\":\"tavily\",\"searches\":2}\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["cost_usd"], "0.0035");
    assert!(lines[1]["error"]["code"].is_string());
    assert_eq!(lines[2]["cost_usd"], "0.016");
}

#[tokio::test]
async fn subscription_set_creates_then_upgrades_and_refuses_an_unknown_plan() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("meter.db");
    let db = db.to_str().unwrap();
    // `keys create` bootstraps the tenant with the default plans.
    let (ok, _, stderr) = meter(&[
        "keys", "create", "--tenant", "default", "--role", "admin", "--db", db,
    ]);
    assert!(ok, "{stderr}");
    let set = |plan: &str| {
        meter(&[
            "subscription",
            "set",
            "--user",
            "ann",
            "--plan",
            plan,
            "--db",
            db,
        ])
    };

    let (ok, stdout, stderr) = set("basic");
    assert!(ok, "{stderr}");
    let created: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(created["subscription"]["plan"], "basic", "{stdout}");
    let (ok, stdout, _) = set("pro");
    assert!(ok);
    let upgraded: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(upgraded["change"], "upgraded", "{stdout}");
    assert_eq!(upgraded["subscription"]["plan"], "pro");

    let (ok, _, stderr) = set("platinum");
    assert!(!ok);
    assert!(
        stderr.contains("platinum") || stderr.contains("plan"),
        "{stderr}"
    );
}

/// Runs `meter` with `stdin` piped in.
fn meter_with_input(args: &[&str], stdin: &str) -> (bool, String) {
    use std::io::Write as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_meter"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.stdout.is_empty(), "revoke prints nothing on stdout");
    (out.status.success(), String::from_utf8(out.stderr).unwrap())
}

#[tokio::test]
async fn keys_revoke_deletes_one_key_by_key_or_hash_and_refuses_what_it_cannot_find() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("meter.db");
    let db = db.to_str().unwrap();
    let create = |role: &str| {
        let (ok, stdout, stderr) = meter(&[
            "keys", "create", "--tenant", "acme", "--role", role, "--db", db,
        ]);
        assert!(ok, "{stderr}");
        stdout.trim().to_owned()
    };
    let (old, kept, by_hash) = (create("service"), create("admin"), create("service"));
    let hash = meter_core::auth::hash_key;

    let (ok, stderr) = meter_with_input(&["keys", "revoke", "--db", db], &format!("{old}\n"));
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("service key") && stderr.contains("acme"),
        "{stderr}"
    );
    assert!(!stderr.contains(&old), "the key is never printed: {stderr}");
    let (ok, stderr) = meter_with_input(
        &["keys", "revoke", "--hash", &hash(&by_hash), "--db", db],
        "",
    );
    assert!(ok, "{stderr}");

    let store = meter_core::store::sqlite::SqliteStore::open(std::path::Path::new(db)).unwrap();
    assert_eq!(store.get_api_key(&hash(&old)).await.unwrap(), None);
    assert_eq!(store.get_api_key(&hash(&by_hash)).await.unwrap(), None);
    assert!(store.get_api_key(&hash(&kept)).await.unwrap().is_some());

    // Again: nothing to revoke, a failure that says so.
    let (ok, stderr) = meter_with_input(&["keys", "revoke", "--db", db], &old);
    assert!(!ok);
    assert!(stderr.contains("nothing revoked"), "{stderr}");
    // No key, or a hash that is not one: refused before the store is touched.
    let (ok, stderr) = meter_with_input(&["keys", "revoke", "--db", db], "\n");
    assert!(!ok && stderr.contains("standard input"), "{stderr}");
    let (ok, stderr) = meter_with_input(&["keys", "revoke", "--hash", "ABC", "--db", db], "");
    assert!(!ok && stderr.contains("64 lowercase hex"), "{stderr}");
    assert!(store.get_api_key(&hash(&kept)).await.unwrap().is_some());
}

#[tokio::test]
async fn tokens_rotate_secret_creates_then_rotates_with_or_without_grace_and_prints_no_secret() {
    use meter_core::store::TokenKeyStore;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("meter.db");
    let db = db.to_str().unwrap();
    let tenant = TenantId::parse("default").unwrap();

    let (ok, first, stderr) = meter(&["tokens", "rotate-secret", "--db", db]);
    assert!(ok, "{stderr}");
    let first: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(
        first["previous_key_id"],
        serde_json::Value::Null,
        "none to retire"
    );

    let (ok, second, stderr) = meter(&["tokens", "rotate-secret", "--db", db]);
    assert!(ok, "{stderr}");
    let second: serde_json::Value = serde_json::from_str(&second).unwrap();
    assert_eq!(second["previous_key_id"], first["key_id"]);
    let until: chrono::DateTime<chrono::Utc> = second["previous_valid_until"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let grace = until - chrono::Utc::now();
    assert!(
        (grace - chrono::Duration::days(1)).num_seconds().abs() < 60,
        "a day by default"
    );

    let store = meter_core::store::sqlite::SqliteStore::open(std::path::Path::new(db)).unwrap();
    let keys = store.get_token_keys(&tenant).await.unwrap().unwrap();
    assert_eq!(keys.current.id, second["key_id"].as_str().unwrap());
    let stored: serde_json::Value = serde_json::from_str(&keys.to_stored()).unwrap();
    let secret = stored["current"]["secret"].as_str().unwrap();
    drop(store);

    let (ok, third, stderr) = meter(&[
        "tokens",
        "rotate-secret",
        "--db",
        db,
        "--grace-seconds",
        "0",
    ]);
    assert!(ok, "{stderr}");
    let third: serde_json::Value = serde_json::from_str(&third).unwrap();
    assert_eq!(
        third["previous_valid_until"],
        serde_json::Value::Null,
        "retired at once"
    );
    assert!(stderr.contains("refused now"), "{stderr}");
    for out in [&first, &second, &third] {
        assert!(!out.to_string().contains(secret));
    }
    assert!(!stderr.contains(secret));
}

#[tokio::test]
async fn budgets_put_get_list_delete_through_the_service_rules() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("meter.db");
    let db = db.to_str().unwrap();
    let json = |stdout: &str| -> serde_json::Value { serde_json::from_str(stdout.trim()).unwrap() };
    let body = r#"{"scope": {"kind": "org", "org_id": "acme"}, "applies_to": "each_member",
                   "limits": {"cost_usd": "20"}, "window": "month", "mode": "hard"}"#;
    let (ok, stdout, stderr) =
        meter(&["budgets", "put", "acme-members", "--json", body, "--db", db]);
    assert!(ok, "{stderr}");
    let put = json(&stdout);
    assert_eq!(
        (put["created"].as_bool(), put["budget"]["version"].as_u64()),
        (Some(true), Some(1))
    );
    assert_eq!(put["budget"]["limits"]["cost_usd"], "20");

    let (ok, stdout, _) = meter(&["budgets", "get", "acme-members", "--db", db]);
    assert!(ok);
    assert_eq!(json(&stdout)["applies_to"], "each_member");
    let (ok, stdout, _) = meter(&["budgets", "list", "--org-id", "acme", "--db", db]);
    assert!(ok);
    assert_eq!(json(&stdout)["budgets"][0]["budget_id"], "acme-members");

    // The HTTP body rules apply: refused with the API's code, nothing stored.
    let bad = r#"{"scope": {"kind": "user", "user_id": "ann"}, "applies_to": "each_member",
                  "limits": {"cost_usd": "20"}, "window": "month", "mode": "hard"}"#;
    let (ok, _, stderr) = meter(&["budgets", "set", "ann-cap", "--json", bad, "--db", db]);
    assert!(!ok);
    assert!(stderr.contains("each_member_on_user"), "{stderr}");
    let (ok, _, stderr) = meter(&["budgets", "list", "--team-id", "red", "--db", db]);
    assert!(!ok);
    assert!(stderr.contains("team_without_org"), "{stderr}");

    let (ok, stdout, _) = meter(&["budgets", "delete", "acme-members", "--db", db]);
    assert!(ok);
    assert_eq!(json(&stdout)["deleted"], true);
    let (ok, _, stderr) = meter(&["budgets", "get", "acme-members", "--db", db]);
    assert!(!ok);
    assert!(stderr.contains("not_found"), "{stderr}");
}

#[test]
fn migrate_on_sqlite_says_there_is_nothing_to_migrate() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let (ok, out, err) = meter(&["migrate", "--db", db.to_str().unwrap()]);
    assert!(ok, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["outcome"], "nothing to migrate", "{report}");
    assert_eq!(report["users_changed"], 0);
}

#[tokio::test]
async fn wallet_grant_show_void_through_the_service_rules() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("meter.db");
    let db = db.to_str().unwrap();
    let json = |stdout: &str| -> serde_json::Value { serde_json::from_str(stdout.trim()).unwrap() };
    let grant = |args: &[&str]| {
        let mut all = vec!["wallet", "grant"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--db", db]);
        meter(&all)
    };
    let (ok, stdout, stderr) = grant(&[
        "user", "alice", "order-1", "--amount", "10.00", "--kind", "purchase",
    ]);
    assert!(ok, "{stderr}");
    let put = json(&stdout);
    assert_eq!(put["created"], true);
    assert_eq!(put["grant"]["amount_usd"], "10");
    // The same grant again: unchanged; another body under the id: refused.
    let (ok, stdout, _) = grant(&[
        "user", "alice", "order-1", "--amount", "10", "--kind", "purchase",
    ]);
    assert!(ok);
    assert_eq!(json(&stdout)["created"], false);
    let (ok, _, stderr) = grant(&[
        "user", "alice", "order-1", "--amount", "11", "--kind", "purchase",
    ]);
    assert!(!ok);
    assert!(stderr.contains("conflict"), "{stderr}");
    // The HTTP body rules apply: refused with the API's code, nothing stored.
    let (ok, _, stderr) = grant(&[
        "user",
        "alice",
        "g2",
        "--amount",
        "1.0000001",
        "--kind",
        "promo",
    ]);
    assert!(!ok);
    assert!(stderr.contains("too_many_decimals"), "{stderr}");
    let (ok, _, stderr) = grant(&["user", "alice", "g3", "--amount", "5", "--kind", "gift"]);
    assert!(!ok);
    assert!(stderr.contains("invalid_value"), "{stderr}");
    let (ok, _, stderr) = grant(&["team", "red", "g4", "--amount", "5", "--kind", "promo"]);
    assert!(!ok);
    assert!(stderr.contains("user"), "{stderr}");

    let (ok, stdout, _) = meter(&["wallet", "show", "user", "alice", "--db", db]);
    assert!(ok);
    let w = json(&stdout);
    assert_eq!(
        (&w["balance_usd"], &w["available_usd"]),
        (&serde_json::json!("10"), &serde_json::json!("10"))
    );
    assert_eq!(w["grants"].as_array().unwrap().len(), 1);

    let (ok, stdout, _) = meter(&["wallet", "void", "user", "alice", "order-1", "--db", db]);
    assert!(ok);
    assert_eq!(json(&stdout)["removed_usd"], "10");
    let (ok, _, stderr) = meter(&["wallet", "void", "user", "alice", "nope", "--db", db]);
    assert!(!ok);
    assert!(stderr.contains("not_found"), "{stderr}");
    let (ok, stdout, _) = meter(&["wallet", "show", "user", "alice", "--db", db]);
    assert!(ok);
    assert_eq!(json(&stdout)["balance_usd"], "0");
}
