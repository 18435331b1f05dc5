//! `meter keys` and `meter doctor --upgrade-keys` on a DynamoDB table (emulator, through
//! scripts/with-moto): keys are listed and revoked by id, and the key items of a build
//! before key ids lose the piece of their key they kept and get listed.

use std::process::Command;

use meter_core::domain::{Role, TenantId};
use meter_core::store::dynamo::{create_table, keys as layout};

fn meter(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_meter"))
        .args(args)
        .env_remove("ALERT_TOPIC_ARN")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// Whether `text` holds any 10 consecutive characters of `secret`.
fn holds_a_piece_of(text: &str, secret: &str) -> bool {
    secret
        .as_bytes()
        .windows(10)
        .any(|w| text.contains(std::str::from_utf8(w).unwrap()))
}

#[tokio::test]
async fn keys_on_a_table_are_listed_and_revoked_by_id_after_doctor_upgrades_old_key_items() {
    assert!(
        std::env::var("AWS_ENDPOINT_URL").is_ok(),
        "run through scripts/with-moto (see README)"
    );
    let table = format!("meter-keys-{}", uuid::Uuid::new_v4().simple());
    let client = meter_core::config::dynamo_client().await;
    create_table(&client, &table).await.unwrap();

    let (ok, key, stderr) = meter(&[
        "keys", "create", "--tenant", "acme", "--role", "admin", "--table", &table,
    ]);
    assert!(ok, "{stderr}");
    let key = key.trim().to_owned();
    let id = meter_core::auth::key_id(&meter_core::auth::hash_key(&key));
    assert!(stderr.contains(&id), "{stderr}");

    // A key item as the build before key ids wrote it: `prefix`, no listing item.
    let old = "Operator-SET-Key-20c";
    let record = meter_core::auth::record_for(
        old,
        &TenantId::parse("acme").unwrap(),
        Role::Service,
        chrono::Utc::now(),
    );
    let s = |v: &str| aws_sdk_dynamodb::types::AttributeValue::S(v.to_owned());
    client
        .put_item()
        .table_name(&table)
        .item(layout::PK, s(&layout::api_key_pk(&record.hash)))
        .item(layout::SK, s(layout::API_KEY_SK))
        .item("hash", s(&record.hash))
        .item("prefix", s(&old[..10]))
        .item("tenant", s("acme"))
        .item("role", s("service"))
        .item("created_at", s(&record.created_at.to_rfc3339()))
        .send()
        .await
        .unwrap();
    let (_, listed, _) = meter(&["keys", "list", "--tenant", "acme", "--table", &table]);
    assert_eq!(
        listed.lines().count(),
        1,
        "not listed before the upgrade: {listed}"
    );

    let (_, report, stderr) = meter(&["doctor", "--table", &table, "--upgrade-keys"]);
    let line = report
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("api-keys"))
        .unwrap_or_else(|| panic!("no api-keys line: {report}{stderr}"));
    assert!(
        line.starts_with("ok ") && line.contains("1 key item(s)") && line.contains("1 rewritten"),
        "{report}"
    );
    let (_, again, _) = meter(&["doctor", "--table", &table, "--upgrade-keys"]);
    assert!(again.contains("0 key item(s)"), "idempotent: {again}");

    let (ok, listed, stderr) = meter(&["keys", "list", "--tenant", "acme", "--table", &table]);
    assert!(ok, "{stderr}");
    assert_eq!(listed.lines().count(), 2, "{listed}");
    assert!(
        listed.contains(&id) && listed.contains(&record.id()),
        "{listed}"
    );

    let items = format!(
        "{:?}",
        client.scan().table_name(&table).send().await.unwrap().items
    );
    assert!(!holds_a_piece_of(&items, old), "{items}");
    assert!(!holds_a_piece_of(&items, &key), "{items}");

    let (ok, _, stderr) = meter(&[
        "keys",
        "revoke",
        "--id",
        &record.id(),
        "--tenant",
        "acme",
        "--table",
        &table,
    ]);
    assert!(ok, "{stderr}");
    let (_, listed, _) = meter(&["keys", "list", "--tenant", "acme", "--table", &table]);
    assert_eq!(listed.lines().count(), 1, "{listed}");
    assert!(listed.contains(&id), "{listed}");
}
