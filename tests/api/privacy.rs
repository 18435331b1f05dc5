//! GET /user/{id}/export and DELETE /user/{id} through the router.

use meter_tests::TestApp;
use serde_json::json;

#[tokio::test]
async fn export_erase_export_through_the_api_needs_an_admin_key() {
    let app = TestApp::spawn().await;
    let events: Vec<_> = (0..5)
        .map(|i| {
            json!({"event_id": format!("p-{i}"), "user_id": "zoe", "provider": "gemini",
                         "model": "gemini-2.5-flash", "input_tokens": 100,
                         "metadata": {"prompt_id": "kept private"}})
        })
        .collect();
    assert_eq!(app.usage(json!({ "events": events })).await.status, 200);
    let path = "/api/subscription/user/zoe";

    // A service key may neither export nor erase.
    assert_eq!(app.get(&format!("{path}/export")).await.status, 403);
    assert_eq!(app.delete_as(&app.service_key, path).await.status, 403);

    let admin = app.admin_key.clone();
    let before = app.get_as(&admin, &format!("{path}/export")).await;
    assert_eq!(before.status, 200);
    let data = &before.body["data"];
    assert_eq!(data["events"].as_array().unwrap().len(), 5);
    assert_eq!(data["events"][0]["metadata"]["prompt_id"], "kept private");
    assert_eq!(data["periods"].as_array().unwrap().len(), 1);
    assert!(data["alerts"].as_array().unwrap().len() <= 1);

    let erased = app.delete(path).await;
    assert_eq!(erased.status, 200, "{}", erased.body);
    assert_eq!(erased.body["data"]["done"], true);
    let pseudonym = erased.body["data"]["invoices_kept_as"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(pseudonym.starts_with("anon_") && !pseudonym.contains("zoe"));

    let after = app.get_as(&admin, &format!("{path}/export")).await.body["data"].clone();
    for field in [
        "events",
        "periods",
        "daily",
        "reservations",
        "alerts",
        "invoices",
    ] {
        assert_eq!(after[field], json!([]), "{field}");
    }
    assert_eq!(after["subscription"], json!(null));
    // Erasing again is harmless.
    assert_eq!(app.delete(path).await.body["data"]["done"], true);
    // The user's usage reads as a new user's.
    let usage = app.get("/api/subscription/usage/zoe").await;
    assert_eq!(usage.body["data"]["total_calls"], 0);
}

#[tokio::test]
async fn erasing_a_user_deletes_the_budgets_on_its_own_scope_only() {
    let app = TestApp::spawn().await;
    let budget = |scope: serde_json::Value| json!({"scope": scope, "limits": {"cost_usd": "5"}, "window": "day", "mode": "hard"});
    let b = "/api/subscription/budgets";
    app.put(
        &format!("{b}/zoe-daily"),
        budget(json!({"kind": "user", "user_id": "zoe"})),
    )
    .await
    .assert_ok("zoe's budget");
    app.put(
        &format!("{b}/ann-daily"),
        budget(json!({"kind": "user", "user_id": "ann"})),
    )
    .await
    .assert_ok("ann's budget");
    app.put(
        &format!("{b}/acme-daily"),
        budget(json!({"kind": "org", "org_id": "acme"})),
    )
    .await
    .assert_ok("acme's budget");

    let erased = app.delete("/api/subscription/user/zoe").await;
    assert_eq!(erased.status, 200, "{}", erased.body);
    assert_eq!(erased.body["data"]["records_changed"], 1, "{}", erased.body);
    assert_eq!(app.get(&format!("{b}/zoe-daily")).await.status, 404);
    assert_eq!(app.get(&format!("{b}/ann-daily")).await.status, 200);
    assert_eq!(app.get(&format!("{b}/acme-daily")).await.status, 200);
    let listed = app.get(&format!("{b}?user_id=zoe")).await;
    assert_eq!(listed.body["data"]["budgets"], json!([]), "{}", listed.body);
}
