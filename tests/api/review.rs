//! Defects found by a review of the billing, storage and HTTP code: each test shows the
//! behaviour the fix guarantees, through the router on the SQLite store.

use meter_core::domain::PlanName;
use meter_core::limits::Plan;
use serde_json::json;

use meter_tests::TestApp;

fn gemini_event(id: &str, user: &str) -> serde_json::Value {
    json!({"event_id": id, "user_id": user, "provider": "gemini", "model": "gemini-2.5-flash",
           "input_tokens": 1000, "output_tokens": 200})
}

#[tokio::test]
async fn a_plan_limit_of_ten_to_the_fifteen_or_more_is_refused_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let huge = json!({"tier": "custom", "monthly_price_usd": "1", "yearly_price_usd": "10",
                      "limits": {"calls:gemini": "9000000000000000000000000000"}});
    let r = app.put("/api/subscription/plans/huge", huge).await;
    assert_eq!(r.status, 422, "{:?}", r.body);
    assert_eq!(r.code(), "limit_too_large");
    let name = PlanName::parse("huge").unwrap();
    assert!(app
        .store
        .get_plan(&app.tenant, &name)
        .await
        .unwrap()
        .is_none());

    let price = json!({"tier": "custom", "monthly_price_usd": "1000000000000001", "yearly_price_usd": "1",
                       "limits": {}});
    let r = app.put("/api/subscription/plans/dear", price).await;
    assert_eq!(r.code(), "price_too_large");

    let edge = json!({"tier": "custom", "monthly_price_usd": "1", "yearly_price_usd": "10",
                      "limits": {"cost_usd": "1000000000000000"}});
    let r = app.put("/api/subscription/plans/edge", edge).await;
    assert_eq!(r.code(), "limit_too_large");
    let top = json!({"tier": "custom", "monthly_price_usd": "1", "yearly_price_usd": "10",
                     "limits": {"calls:gemini": "999999999999999", "cost_usd": "999999999999999.99"}});
    let r = app.put("/api/subscription/plans/top", top).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
}

/// A plan stored before limits were bounded (or written past the API) must not turn usage
/// into a panic: every product of a limit is checked.
#[tokio::test]
async fn usage_and_dashboard_answer_under_a_stored_limit_near_the_decimal_maximum() {
    let app = TestApp::spawn().await;
    let mut plan: Plan = serde_json::from_value(json!({
        "name": "huge", "tier": "custom", "monthly_price_usd": "1", "yearly_price_usd": "10",
        "limits": {"calls:gemini": "9000000000000000000000000000",
                   "tokens:*": "79228162514264337593543950335",
                   "cost_usd": "9000000000000000000000000000"}
    }))
    .unwrap();
    plan.alert_thresholds = vec![1, 50, 100];
    app.store.put_plan(&app.tenant, &plan).await.unwrap();
    let sub = app
        .put(
            "/api/subscription/user/whale/subscription",
            json!({"plan": "huge"}),
        )
        .await;
    assert_eq!(sub.status, 200, "{:?}", sub.body);

    let r = app.usage(gemini_event("w-1", "whale")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["data"]["recorded"], 1);
    for path in [
        "/api/subscription/dashboard/whale",
        "/api/subscription/usage/whale",
        "/api/subscription/alerts/whale",
    ] {
        let r = app.get(path).await;
        assert_eq!(r.status, 200, "{path}: {:?}", r.body);
    }
    let c = app
        .check(
            json!({"user_id": "whale", "provider": "gemini", "model": "gemini-2.5-flash",
                      "estimated_input_tokens": 1_000_000_000_000u64, "reserve": true}),
        )
        .await;
    assert_eq!(c.status, 200, "{:?}", c.body);
}

/// The reservation guard of the cost cap is the decision's rule: an estimate that prices
/// to $0 at exactly the cap is allowed by both (it used to be allowed by the check and
/// refused by the guard: 503 forever).
#[tokio::test]
async fn a_zero_cost_estimate_at_the_cap_is_reserved_not_refused_as_unavailable() {
    let app = TestApp::spawn().await;
    let plan = json!({"tier": "custom", "monthly_price_usd": "0", "yearly_price_usd": "0",
                      "limits": {"cost_usd": "0.0008"}});
    assert_eq!(
        app.put("/api/subscription/plans/capped", plan).await.status,
        200
    );
    let free = json!({"versions": [{"id": "freeco/m@2025-01-01", "provider": "freeco", "model": "m",
        "effective_from": "2025-01-01T00:00:00Z", "prices": {"input_token": "0"}, "source": "tenant"}]});
    assert_eq!(app.put("/api/subscription/pricing", free).await.status, 200);
    let sub = json!({"plan": "capped"});
    app.put("/api/subscription/user/cap/subscription", sub)
        .await;
    // $0.0008 recorded: exactly the cap.
    let r = app.usage(gemini_event("cap-1", "cap")).await;
    assert_eq!(r.body["data"]["events"][0]["cost_usd"], "0.0008");

    let zero = json!({"user_id": "cap", "provider": "freeco", "model": "m",
                      "estimated_input_tokens": 100, "reserve": true});
    let r = app.check(zero).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["data"]["estimated_cost_usd"], "0");
    assert!(r.body["data"]["reservation_id"].is_string());

    // Without an estimate the cap is strict: at the cap, denied (429, not 503).
    let none = json!({"user_id": "cap", "provider": "freeco", "model": "m", "reserve": true});
    let r = app.check(none).await;
    assert_eq!(r.status, 429, "{:?}", r.body);
}

/// A retry that spells the same event differently (another timestamp offset, the
/// provider's usage object instead of its counts, keys in another order) is the same
/// event: `duplicate`, not `conflict`.
#[tokio::test]
async fn a_retry_with_equal_meaning_is_a_duplicate_not_a_conflict() {
    use chrono::Datelike;
    let app = TestApp::spawn().await;
    // A minute ago, but not in the previous month: the usage read below is this period's.
    let real = chrono::Utc::now();
    let month_start = real
        .date_naive()
        .with_day(1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .unwrap_or(real);
    let now = (real - chrono::Duration::minutes(1)).max(month_start);
    let z = now.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    let offset = now.format("%Y-%m-%dT%H:%M:%S%.3f+00:00").to_string();
    let first = json!({"event_id": "r-1", "user_id": "u", "provider": "openai", "model": "gpt-4o",
                       "timestamp": z, "input_tokens": 120, "output_tokens": 30,
                       "cached_input_tokens": 20, "metadata": {"a": 1, "b": [1, 2]}});
    let retry = json!({"metadata": {"b": [1, 2], "a": 1}, "model": "gpt-4o", "provider": "openai",
                       "user_id": "u", "event_id": "r-1", "timestamp": offset,
                       "usage": {"prompt_tokens": 120, "completion_tokens": 30,
                                 "prompt_tokens_details": {"cached_tokens": 20}}});
    let r = app.usage(first).await;
    assert_eq!(
        r.body["data"]["events"][0]["status"], "recorded",
        "{:?}",
        r.body
    );
    let r = app.usage(retry).await;
    assert_eq!(
        r.body["data"]["events"][0]["status"], "duplicate",
        "{:?}",
        r.body
    );

    let other = json!({"event_id": "r-1", "user_id": "u", "provider": "openai", "model": "gpt-4o",
                       "timestamp": z, "input_tokens": 121, "output_tokens": 30});
    let r = app.usage(other).await;
    assert_eq!(r.body["data"]["events"][0]["status"], "conflict");
    let usage = app.get("/api/subscription/usage/u").await;
    assert_eq!(usage.body["data"]["total_calls"], 1);
}

/// An unknown key is answered from a short negative cache: a burst of requests with the
/// same well-formed fake key costs one store read, not one per request.
#[tokio::test]
async fn failed_key_lookups_are_cached_briefly() {
    let app = TestApp::spawn().await;
    let fake = "mk_this_key_does_not_exist_0000000000";
    let r = app.get_as(fake, "/api/subscription/plans").await;
    assert_eq!(r.status, 401);
    // The key is created behind the service's back: within the negative cache's lifetime
    // the service still answers from the cache, without reading the store.
    let record = meter_core::auth::record_for(
        fake,
        &app.tenant,
        meter_core::domain::Role::Service,
        chrono::Utc::now(),
    );
    app.store.put_api_key(&record).await.unwrap();
    let r = app.get_as(fake, "/api/subscription/plans").await;
    assert_eq!(r.status, 401, "answered from the negative cache");
    app.meter.forget_failed_keys();
    let r = app.get_as(fake, "/api/subscription/plans").await;
    assert_eq!(r.status, 200, "read again once forgotten");
}
