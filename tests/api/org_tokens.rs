//! Organisation tokens through the router (SPEC §14, docs/web.md): `POST /tokens` with
//! `org_id` mints a token that opens exactly that org's reads (usage, dashboard, billing,
//! alerts, members, subscription, wallet) and mark-read of that org's alerts; another
//! org, a user's routes, writes and admin routes answer 403 as for a user token's foreign
//! route; exactly one of `user_id` and `org_id` is required.

use axum::body::Body;
use axum::http::Request;
use serde_json::{json, Value};

use meter_core::testing::TestClock;
use meter_tests::TestApp;

const P: &str = "/api/subscription";

async fn mint(app: &TestApp, body: Value) -> String {
    let r = app.post(&format!("{P}/tokens"), body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["data"]["token"].as_str().unwrap().to_owned()
}

/// `org` on a 10-call plan with a soft daily budget on its pooled calls; 6 calls by two
/// members (3 in team red): the budget's 50 % alert, owned by the org.
async fn seed_org(app: &TestApp, org: &str) {
    app.put(
        &format!("{P}/plans/orgten"),
        json!({"tier": "custom", "monthly_price_usd": "10", "yearly_price_usd": "100",
               "limits": {"calls:gemini": 10}}),
    )
    .await
    .assert_ok("plan");
    app.put(
        &format!("{P}/org/{org}/subscription"),
        json!({"plan": "orgten"}),
    )
    .await
    .assert_ok("org subscription");
    app.put(
        &format!("{P}/budgets/{org}-day"),
        json!({"scope": {"kind": "org", "org_id": org}, "limits": {"calls:*": 10},
               "window": "day", "mode": "soft", "alert_thresholds": [50]}),
    )
    .await
    .assert_ok("budget");
    let events: Vec<Value> = (0..6)
        .map(|i| {
            let mut e = json!({"event_id": format!("{org}-{i}"), "user_id": format!("{org}-m{}", i % 2),
                "org_id": org, "provider": "gemini", "model": "gemini-2.5-flash",
                "input_tokens": 100});
            if i % 2 == 0 {
                e["team_id"] = json!("red");
            }
            e
        })
        .collect();
    app.usage(json!({ "events": events }))
        .await
        .assert_ok("usage");
}

fn org_reads(org: &str) -> Vec<String> {
    vec![
        format!("{P}/org/{org}/usage"),
        format!("{P}/org/{org}/dashboard"),
        format!("{P}/org/{org}/billing"),
        format!("{P}/org/{org}/alerts?limit=5"),
        format!("{P}/org/{org}/members?limit=10"),
        format!("{P}/org/{org}/subscription"),
        format!("{P}/wallet/org/{org}"),
    ]
}

async fn post_empty(app: &TestApp, key: &str, path: &str) -> meter_tests::Reply {
    let req = Request::post(path)
        .header("authorization", format!("Bearer {key}"))
        .body(Body::empty())
        .unwrap();
    app.send(req).await
}

#[tokio::test]
async fn an_org_token_reads_exactly_what_the_service_key_reads_for_its_org() {
    let clock = TestClock::at("2026-03-10T12:00:00Z");
    let app = TestApp::spawn_at(&clock).await;
    seed_org(&app, "acme").await;
    let r = app
        .post(
            &format!("{P}/tokens"),
            json!({"org_id": "acme", "ttl_seconds": 600}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let data = &r.body["data"];
    assert_eq!(data["scope"], json!({"kind": "org", "org_id": "acme"}));
    assert_eq!(data["expires_at"], "2026-03-10T12:10:00Z");
    let token = data["token"].as_str().unwrap();
    for path in org_reads("acme") {
        let with_token = app.get_as(token, &path).await;
        let with_key = app.get(&path).await;
        assert_eq!(with_key.status, 200, "{path}: {}", with_key.body);
        assert_eq!(with_token.status, 200, "{path}: {}", with_token.body);
        // The clock is fixed, so even the dashboard's projection is the same.
        assert_eq!(with_token.body, with_key.body, "{path}");
    }
    // The reads carry the seeded figures (what the web page shows).
    let usage = app.get_as(token, &format!("{P}/org/acme/usage")).await;
    assert_eq!(usage.body["data"]["total_calls"], 6, "{}", usage.body);
    let members = app
        .get_as(token, &format!("{P}/org/acme/members?limit=10"))
        .await;
    let data = &members.body["data"];
    assert_eq!(data["total_users"], 2, "{data}");
    assert_eq!(data["teams"][0]["team_id"], "red", "{data}");
    assert_eq!(data["teams"][0]["calls"], 3, "{data}");
    // HEAD of a read is a read too.
    let head = Request::head(format!("{P}/org/acme/usage"))
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(app.send(head).await.status, 200);
}

#[tokio::test]
async fn an_org_token_is_forbidden_for_another_org_users_writes_and_admin() {
    let clock = TestClock::at("2026-03-10T12:00:00Z");
    let app = TestApp::spawn_at(&clock).await;
    seed_org(&app, "acme").await;
    seed_org(&app, "globex").await;
    let token = mint(&app, json!({"org_id": "acme"})).await;
    for path in org_reads("globex") {
        let r = app.get_as(&token, &path).await;
        assert_eq!((r.status.as_u16(), r.code()), (403, "forbidden"), "{path}");
    }
    // An id that differs only in case is another org.
    let r = app.get_as(&token, &format!("{P}/org/Acme/usage")).await;
    assert_eq!(r.status, 403);
    // A user's reads, even of a member or of a user named like the org, are not the org's.
    for user in ["acme-m0", "acme"] {
        for path in [
            format!("{P}/usage/{user}"),
            format!("{P}/dashboard/{user}"),
            format!("{P}/alerts/{user}"),
            format!("{P}/billing/{user}"),
            format!("{P}/user/{user}/subscription"),
            format!("{P}/wallet/user/{user}"),
            format!("{P}/usage/{user}/trends?months=6"),
        ] {
            let r = app.get_as(&token, &path).await;
            assert_eq!((r.status.as_u16(), r.code()), (403, "forbidden"), "{path}");
        }
    }
    for path in [
        format!("{P}/org/acme/export"),
        format!("{P}/plans"),
        format!("{P}/budgets"),
        format!("{P}/admin/users"),
        format!("{P}/admin/alerts"),
    ] {
        let r = app.get_as(&token, &path).await;
        assert_eq!((r.status.as_u16(), r.code()), (403, "forbidden"), "{path}");
    }
    let writes = [
        (
            "PUT",
            format!("{P}/org/acme/subscription"),
            json!({"plan": "orgten"}),
        ),
        (
            "PUT",
            format!("{P}/wallet/org/acme/settings"),
            json!({"auto_recharge": null}),
        ),
        ("POST", format!("{P}/tokens"), json!({"org_id": "acme"})),
        ("POST", format!("{P}/usage"), json!({"events": []})),
        (
            "POST",
            format!("{P}/check"),
            json!({"user_id": "acme-m0", "org_id": "acme", "provider": "gemini"}),
        ),
    ];
    for (method, path, body) in writes {
        let req = Request::builder()
            .method(method)
            .uri(&path)
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        let r = app.send(req).await;
        assert_eq!(
            (r.status.as_u16(), r.code()),
            (403, "forbidden"),
            "{method} {path}"
        );
    }
    // A user's token does not open the org's reads either.
    let user_token = mint(&app, json!({"user_id": "acme"})).await;
    for path in org_reads("acme") {
        let r = app.get_as(&user_token, &path).await;
        assert_eq!((r.status.as_u16(), r.code()), (403, "forbidden"), "{path}");
    }
    // Nothing changed: the org's plan is still orgten, its alert still unread.
    let sub = app.get(&format!("{P}/org/acme/subscription")).await;
    assert_eq!(sub.body["data"]["subscription"]["plan"], "orgten");
    let alerts = app.get(&format!("{P}/org/acme/alerts")).await;
    assert_eq!(alerts.body["data"]["unread_count"], 1, "{}", alerts.body);
}

#[tokio::test]
async fn an_org_token_marks_its_orgs_alerts_read_and_no_one_elses() {
    let clock = TestClock::at("2026-03-10T12:00:00Z");
    let app = TestApp::spawn_at(&clock).await;
    seed_org(&app, "acme").await;
    seed_org(&app, "globex").await;
    // A user named like the org with alerts of their own (92 of the Free plan's 100 calls).
    let events: Vec<Value> = (0..92)
        .map(|i| {
            json!({"event_id": format!("u-{i}"), "user_id": "acme", "provider": "gemini",
                   "model": "gemini-2.5-flash", "input_tokens": 10})
        })
        .collect();
    app.usage(json!({ "events": events }))
        .await
        .assert_ok("user usage");
    let first = |body: &Value| body["data"]["alerts"][0]["id"].as_str().unwrap().to_owned();
    let ours = first(&app.get(&format!("{P}/org/acme/alerts")).await.body);
    let theirs = first(&app.get(&format!("{P}/org/globex/alerts")).await.body);
    let users = first(&app.get(&format!("{P}/alerts/acme")).await.body);
    let token = mint(&app, json!({"org_id": "acme"})).await;
    let user_token = mint(&app, json!({"user_id": "acme"})).await;

    for id in [&theirs, &users] {
        let r = post_empty(&app, &token, &format!("{P}/alerts/{id}/mark-read")).await;
        assert_eq!((r.status.as_u16(), r.code()), (403, "forbidden"), "{id}");
    }
    // The user named like the org cannot mark the org's alert read.
    let r = post_empty(&app, &user_token, &format!("{P}/alerts/{ours}/mark-read")).await;
    assert_eq!((r.status.as_u16(), r.code()), (403, "forbidden"));
    let r = post_empty(&app, &token, &format!("{P}/alerts/no-such-alert/mark-read")).await;
    assert_eq!((r.status.as_u16(), r.code()), (404, "not_found"));
    let r = post_empty(&app, &token, &format!("{P}/alerts/{ours}/mark-read")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"], json!({"alert_id": ours, "read": true}));

    let unread = |body: &Value| body["data"]["unread_count"].clone();
    assert_eq!(
        unread(&app.get(&format!("{P}/org/acme/alerts")).await.body),
        0
    );
    assert_eq!(
        unread(&app.get(&format!("{P}/org/globex/alerts")).await.body),
        1
    );
    assert_eq!(unread(&app.get(&format!("{P}/alerts/acme")).await.body), 2);
}

#[tokio::test]
async fn a_mint_needs_exactly_one_of_user_id_and_org_id() {
    let app = TestApp::spawn().await;
    for (body, fields) in [
        (
            json!({"user_id": "alice", "org_id": "acme"}),
            ["user_id", "org_id"],
        ),
        (json!({"ttl_seconds": 60}), ["user_id", "org_id"]),
    ] {
        let r = app.post(&format!("{P}/tokens"), body.clone()).await;
        assert_eq!(
            (r.status.as_u16(), r.code()),
            (422, "validation_failed"),
            "{body}"
        );
        let errors = r.body["error"]["details"]["errors"].as_array().unwrap();
        let named: Vec<&str> = errors
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert_eq!(named, fields, "{}", r.body);
    }
    for (body, code) in [
        (json!({"org_id": "a#b"}), "invalid_id"),
        (json!({"org_id": ""}), "invalid_id"),
        (
            json!({"org_id": "acme", "ttl_seconds": 86_401}),
            "out_of_range",
        ),
    ] {
        let r = app.post(&format!("{P}/tokens"), body.clone()).await;
        assert_eq!((r.status.as_u16(), r.code()), (422, code), "{body}");
    }
    // An org token cannot mint (minting needs a service key).
    let token = mint(&app, json!({"org_id": "acme"})).await;
    let r = app
        .post_as(&token, &format!("{P}/tokens"), json!({"org_id": "acme"}))
        .await;
    assert_eq!(r.status, 403);
}
