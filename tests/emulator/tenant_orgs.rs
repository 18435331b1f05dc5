//! `GET /admin/orgs` on DynamoDB through the router: the orgs listed come from two
//! partitions of the `subs` index (org subscriptions, and the org member directory items
//! an event's transaction indexes), and a page costs the same few requests whatever the
//! number of orgs on it.

use serde_json::{json, Value};

use super::{ops, setup_at};

const P: &str = "/api/subscription";

#[tokio::test]
async fn an_org_page_lists_subscribed_and_active_orgs_in_a_fixed_number_of_requests() {
    let clock = meter_core::testing::TestClock::at("2026-03-10T09:00:00Z");
    let (app, counter) = setup_at(&clock).await;
    let admin = app.admin_key.clone();
    for org in ["acme", "zeta"] {
        app.put(
            &format!("{P}/org/{org}/subscription"),
            json!({"plan": "pro"}),
        )
        .await
        .assert_ok("org subscription");
    }
    for (id, user, org) in [
        ("e1", "ann", Some("acme")),
        ("e2", "bob", Some("acme")),
        ("e3", "bob", Some("beta")),
        ("e4", "cyd", None),
    ] {
        let mut e = json!({"event_id": id, "user_id": user, "provider": "gemini",
                           "model": "gemini-2.5-flash", "input_tokens": 1000});
        if let Some(o) = org {
            e["org_id"] = json!(o);
        }
        app.usage(e).await.assert_ok(id);
    }

    counter.take();
    let first = app.get_as(&admin, &format!("{P}/admin/orgs?limit=2")).await;
    first.assert_ok("first page");
    let small = counter.take();
    let page = &first.body["data"];
    let ids: Vec<&str> = page["orgs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["org_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["acme", "beta"]);
    assert_eq!(page["next_cursor"], "beta");
    let usage = app.get_as(&admin, &format!("{P}/org/acme/usage")).await;
    usage.assert_ok("acme's usage");
    assert_eq!(page["orgs"][0]["calls"], usage.body["data"]["total_calls"]);
    assert_eq!(page["orgs"][0]["calls"], 2);
    assert_eq!(page["orgs"][0]["plan"], "pro");
    assert_eq!(page["orgs"][1]["calls"], 1);
    assert_eq!(page["orgs"][1]["plan"], Value::Null);
    let rest = app
        .get_as(&admin, &format!("{P}/admin/orgs?limit=2&cursor=beta"))
        .await;
    rest.assert_ok("second page");
    assert_eq!(rest.body["data"]["orgs"][0]["org_id"], "zeta");
    assert_eq!(rest.body["data"]["orgs"].as_array().map(Vec::len), Some(1));
    assert_eq!(rest.body["data"]["next_cursor"], Value::Null);

    // 60 more orgs with usage: a page of 60 costs what a page of 2 did.
    for i in 0..60 {
        let e = json!({"event_id": format!("o{i}"), "user_id": "dee", "org_id": format!("org{i:02}"),
                       "provider": "gemini", "model": "gemini-2.5-flash", "input_tokens": 10});
        app.usage(e).await.assert_ok("org event");
    }
    counter.take();
    let big = app
        .get_as(&admin, &format!("{P}/admin/orgs?limit=60"))
        .await;
    big.assert_ok("a page of 60");
    assert_eq!(big.body["data"]["orgs"].as_array().map(Vec::len), Some(60));
    let cost = counter.take();
    assert_eq!(cost, small, "a page of 60 orgs costs what a page of 2 did");
    assert_eq!(cost, ops(&[("Query", 2), ("BatchGetItem", 1)]));
}
