//! `GET /admin/orgs`: the tenant's orgs (subscribed, or named on events this period) in
//! org-id order with plan and this period's pooled usage, the numbers of
//! `GET /org/{org_id}/usage`.

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

async fn org_calls(app: &TestApp, user: &str, org: Option<&str>, n: usize) {
    let now = app.meter.now();
    let events: Vec<Value> = (0..n)
        .map(|i| {
            let mut e = json!({"event_id": format!("{user}-{}-{i}", org.unwrap_or("none")),
                "user_id": user, "provider": "gemini", "model": "gemini-2.5-flash",
                "input_tokens": 1000, "output_tokens": 10,
                "timestamp": (now - Duration::minutes(1)).to_rfc3339()});
            if let Some(o) = org {
                e["org_id"] = json!(o);
            }
            e
        })
        .collect();
    let r = app.usage(json!({ "events": events })).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

fn dec(v: &Value) -> Decimal {
    v.as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn admin_orgs_pages_subscribed_and_active_orgs_with_their_pooled_usage() {
    let app = TestApp::spawn_at(&mid_period()).await;
    let admin = app.admin_key.clone();
    for org in ["acme", "zeta"] {
        let r = app
            .put(
                &format!("{P}/org/{org}/subscription"),
                json!({"plan": "pro"}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    org_calls(&app, "ann", Some("acme"), 3).await;
    org_calls(&app, "bob", Some("acme"), 2).await;
    org_calls(&app, "bob", Some("beta"), 4).await;
    // A call naming no org is no org's.
    org_calls(&app, "cyd", None, 5).await;

    let first = app.get_as(&admin, &format!("{P}/admin/orgs?limit=2")).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let page = &first.body["data"];
    let ids: Vec<&str> = page["orgs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["org_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["acme", "beta"]);
    let cursor = page["next_cursor"].as_str().unwrap();
    let second = app
        .get_as(&admin, &format!("{P}/admin/orgs?limit=2&cursor={cursor}"))
        .await;
    assert_eq!(second.status, 200, "{}", second.body);
    let rest = &second.body["data"];
    assert_eq!(rest["orgs"].as_array().unwrap().len(), 1);
    assert_eq!(rest["orgs"][0]["org_id"], "zeta");
    assert_eq!(rest["next_cursor"], Value::Null);

    for (row, org) in [(&page["orgs"][0], "acme"), (&page["orgs"][1], "beta")] {
        let usage = app.get_as(&admin, &format!("{P}/org/{org}/usage")).await;
        assert_eq!(usage.status, 200, "{}", usage.body);
        let u = &usage.body["data"];
        assert_eq!(row["calls"], u["total_calls"], "{org}");
        assert_eq!(row["tokens"], u["total_tokens"], "{org}");
        assert_eq!(dec(&row["cost_usd"]), dec(&u["total_cost"]), "{org}");
        assert_eq!(row["plan"], u["plan"], "{org}");
        assert_eq!(row["usage_status"], u["usage_status"], "{org}");
        assert_eq!(row["period"]["name"], u["period"]["name"], "{org}");
        assert!(dec(&row["cost_usd"]) > Decimal::ZERO, "{org}");
    }
    assert_eq!(page["orgs"][0]["calls"], 5);
    assert_eq!(page["orgs"][1]["calls"], 4);
    assert_eq!(
        (
            page["orgs"][0]["plan"].as_str(),
            page["orgs"][0]["subscription_status"].as_str()
        ),
        (Some("pro"), Some("active"))
    );
    assert_eq!(page["orgs"][1]["plan"], Value::Null);
    assert_eq!(page["orgs"][1]["subscription_status"], Value::Null);
    assert_eq!(page["orgs"][1]["max_usage_percentage"], Value::Null);
    assert_eq!(rest["orgs"][0]["calls"], 0);
    assert_eq!(rest["orgs"][0]["cost_usd"], "0");
}

#[tokio::test]
async fn admin_orgs_is_for_admins_and_refuses_bad_paging() {
    let app = TestApp::spawn_at(&mid_period()).await;
    let admin = app.admin_key.clone();
    let r = app.get(&format!("{P}/admin/orgs")).await;
    assert_eq!(r.status, 403, "{}", r.body);
    for q in ["limit=0", "limit=101", "limit=x", "cursor=a%20b", "other=1"] {
        let r = app.get_as(&admin, &format!("{P}/admin/orgs?{q}")).await;
        assert_eq!(r.status, 400, "{q}: {}", r.body);
    }
    let empty = app.get_as(&admin, &format!("{P}/admin/orgs")).await;
    assert_eq!(empty.status, 200, "{}", empty.body);
    assert_eq!(empty.body["data"]["orgs"], json!([]));
    assert_eq!(empty.body["data"]["next_cursor"], Value::Null);
}
