//! The read routes that exist so far: plans, pricing, quotes, alerts.

use axum::body::Body;
use axum::http::Request;
use meter_tests::TestApp;
use serde_json::json;

#[tokio::test]
async fn plans_lists_the_active_plans_cheapest_first_with_exact_prices() {
    let app = TestApp::spawn().await;
    let r = app.get("/api/subscription/plans").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let plans = r.body["data"]["plans"].as_array().unwrap();
    let names: Vec<_> = plans.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["free", "basic", "pro", "enterprise"]);
    assert_eq!(plans[1]["monthly_price_usd"], "29");
    assert_eq!(plans[1]["yearly_price_usd"], "290");
    assert_eq!(plans[0]["limits"]["calls:gemini"], 100);
    assert_eq!(plans[0]["limits"]["calls:openai"], 0);
    assert_eq!(plans[0]["limits"]["cost_usd"], "2");
    assert!(
        plans[3]["limits"].get("calls:gemini").is_none(),
        "enterprise has no call limits"
    );
}

#[tokio::test]
async fn pricing_lists_prices_in_force_and_filters_by_provider() {
    let app = TestApp::spawn().await;
    let all = app.get("/api/subscription/pricing").await;
    assert_eq!(all.status, 200);
    let prices = all.body["data"]["prices"].as_array().unwrap();
    assert_eq!(prices.len(), 15);
    let flash = prices
        .iter()
        .find(|p| p["model"] == "gemini-2.5-flash")
        .unwrap();
    assert_eq!(flash["prices"]["input_token"], "0.0000003");
    assert!(flash["source"].as_str().unwrap().starts_with("https://"));

    let tavily = app.get("/api/subscription/pricing?provider=tavily").await;
    let only: Vec<_> = tavily.body["data"]["prices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["provider"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(only, ["tavily"]);
    for (query, code) in [
        ("provider=nobody", "unknown_provider"),
        ("provider=UPPER", "unknown_provider"),
        ("currency=eur", "unknown_parameter"),
        ("provider=a&provider=b", "invalid_parameter"),
    ] {
        let r = app.get(&format!("/api/subscription/pricing?{query}")).await;
        assert_eq!((r.status.as_u16(), r.code()), (400, code), "{query}");
    }
}

#[tokio::test]
async fn a_quote_prices_without_recording() {
    let app = TestApp::spawn().await;
    let before = app.snapshot("nobody").await;
    let r = app.post("/api/subscription/pricing/quote", json!({"provider": "openai", "model": "gpt-4o", "input_tokens": 1000, "output_tokens": 100})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["data"]["cost_usd"], "0.0035");
    assert_eq!(r.body["data"]["priced"], true);
    let unpriced = app
        .post(
            "/api/subscription/pricing/quote",
            json!({"provider": "gemini", "model": "gemini-0-nothing", "input_tokens": 5}),
        )
        .await;
    assert_eq!(
        (
            unpriced.body["data"]["priced"].clone(),
            unpriced.body["data"]["cost_usd"].clone()
        ),
        (json!(false), json!(null))
    );
    let bad = app
        .post(
            "/api/subscription/pricing/quote",
            json!({"provider": "openai", "input_tokens": -1}),
        )
        .await;
    assert_eq!((bad.status.as_u16(), bad.code()), (422, "out_of_range"));
    assert_eq!(app.snapshot("nobody").await, before);
}

#[tokio::test]
async fn alerts_page_counts_all_unread_and_mark_read_is_idempotent_and_tenant_scoped() {
    let app = TestApp::spawn().await;
    let events: Vec<_> = (0..90).map(|i| json!({"event_id": format!("r-{i}"), "user_id": "lia", "provider": "gemini", "model": "gemini-2.5-flash", "input_tokens": 1})).collect();
    assert_eq!(app.usage(json!({ "events": events })).await.status, 200);

    let page = app.get("/api/subscription/alerts/lia?limit=1").await;
    assert_eq!(page.status, 200, "{:?}", page.body);
    assert_eq!(page.body["data"]["alerts"].as_array().unwrap().len(), 1);
    assert_eq!(page.body["data"]["unread_count"], 2, "80 % and 90 %");
    assert_eq!(
        page.body["data"]["alerts"][0]["threshold"], 90,
        "newest first"
    );
    let id = page.body["data"]["alerts"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Another tenant cannot see or touch it.
    let other = meter_core::auth::generate_key(
        &meter_core::domain::TenantId::parse("other").unwrap(),
        meter_core::domain::Role::Service,
        chrono::Utc::now(),
    );
    app.store.put_api_key(&other.record).await.unwrap();
    let foreign = app
        .post_as(
            &other.secret,
            &format!("/api/subscription/alerts/{id}/mark-read"),
            json!({}),
        )
        .await;
    assert_eq!(
        (foreign.status.as_u16(), foreign.code()),
        (404, "not_found")
    );
    assert_eq!(
        app.get_as(&other.secret, "/api/subscription/alerts/lia")
            .await
            .body["data"]["unread_count"],
        0
    );

    for _ in 0..2 {
        let r = app
            .post(
                &format!("/api/subscription/alerts/{id}/mark-read"),
                json!({}),
            )
            .await;
        assert_eq!(r.status, 200);
    }
    let unread = app
        .get("/api/subscription/alerts/lia?unread_only=true")
        .await;
    assert_eq!(unread.body["data"]["unread_count"], 1);
    assert_eq!(unread.body["data"]["alerts"][0]["threshold"], 80);

    for (query, code) in [
        ("limit=0", "invalid_parameter"),
        ("limit=101", "invalid_parameter"),
        ("limit=ten", "invalid_parameter"),
        ("unread_only=yes", "invalid_parameter"),
        ("page=2", "unknown_parameter"),
    ] {
        let r = app
            .get(&format!("/api/subscription/alerts/lia?{query}"))
            .await;
        assert_eq!((r.status.as_u16(), r.code()), (400, code), "{query}");
    }
    let r = app.get("/api/subscription/alerts/a%23b").await;
    assert_eq!((r.status.as_u16(), r.code()), (400, "invalid_id"));
    let r = app
        .send(
            Request::get("/api/subscription/plans")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (401, "unauthorized"));
}
