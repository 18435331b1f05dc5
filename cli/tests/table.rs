//! `meter table create` and `meter serve --table` on the DynamoDB emulator.

mod common;

use std::process::Command;

use serde_json::{json, Value};

const ADMIN_KEY: &str = "mk_table_test_admin_key_0123456789abcdef";

#[tokio::test]
async fn table_create_is_idempotent_and_serve_runs_on_the_table() {
    assert!(
        std::env::var("AWS_ENDPOINT_URL").is_ok(),
        "run through scripts/with-moto (see README)"
    );
    let table = format!("meter-cli-{}", uuid::Uuid::new_v4().simple());
    for _ in 0..2 {
        let out = Command::new(env!("CARGO_BIN_EXE_meter"))
            .args(["table", "create", "--table", &table])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let server = common::serve(&["--table", table.as_str()], ADMIN_KEY, "warn");
    let base = server.base.clone();

    let client = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        client
            .post(format!("{base}{path}"))
            .bearer_auth(ADMIN_KEY)
            .json(&body)
            .send()
    };
    let r = post("/api/subscription/usage", json!({"event_id": "t-1", "user_id": "u", "provider": "gemini", "model": "gemini-2.5-flash", "input_tokens": 1000})).await.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["data"]["events"][0]["cost_usd"], "0.0003");
    let r = post(
        "/api/subscription/check",
        json!({"user_id": "u", "provider": "gemini"}),
    )
    .await
    .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["data"]["remaining"]["calls:gemini"], 99);
    drop(server);

    // `meter migrate` on a table of this layout: visits the user, changes nothing; a
    // second run knows it is done.
    let migrate = || {
        let out = Command::new(env!("CARGO_BIN_EXE_meter"))
            .args(["migrate", "--table", &table])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let first = migrate();
    assert_eq!(first["outcome"], "migrated", "{first}");
    assert!(first["users_visited"].as_u64().unwrap() >= 1, "{first}");
    assert_eq!(first["users_changed"], 0, "{first}");
    assert_eq!(first["grants_indexed"], 0, "{first}");
    let second = migrate();
    assert_eq!(second["outcome"], "already migrated", "{second}");
}
