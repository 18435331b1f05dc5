//! Request bodies take exactly what openapi.yaml's request schemas accept (the cases
//! Schemathesis found where the server and the document disagreed): `null` only where a
//! schema says so, integers as JSON Schema reads them (`5.0` is the integer 5), money as a
//! bounded decimal string.

use serde_json::{json, Value};

use meter_tests::{Reply, TestApp};

const QUOTE: &str = "/api/subscription/pricing/quote";

fn plan_body() -> Value {
    json!({"tier": "custom", "monthly_price_usd": "49", "yearly_price_usd": "490",
           "limits": {"calls:gemini": 2000, "cost_usd": "80"}})
}

/// The problems a 422 names, as `(field, code)`.
fn problems(reply: &Reply) -> Vec<(String, String)> {
    let error = &reply.body["error"];
    let list = |errors: &Value| -> Vec<(String, String)> {
        errors
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                (
                    e["field"].as_str().unwrap_or_default().to_owned(),
                    e["code"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    };
    match error["code"].as_str() {
        Some("invalid_events") => error["details"]["events"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|e| list(&e["errors"]))
            .collect(),
        _ => list(&error["details"]["errors"]),
    }
}

fn assert_refused(reply: &Reply, field: &str, code: &str) {
    assert_eq!(reply.status, 422, "{}", reply.body);
    assert!(
        problems(reply).contains(&(field.to_owned(), code.to_owned())),
        "expected {code} for `{field}`: {}",
        reply.body
    );
}

async fn put_subscription(app: &TestApp, user: &str, body: Value) -> Reply {
    app.put(&format!("/api/subscription/user/{user}/subscription"), body)
        .await
}

#[tokio::test]
async fn null_is_refused_where_the_document_does_not_allow_it() {
    let app = TestApp::spawn().await;
    let before = app.snapshot("nully").await;

    let r = put_subscription(&app, "nully", json!({"plan": "pro", "auto_renew": null})).await;
    assert_refused(&r, "auto_renew", "invalid_type");
    let mut plan = plan_body();
    plan["name"] = Value::Null;
    let r = app.put("/api/subscription/plans/team", plan).await;
    assert_refused(&r, "name", "invalid_type");
    let r = app
        .check(json!({"user_id": "nully", "provider": "gemini", "reservation_ttl_seconds": null}))
        .await;
    assert_refused(&r, "reservation_ttl_seconds", "invalid_type");
    let r = app
        .check(json!({"user_id": "nully", "provider": "gemini", "units": {"pages": null}}))
        .await;
    assert_refused(&r, "units.pages", "invalid_type");
    let r = app
        .usage(
            json!({"event_id": "n-1", "user_id": "nully", "provider": "gemini",
                      "input_tokens": 5, "status_code": null}),
        )
        .await;
    assert_refused(&r, "status_code", "invalid_type");
    let r = app
        .post(QUOTE, json!({"provider": "gemini", "usage": null}))
        .await;
    assert_refused(&r, "usage", "invalid_type");

    // Nothing was written: no subscription, no plan, no usage.
    assert_eq!(app.snapshot("nully").await, before);
    let view = app.get("/api/subscription/user/nully/subscription").await;
    assert_eq!(
        view.body["data"]["subscription"],
        Value::Null,
        "{}",
        view.body
    );
    let plans = app.get("/api/subscription/plans").await;
    assert!(
        !plans.body.to_string().contains("\"team\""),
        "{}",
        plans.body
    );

    // Where the document allows null, it is still accepted: a provider-wide price version.
    let r = app
        .put(
            "/api/subscription/pricing",
            json!({"versions": [{"id": "acme@2026-01-01T00:00:00Z", "provider": "acme", "model": null,
                                 "effective_from": "2026-01-01T00:00:00Z", "effective_to": null,
                                 "prices": {"request": "0.01"}, "source": "tenant"}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn every_request_field_still_has_its_default_when_left_out() {
    let app = TestApp::spawn().await;
    let r = app
        .check(json!({"user_id": "quiet", "provider": "gemini"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = put_subscription(&app, "quiet", json!({"plan": "pro"})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"]["subscription"]["auto_renew"], true);
    let r = app
        .usage(json!({"event_id": "q-1", "user_id": "quiet", "provider": "gemini"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn an_integer_written_with_a_zero_fraction_is_that_integer() {
    let app = TestApp::spawn().await;
    let r = app
        .check(json!({"user_id": "floaty", "provider": "gemini", "estimated_input_tokens": 1000.0,
                      "units": {"requests": 1.0}, "reserve": true, "reservation_ttl_seconds": 60.0}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = app
        .usage(
            json!({"event_id": "f-1", "user_id": "floaty", "provider": "gemini",
                      "model": "gemini-2.5-flash", "input_tokens": 1000000.0, "output_tokens": 0.0,
                      "status_code": 200.0, "latency_ms": 12.0}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let same = app
        .post(
            QUOTE,
            json!({"provider": "gemini", "model": "gemini-2.5-flash", "input_tokens": 1000000}),
        )
        .await;
    assert_eq!(
        r.body["data"]["events"][0]["cost_usd"],
        same.body["data"]["cost_usd"]
    );
    assert_eq!(same.body["data"]["cost_usd"], "0.3", "{}", same.body);
    let usage = app.get("/api/subscription/usage/floaty").await;
    assert_eq!(
        usage.body["data"]["total_tokens"], 1_000_000,
        "{}",
        usage.body
    );

    // A fraction is still not a count, and the bounds hold for floats too.
    let before = app.snapshot("floaty").await;
    for (body, field, code) in [
        (json!({"input_tokens": 1.5}), "input_tokens", "invalid_type"),
        (
            json!({"input_tokens": 1e13}),
            "input_tokens",
            "out_of_range",
        ),
        (
            json!({"input_tokens": -2.0}),
            "input_tokens",
            "out_of_range",
        ),
        (json!({"status_code": 600.0}), "status_code", "out_of_range"),
    ] {
        let mut event = json!({"event_id": "f-2", "user_id": "floaty", "provider": "gemini"});
        event
            .as_object_mut()
            .unwrap()
            .extend(body.as_object().unwrap().clone());
        assert_refused(&app.usage(event).await, field, code);
    }
    assert_eq!(app.snapshot("floaty").await, before);
}

#[tokio::test]
async fn plan_amounts_are_bounded_decimal_strings_and_whole_numbers() {
    let app = TestApp::spawn().await;
    let put = |name: &'static str, change: Value| {
        let mut body = plan_body();
        body.as_object_mut()
            .unwrap()
            .extend(change.as_object().unwrap().clone());
        let app = &app;
        async move {
            app.put(&format!("/api/subscription/plans/{name}"), body)
                .await
        }
    };
    for (change, field) in [
        (json!({"overage_rate": ""}), "overage_rate"),
        (json!({"monthly_price_usd": "4.9e1"}), "monthly_price_usd"),
        (json!({"yearly_price_usd": "+490"}), "yearly_price_usd"),
        (
            json!({"monthly_price_usd": "0.00000000000001"}),
            "monthly_price_usd",
        ),
        (json!({"limits": {"cost_usd": "1_000"}}), "limits.cost_usd"),
        (
            json!({"limits": {"calls:gemini": 1e16}}),
            "limits.calls:gemini",
        ),
    ] {
        assert_refused(&put("strict", change).await, field, "invalid_plan");
    }
    let plans = app.get("/api/subscription/plans").await;
    assert!(
        !plans.body.to_string().contains("\"strict\""),
        "{}",
        plans.body
    );

    let r = put(
        "wholes",
        json!({"limits": {"calls:gemini": 2000.0, "cost_usd": 80}, "alert_thresholds": [50.0, 100]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"]["plan"]["limits"]["calls:gemini"], 2000);
    assert_eq!(r.body["data"]["plan"]["alert_thresholds"], json!([50, 100]));
    let r = put("negative", json!({"limits": {"calls:gemini": -1}})).await;
    assert_refused(&r, "", "negative_limit");
}

#[tokio::test]
async fn price_versions_need_a_storable_id_and_decimal_string_prices() {
    let app = TestApp::spawn().await;
    let version = |change: Value| {
        let mut v = json!({"id": "acme/acme-1@2026-01-01T00:00:00Z", "provider": "acme", "model": "acme-1",
                           "effective_from": "2026-01-01T00:00:00Z", "prices": {"input_token": "0.000001"},
                           "source": "tenant"});
        v.as_object_mut()
            .unwrap()
            .extend(change.as_object().unwrap().clone());
        json!({"versions": [v]})
    };
    for (change, field, code) in [
        (json!({"id": ""}), "versions[0].id", "invalid_id"),
        (json!({"id": "acme 1"}), "versions[0].id", "invalid_id"),
        (
            json!({"id": "x".repeat(257)}),
            "versions[0].id",
            "invalid_id",
        ),
        (
            json!({"source": "s".repeat(1025)}),
            "versions[0].source",
            "too_long",
        ),
        (
            json!({"prices": {"input_token": "1e-6"}}),
            "versions[0].prices.input_token",
            "invalid_price_version",
        ),
        (
            json!({"prices": {"input_token": "0.000001", "request": null}}),
            "versions[0].prices.request",
            "invalid_price_version",
        ),
    ] {
        let r = app.put("/api/subscription/pricing", version(change)).await;
        assert_refused(&r, field, code);
    }
    let pricing = app.get("/api/subscription/pricing?provider=acme").await;
    assert_eq!(
        pricing.body["error"]["code"], "unknown_provider",
        "{}",
        pricing.body
    );

    let r = app
        .put(
            "/api/subscription/pricing",
            version(json!({"prices": {"input_token": "0.000001",
                                      "tiers": [{"threshold": 200000.0, "input": "0.000002"}]}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let quote = app
        .post(
            QUOTE,
            json!({"provider": "acme", "model": "acme-1", "input_tokens": 300000,
                            "timestamp": "2026-06-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(quote.body["data"]["cost_usd"], "0.6", "{}", quote.body);
}
