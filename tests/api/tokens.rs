//! End-user tokens through the router (docs/web.md): minted with a service key,
//! they open exactly their user's reads and mark-read of their user's alerts; anything
//! else is 403, a bad or expired token 401; rotation keeps or kills old tokens as asked.

use axum::body::Body;
use axum::http::Request;
use chrono::Duration;
use serde_json::{json, Value};

use meter_core::testing::TestClock;
use meter_tests::TestApp;

const P: &str = "/api/subscription";

async fn mint(app: &TestApp, body: Value) -> String {
    let r = app.post(&format!("{P}/tokens"), body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["data"]["token"].as_str().unwrap().to_owned()
}

/// 92 gemini calls for `user` now (not a minute ago: that may be last period at
/// midnight): the 80 % and 90 % alerts of the Free plan.
async fn usage_with_alerts(app: &TestApp, user: &str) {
    let now = app.meter.now();
    let events: Vec<Value> = (0..92)
        .map(|i| {
            json!({"event_id": format!("{user}-{i}"), "user_id": user, "provider": "gemini",
                        "model": "gemini-2.5-flash", "input_tokens": 10,
                        "timestamp": now.to_rfc3339()})
        })
        .collect();
    assert_eq!(app.usage(json!({ "events": events })).await.status, 200);
}

async fn post_empty(app: &TestApp, key: &str, path: &str) -> meter_tests::Reply {
    let req = Request::post(path)
        .header("authorization", format!("Bearer {key}"))
        .body(Body::empty())
        .unwrap();
    app.send(req).await
}

fn reads(user: &str) -> Vec<String> {
    vec![
        format!("{P}/usage/{user}"),
        format!("{P}/usage/{user}/trends?months=12"),
        format!("{P}/dashboard/{user}"),
        format!("{P}/alerts/{user}?limit=5"),
        format!("{P}/billing/{user}"),
        format!("{P}/user/{user}/subscription"),
    ]
}

#[tokio::test]
async fn a_token_reads_exactly_what_the_service_key_reads_for_its_user() {
    let app = TestApp::spawn().await;
    usage_with_alerts(&app, "alice").await;
    let r = app
        .post(
            &format!("{P}/tokens"),
            json!({"user_id": "alice", "ttl_seconds": 600}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let data = &r.body["data"];
    let token = data["token"].as_str().unwrap();
    assert!(
        token.starts_with("mt_"),
        "tokens are told from keys by their prefix"
    );
    assert_eq!(data["token_type"], "Bearer");
    assert_eq!(data["scope"], json!({"kind": "user", "user_id": "alice"}));
    let expires: chrono::DateTime<chrono::Utc> =
        data["expires_at"].as_str().unwrap().parse().unwrap();
    assert!(
        (expires - app.meter.now() - Duration::seconds(600))
            .num_seconds()
            .abs()
            <= 2
    );

    for path in reads("alice") {
        let with_token = app.get_as(token, &path).await;
        assert_eq!(with_token.status, 200, "{path}: {}", with_token.body);
        let with_key = app.get(&path).await;
        if !path.contains("/dashboard/") && !path.contains("/subscription") {
            // (the dashboard's projection and the period's days move with the clock)
            assert_eq!(with_token.body, with_key.body, "{path}");
        }
    }
    // HEAD of a read is a read too.
    let head = Request::head(format!("{P}/usage/alice"))
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(app.send(head).await.status, 200);
}

#[tokio::test]
async fn a_token_is_forbidden_for_another_user_and_every_other_route() {
    let app = TestApp::spawn().await;
    usage_with_alerts(&app, "bob").await;
    let token = mint(&app, json!({"user_id": "alice"})).await;
    for path in reads("bob") {
        let r = app.get_as(&token, &path).await;
        assert_eq!((r.status.as_u16(), r.code()), (403, "forbidden"), "{path}");
    }
    // An id that differs only in case or encoding is another user.
    for path in [format!("{P}/usage/Alice"), format!("{P}/usage/alice%2Fx")] {
        assert_eq!(app.get_as(&token, &path).await.status, 403, "{path}");
    }
    let writes = [
        (
            "POST",
            format!("{P}/check"),
            json!({"user_id": "alice", "provider": "gemini"}),
        ),
        ("POST", format!("{P}/usage"), json!({"events": []})),
        ("POST", format!("{P}/tokens"), json!({"user_id": "alice"})),
        (
            "POST",
            format!("{P}/pricing/quote"),
            json!({"provider": "gemini"}),
        ),
        (
            "PUT",
            format!("{P}/user/alice/subscription"),
            json!({"plan": "pro"}),
        ),
        ("PUT", format!("{P}/plans/free"), json!({})),
        ("POST", format!("{P}/reservations/rsv_x/release"), json!({})),
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
    for path in [
        format!("{P}/plans"),
        format!("{P}/pricing"),
        format!("{P}/user/alice/export"),
        format!("{P}/admin/users"),
        format!("{P}/admin/alerts"),
    ] {
        let r = app.get_as(&token, &path).await;
        assert_eq!((r.status.as_u16(), r.code()), (403, "forbidden"), "{path}");
    }
    let delete = Request::delete(format!("{P}/user/alice"))
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(app.send(delete).await.status, 403);
    // Nothing of bob's changed: still two unread alerts.
    let alerts = app.get(&format!("{P}/alerts/bob")).await;
    assert_eq!(alerts.body["data"]["unread_count"], 2);
}

#[tokio::test]
async fn a_token_marks_its_users_alerts_read_and_no_one_elses() {
    let app = TestApp::spawn().await;
    usage_with_alerts(&app, "alice").await;
    usage_with_alerts(&app, "bob").await;
    let token = mint(&app, json!({"user_id": "alice"})).await;
    let theirs = app.get(&format!("{P}/alerts/bob")).await.body["data"]["alerts"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let ours = app.get(&format!("{P}/alerts/alice")).await.body["data"]["alerts"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let r = post_empty(&app, &token, &format!("{P}/alerts/{theirs}/mark-read")).await;
    assert_eq!((r.status.as_u16(), r.code()), (403, "forbidden"));
    let r = post_empty(&app, &token, &format!("{P}/alerts/no-such-alert/mark-read")).await;
    assert_eq!((r.status.as_u16(), r.code()), (404, "not_found"));
    let r = post_empty(&app, &token, &format!("{P}/alerts/{ours}/mark-read")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"], json!({"alert_id": ours, "read": true}));

    assert_eq!(
        app.get(&format!("{P}/alerts/alice")).await.body["data"]["unread_count"],
        1
    );
    assert_eq!(
        app.get(&format!("{P}/alerts/bob")).await.body["data"]["unread_count"],
        2
    );
}

#[tokio::test]
async fn an_expired_forged_or_foreign_token_is_unauthorized() {
    let clock = TestClock::at("2025-03-10T12:00:00Z");
    let app = TestApp::spawn_at(&clock).await;
    let token = mint(&app, json!({"user_id": "alice", "ttl_seconds": 60})).await;
    let path = format!("{P}/usage/alice");
    assert_eq!(app.get_as(&token, &path).await.status, 200);
    clock.set(clock.now() + Duration::seconds(59));
    assert_eq!(app.get_as(&token, &path).await.status, 200);
    clock.set(clock.now() + Duration::seconds(1));
    let r = app.get_as(&token, &path).await;
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (401, "unauthorized"),
        "expired"
    );

    clock.set(clock.now() - Duration::seconds(30));
    let (payload, signature) = token.split_once('.').unwrap();
    // Flip the last signature character; the payload is untouched.
    let mut forged = signature.to_owned();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    for bad in [
        format!("{payload}.{forged}"),
        format!("{payload}."),
        "mt_garbage".to_owned(),
        format!("mt_{}", "x".repeat(3000)),
        token.replace("mt_", "mk_"),
    ] {
        let r = app.get_as(&bad, &path).await;
        assert_eq!(
            (r.status.as_u16(), r.code()),
            (401, "unauthorized"),
            "{bad:.40}"
        );
    }
    // A token minted by another deployment (its own keys) is not ours.
    let other = TestApp::spawn().await;
    let foreign = mint(&other, json!({"user_id": "alice"})).await;
    assert_eq!(app.get_as(&foreign, &path).await.status, 401);
    // And the token still works (none of the above changed anything).
    assert_eq!(app.get_as(&token, &path).await.status, 200);
}

#[tokio::test]
async fn minting_needs_a_service_key_a_user_and_a_ttl_of_at_most_a_day() {
    let app = TestApp::spawn().await;
    let no_key = Request::post(format!("{P}/tokens"))
        .header("content-type", "application/json")
        .body(Body::from(json!({"user_id": "alice"}).to_string()))
        .unwrap();
    assert_eq!(app.send(no_key).await.status, 401);
    let admin = app
        .post_as(
            &app.admin_key.clone(),
            &format!("{P}/tokens"),
            json!({"user_id": "alice"}),
        )
        .await;
    assert_eq!(admin.status, 200, "an admin key may mint too");
    for (body, code) in [
        (
            json!({"user_id": "alice", "ttl_seconds": 86_401}),
            "out_of_range",
        ),
        (
            json!({"user_id": "alice", "ttl_seconds": 0}),
            "out_of_range",
        ),
        (
            json!({"user_id": "alice", "org_id": "acme"}),
            "validation_failed",
        ),
        (json!({"ttl_seconds": 60}), "validation_failed"),
        (
            json!({"user_id": "alice", "role": "admin"}),
            "unknown_field",
        ),
    ] {
        let r = app.post(&format!("{P}/tokens"), body.clone()).await;
        assert_eq!((r.status.as_u16(), r.code()), (422, code), "{body}");
    }
    let r = app
        .post(
            &format!("{P}/tokens"),
            json!({"user_id": "alice", "ttl_seconds": 86_400}),
        )
        .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn the_signing_secret_is_in_no_response_and_rotation_keeps_old_tokens_for_the_grace_period() {
    let clock = TestClock::at("2025-03-10T12:00:00Z");
    let app = TestApp::spawn_at(&clock).await;
    let first = app
        .post(
            &format!("{P}/tokens"),
            json!({"user_id": "alice", "ttl_seconds": 86_400}),
        )
        .await;
    let old = first.body["data"]["token"].as_str().unwrap().to_owned();
    let keys = app
        .store
        .get_token_keys(&app.tenant)
        .await
        .unwrap()
        .unwrap();
    let stored = keys.to_stored();
    let secret: Value = serde_json::from_str(&stored).unwrap();
    let secret = secret["current"]["secret"].as_str().unwrap();
    assert!(!first.body.to_string().contains(secret));
    assert!(!old.contains(secret));

    // A rotation with a grace period: old tokens live on until it ends.
    let rotation = app
        .meter
        .rotate_token_keys(&app.tenant, Duration::hours(1))
        .await
        .unwrap();
    assert_ne!(rotation.key_id, keys.current.id);
    assert!(!serde_json::to_string(&rotation).unwrap().contains(secret));
    let new = mint(&app, json!({"user_id": "alice", "ttl_seconds": 86_400})).await;
    let path = format!("{P}/dashboard/alice");
    assert_eq!(app.get_as(&old, &path).await.status, 200);
    assert_eq!(app.get_as(&new, &path).await.status, 200);
    clock.set(clock.now() + Duration::minutes(61));
    assert_eq!(
        app.get_as(&old, &path).await.status,
        401,
        "past the grace period"
    );
    assert_eq!(app.get_as(&new, &path).await.status, 200);

    // A rotation without grace (a leaked key): the tokens of the key before die at once.
    app.meter
        .rotate_token_keys(&app.tenant, Duration::zero())
        .await
        .unwrap();
    assert_eq!(app.get_as(&new, &path).await.status, 401);
    let newest = mint(&app, json!({"user_id": "alice"})).await;
    assert_eq!(app.get_as(&newest, &path).await.status, 200);
}

#[tokio::test]
async fn a_rotation_made_by_another_process_is_seen_at_once() {
    let app = TestApp::spawn().await;
    let before = mint(&app, json!({"user_id": "alice"})).await;
    // Another process (another Meter over the same store) rotates and mints.
    let other = meter_core::service::Meter::new(
        app.store.clone(),
        std::sync::Arc::new(meter_core::alerts::LogPublisher),
    );
    other
        .rotate_token_keys(&app.tenant, Duration::hours(24))
        .await
        .unwrap();
    let caller = meter_core::service::Caller {
        tenant: app.tenant.clone(),
        role: meter_core::domain::Role::Service,
        key_id: "test".into(),
    };
    let after = other
        .mint_token(
            &caller,
            &meter_core::domain::UserId::parse("alice").unwrap(),
            600,
        )
        .await
        .unwrap()
        .token;
    // This process cached the old keys; a token of the new key makes it read them again.
    let path = format!("{P}/usage/alice");
    assert_eq!(app.get_as(&after, &path).await.status, 200);
    assert_eq!(app.get_as(&before, &path).await.status, 200);
}
