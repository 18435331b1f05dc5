//! The admin's tenant-wide reads: `GET /admin/users` and `GET /admin/alerts`.

use chrono::Duration;
use rust_decimal::Decimal;
use serde_json::{json, Value};

use meter_core::testing::TestClock;
use meter_tests::TestApp;

/// A clock in the middle of a period, so that "a minute ago" and every read after it
/// fall in the same period whatever the hour the suite runs at.
fn mid_period() -> TestClock {
    TestClock::at("2026-11-15T12:00:00Z")
}

const P: &str = "/api/subscription";

async fn calls(app: &TestApp, user: &str, n: usize, model: &str) {
    let now = app.meter.now();
    let events: Vec<Value> = (0..n)
        .map(|i| {
            json!({"event_id": format!("{user}-{model}-{i}"), "user_id": user, "provider": "gemini",
                        "model": model, "input_tokens": 100, "output_tokens": 10,
                        "timestamp": (now - Duration::minutes(1)).to_rfc3339()})
        })
        .collect();
    let r = app.usage(json!({ "events": events })).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn admin_users_pages_the_tenant_with_plan_status_and_this_periods_usage() {
    let app = TestApp::spawn_at(&mid_period()).await;
    calls(&app, "cyd", 85, "gemini-2.5-flash").await;
    calls(&app, "abe", 2, "gemini-2.5-flash").await;
    calls(&app, "abe", 1, "gemini-unknown-model").await;
    assert_eq!(
        app.put(&format!("{P}/user/bo/subscription"), json!({"plan": "pro"}))
            .await
            .status,
        200
    );

    let admin = app.admin_key.clone();
    let first = app
        .get_as(&admin, &format!("{P}/admin/users?limit=2"))
        .await;
    assert_eq!(first.status, 200, "{}", first.body);
    let page = &first.body["data"];
    let ids: Vec<&str> = page["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["user_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["abe", "bo"]);
    let cursor = page["next_cursor"].as_str().unwrap();
    let second = app
        .get_as(&admin, &format!("{P}/admin/users?limit=2&cursor={cursor}"))
        .await;
    let rest = &second.body["data"];
    assert_eq!(rest["users"].as_array().unwrap().len(), 1);
    assert_eq!(rest["next_cursor"], Value::Null);

    let abe = &page["users"][0];
    let usage = app.get(&format!("{P}/usage/abe")).await.body["data"].clone();
    assert_eq!(abe["calls"], usage["total_calls"]);
    assert_eq!(abe["tokens"], usage["total_tokens"]);
    assert_eq!(abe["cost_usd"], usage["total_cost"]);
    assert_eq!(abe["unpriced_calls"], 1);
    assert_eq!(abe["plan"], "free");
    assert_eq!(abe["subscription_status"], Value::Null);
    assert_eq!(abe["period"]["name"], usage["period"]["name"]);
    assert!(
        abe["cost_usd"]
            .as_str()
            .unwrap()
            .parse::<Decimal>()
            .unwrap()
            > Decimal::ZERO
    );

    let bo = &page["users"][1];
    assert_eq!(
        (bo["plan"].as_str(), bo["subscription_status"].as_str()),
        (Some("pro"), Some("active"))
    );
    assert_eq!(
        (bo["calls"].as_u64(), bo["cost_usd"].as_str()),
        (Some(0), Some("0"))
    );

    let cyd = &rest["users"][0];
    assert_eq!(cyd["usage_status"], "warning");
    assert_eq!(cyd["max_usage_percentage"], 85.0);
    assert_eq!(cyd["unread_alerts"], 1, "the 80 % alert");
}

#[tokio::test]
async fn admin_alerts_are_the_tenants_newest_across_users() {
    let app = TestApp::spawn_at(&mid_period()).await;
    calls(&app, "dee", 80, "gemini-2.5-flash").await;
    calls(&app, "eve", 90, "gemini-2.5-flash").await;
    let r = app
        .get_as(
            &app.admin_key.clone(),
            &format!("{P}/admin/alerts?limit=10"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let alerts = r.body["data"]["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 3, "dee's 80 %, eve's 80 % and 90 %");
    let users: Vec<&str> = alerts
        .iter()
        .map(|a| a["user_id"].as_str().unwrap())
        .collect();
    assert_eq!(users.iter().filter(|u| **u == "eve").count(), 2);
    let times: Vec<&str> = alerts
        .iter()
        .map(|a| a["created_at"].as_str().unwrap())
        .collect();
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(times, sorted, "newest first");
    // The same fields as a user's alert list.
    let eve = app.get(&format!("{P}/alerts/eve")).await.body["data"]["alerts"].clone();
    let listed: Vec<&Value> = alerts.iter().filter(|a| a["user_id"] == "eve").collect();
    assert_eq!(listed[0], &eve[0]);
    let one = app
        .get_as(&app.admin_key.clone(), &format!("{P}/admin/alerts?limit=1"))
        .await;
    assert_eq!(one.body["data"]["alerts"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn admin_reads_need_an_admin_key_and_valid_parameters() {
    let app = TestApp::spawn_at(&mid_period()).await;
    for path in ["/admin/users", "/admin/alerts"] {
        let r = app.get(&format!("{P}{path}")).await;
        assert_eq!(
            (r.status.as_u16(), r.code()),
            (403, "forbidden"),
            "a service key: {path}"
        );
    }
    let admin = app.admin_key.clone();
    for (path, code) in [
        ("/admin/users?limit=0", "invalid_parameter"),
        ("/admin/users?limit=101", "invalid_parameter"),
        ("/admin/users?cursor=a%23b", "invalid_parameter"),
        ("/admin/users?sort=cost", "unknown_parameter"),
        ("/admin/alerts?limit=x", "invalid_parameter"),
        ("/admin/alerts?limit=101", "invalid_parameter"),
    ] {
        let r = app.get_as(&admin, &format!("{P}{path}")).await;
        assert_eq!((r.status.as_u16(), r.code()), (400, code), "{path}");
    }
    let empty = app.get_as(&admin, &format!("{P}/admin/users")).await;
    assert_eq!(empty.body["data"]["users"], json!([]));
}
