//! `org_id` and `team_id` on checks, usage events and quotes (§10): validated like user
//! ids, a team only with its org, stored with the event and exported; refusals change
//! nothing.

use serde_json::{json, Value};

use meter_tests::TestApp;

const P: &str = "/api/subscription";

fn event(id: &str, scopes: Value) -> Value {
    let mut e = json!({"event_id": id, "user_id": "ann", "provider": "gemini",
        "model": "gemini-2.5-flash", "input_tokens": 100, "output_tokens": 10});
    for (k, v) in scopes.as_object().unwrap() {
        e[k] = v.clone();
    }
    e
}

#[tokio::test]
async fn a_check_naming_an_org_and_team_is_answered_like_one_naming_only_its_user() {
    let app = TestApp::spawn().await;
    let plain = app
        .check(json!({"user_id": "ann", "provider": "gemini"}))
        .await;
    plain.assert_ok("plain");
    let scoped = app
        .check(
            json!({"user_id": "ann", "provider": "gemini", "org_id": "acme", "team_id": "search"}),
        )
        .await;
    scoped.assert_ok("scoped");
    // No budget and no org subscription: the user's plan alone decides, same answer.
    assert_eq!(scoped.body, plain.body);
}

#[tokio::test]
async fn scope_ids_are_validated_on_checks_events_and_quotes_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    let before = app.snapshot("ann").await;
    let bad: [(Value, &str, &str); 5] = [
        (json!({"team_id": "search"}), "team_id", "team_without_org"),
        (json!({"org_id": "acme corp"}), "org_id", "invalid_id"),
        (json!({"org_id": "a".repeat(129)}), "org_id", "invalid_id"),
        (
            json!({"org_id": "acme", "team_id": ""}),
            "team_id",
            "invalid_id",
        ),
        (json!({"org_id": 42}), "org_id", "invalid_type"),
    ];
    for (scopes, field, code) in bad {
        let mut check = json!({"user_id": "ann", "provider": "gemini"});
        let mut quote =
            json!({"provider": "gemini", "model": "gemini-2.5-flash", "input_tokens": 10});
        for (k, v) in scopes.as_object().unwrap() {
            check[k] = v.clone();
            quote[k] = v.clone();
        }
        let r = app.check(check).await;
        assert_eq!(r.status, 422, "check {scopes}: {}", r.body);
        let fields = &r.body["error"]["details"]["errors"];
        assert!(
            fields
                .as_array()
                .is_some_and(|f| f.iter().any(|e| e["field"] == field && e["code"] == code)),
            "check {scopes}: {}",
            r.body
        );

        let r = app.usage(event("scoped-bad", scopes.clone())).await;
        assert_eq!(r.status, 422, "event {scopes}: {}", r.body);
        assert!(
            r.body.to_string().contains(code),
            "event {scopes}: {}",
            r.body
        );

        let r = app.post(&format!("{P}/pricing/quote"), quote).await;
        assert_eq!(r.status, 422, "quote {scopes}: {}", r.body);
        assert!(
            r.body.to_string().contains(code),
            "quote {scopes}: {}",
            r.body
        );
    }
    assert_eq!(
        app.snapshot("ann").await,
        before,
        "a refusal stored something"
    );
}

#[tokio::test]
async fn an_events_org_and_team_are_stored_with_it_and_exported() {
    let app = TestApp::spawn().await;
    let r = app
        .usage(json!({"events": [
            event("with-team", json!({"org_id": "acme", "team_id": "search"})),
            event("with-org", json!({"org_id": "acme"})),
            event("alone", json!({})),
        ]}))
        .await;
    r.assert_ok("ingest");
    assert_eq!(r.body["data"]["recorded"], 3);

    // The same id with another org is another event: a conflict, not a duplicate.
    let r = app
        .usage(event("with-org", json!({"org_id": "globex"})))
        .await;
    r.assert_ok("conflict");
    assert_eq!(r.body["data"]["events"][0]["status"], "conflict");
    let r = app
        .usage(event("with-org", json!({"org_id": "acme"})))
        .await;
    assert_eq!(r.body["data"]["events"][0]["status"], "duplicate");

    let admin = app.admin_key.clone();
    let export = app.get_as(&admin, &format!("{P}/user/ann/export")).await;
    export.assert_ok("export");
    let events = export.body["data"]["events"].as_array().unwrap();
    let scopes_of = |id: &str| {
        let e = events.iter().find(|e| e["event_id"] == id).unwrap();
        (e.get("org_id").cloned(), e.get("team_id").cloned())
    };
    assert_eq!(
        scopes_of("with-team"),
        (Some(json!("acme")), Some(json!("search")))
    );
    assert_eq!(scopes_of("with-org"), (Some(json!("acme")), None));
    assert_eq!(scopes_of("alone"), (None, None));
}

#[tokio::test]
async fn a_quote_names_scopes_without_changing_its_price() {
    let app = TestApp::spawn().await;
    let body = json!({"provider": "gemini", "model": "gemini-2.5-flash", "input_tokens": 1000});
    let plain = app.post(&format!("{P}/pricing/quote"), body.clone()).await;
    plain.assert_ok("plain");
    let mut scoped_body = body;
    scoped_body["org_id"] = json!("acme");
    scoped_body["team_id"] = json!("search");
    let scoped = app.post(&format!("{P}/pricing/quote"), scoped_body).await;
    scoped.assert_ok("scoped");
    assert_eq!(scoped.body, plain.body);
}
