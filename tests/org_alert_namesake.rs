//! Issue 18: an org's alerts stay out of the alert list of a user whose id equals the
//! org's id. The org's budget alert is stored under the owner key `org#<org_id>`
//! (`Alert::owner_key`), which no user id can equal: `GET /alerts/{user_id}`, the user's
//! dashboard and export list the user's alerts only, `GET /org/{org_id}/alerts` the org's,
//! marking one read moves only its owner's unread count, and erasing the user leaves the
//! org's alerts. One story through the
//! router, run on SQLite (`tests/api`) and on DynamoDB (`tests/emulator`).

use std::sync::Arc;

use serde_json::{json, Value};

use meter_core::store::Store;
use meter_core::testing::TestClock;

use crate::TestApp;

const P: &str = "/api/subscription";

fn event(id: &str, user: &str, org: Option<&str>) -> Value {
    let mut e = json!({"event_id": id, "user_id": user, "provider": "gemini",
                       "model": "gemini-2.5-flash", "input_tokens": 1000});
    if let Some(org) = org {
        e["org_id"] = json!(org);
    }
    e
}

fn keys(alerts: &Value) -> Vec<String> {
    let mut keys: Vec<String> = alerts
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {alerts}"))
        .iter()
        .map(|a| a["key"].as_str().unwrap().to_owned())
        .filter(|k| k.starts_with("budget/"))
        .collect();
    keys.sort();
    keys
}

/// The story, on `store` (`None`: a fresh SQLite store).
pub async fn an_orgs_alerts_stay_out_of_its_namesake_users_list(store: Option<Arc<dyn Store>>) {
    let clock = TestClock::at("2026-03-10T12:00:00Z");
    let mut setup = TestApp::setup().clock(&clock);
    if let Some(store) = store {
        setup = setup.store(store);
    }
    let app = setup.spawn().await;
    for (id, scope) in [
        ("acme-pool", json!({"kind": "org", "org_id": "acme"})),
        ("acme-own", json!({"kind": "user", "user_id": "acme"})),
    ] {
        app.put(
            &format!("{P}/budgets/{id}"),
            json!({"scope": scope, "limits": {"calls:*": 2}, "window": "day",
                   "mode": "soft", "alert_thresholds": [50]}),
        )
        .await
        .assert_ok("budget");
    }
    // bob's call in org acme: the org's alert; the user acme's own call: the user's.
    app.usage(json!({"events": [event("b1", "bob", Some("acme"))]}))
        .await
        .assert_ok("bob");
    app.usage(json!({"events": [event("u1", "acme", None)]}))
        .await
        .assert_ok("acme the user");
    let org_key = "budget/acme-pool/2026-03-10T00:00:00Z/calls:*@50";
    let user_key = "budget/acme-own/2026-03-10T00:00:00Z/calls:*@50";

    let r = app.get(&format!("{P}/alerts/acme")).await;
    r.assert_ok("user alerts");
    assert_eq!(keys(&r.body["data"]["alerts"]), [user_key], "{}", r.body);
    assert_eq!(r.body["data"]["unread_count"], 1, "{}", r.body);
    assert_eq!(r.body["data"]["alerts"][0]["user_id"], "acme");
    assert!(r.body["data"]["alerts"][0].get("org_id").is_none());

    let r = app.get(&format!("{P}/org/acme/alerts")).await;
    r.assert_ok("org alerts");
    assert_eq!(keys(&r.body["data"]["alerts"]), [org_key], "{}", r.body);
    assert_eq!(r.body["data"]["unread_count"], 1, "{}", r.body);
    assert_eq!(r.body["data"]["alerts"][0]["org_id"], "acme");
    let org_alert = r.body["data"]["alerts"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let r = app.get(&format!("{P}/dashboard/acme")).await;
    r.assert_ok("dashboard");
    assert_eq!(
        keys(&r.body["data"]["alerts"]["items"]),
        [user_key],
        "{}",
        r.body
    );
    assert_eq!(r.body["data"]["alerts"]["unread_count"], 1, "{}", r.body);

    let r = app
        .get_as(&app.admin_key, &format!("{P}/user/acme/export"))
        .await;
    r.assert_ok("export");
    assert_eq!(keys(&r.body["data"]["alerts"]), [user_key], "{}", r.body);

    // The org's alert marked read: the org's unread count moves, the user's does not.
    app.post(&format!("{P}/alerts/{org_alert}/mark-read"), json!({}))
        .await
        .assert_ok("mark read");
    let r = app.get(&format!("{P}/org/acme/alerts")).await;
    assert_eq!(r.body["data"]["unread_count"], 0, "{}", r.body);
    let r = app.get(&format!("{P}/alerts/acme")).await;
    assert_eq!(r.body["data"]["unread_count"], 1, "{}", r.body);
    assert_eq!(r.body["data"]["alerts"][0]["read"], false, "{}", r.body);

    // Erasing the user acme leaves the org's alerts.
    app.delete(&format!("{P}/user/acme"))
        .await
        .assert_ok("erase");
    let r = app.get(&format!("{P}/alerts/acme")).await;
    assert!(keys(&r.body["data"]["alerts"]).is_empty(), "{}", r.body);
    let r = app.get(&format!("{P}/org/acme/alerts")).await;
    assert_eq!(keys(&r.body["data"]["alerts"]), [org_key], "{}", r.body);
}
