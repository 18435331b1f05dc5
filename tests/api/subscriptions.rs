//! GET/PUT /user/{user}/subscription, PUT /plans/{name}, PUT /pricing.

use meter_core::domain::{Role, TenantId};
use meter_core::testing::{instant, TestClock};
use meter_tests::TestApp;
use rust_decimal::Decimal;
use serde_json::{json, Value};

use crate::dashboard::mask;

const P: &str = "/api/subscription";

fn sub_path(user: &str) -> String {
    format!("{P}/user/{user}/subscription")
}

async fn put_sub(app: &TestApp, user: &str, body: Value) -> Value {
    let r = app.put(&sub_path(user), body.clone()).await;
    assert_eq!(r.status, 200, "{body}: {}", r.body);
    r.body["data"].clone()
}

async fn alert_keys(app: &TestApp, user: &str) -> Vec<String> {
    let r = app.get(&format!("{P}/alerts/{user}")).await;
    let mut keys: Vec<String> = r.body["data"]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["key"].as_str().unwrap().to_owned())
        .collect();
    keys.sort();
    keys
}

async fn gemini_tokens(app: &TestApp, id: &str, user: &str, tokens: u64) {
    let r = app
        .usage(
            json!({"event_id": id, "user_id": user, "provider": "gemini",
                       "model": "gemini-2.5-flash", "input_tokens": tokens}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"]["events"][0]["status"], "recorded");
}

#[tokio::test]
async fn without_a_subscription_the_user_is_on_free_calendar_months_golden() {
    let app = TestApp::spawn_at(&TestClock::at("2025-03-15T12:00:00Z")).await;
    let r = app.get(&sub_path("gina")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let plans = app.get(&format!("{P}/plans")).await;
    let mut data = r.body["data"].clone();
    assert_eq!(
        data["plan"], plans.body["data"]["plans"][0],
        "the plan as /plans shows it"
    );
    data.as_object_mut().unwrap().remove("plan");
    data.as_object_mut().unwrap().remove("limits");
    assert_eq!(
        data,
        json!({"user_id": "gina", "subscription": null, "status": "active",
               "current_period": {"start": "2025-03-01T00:00:00Z", "end": "2025-04-01T00:00:00Z", "name": "2025-03-01"},
               "pending_plan": null, "prorations": []})
    );
    assert_eq!(r.body["data"]["limits"]["calls:gemini"], 100);
}

#[tokio::test]
async fn put_creates_a_subscription_in_the_period_containing_now_golden() {
    let app = TestApp::spawn_at(&TestClock::at("2025-03-15T12:00:00Z")).await;
    let mut created = put_sub(&app, "hank", json!({"plan": "basic"})).await;
    mask(&mut created, &["updated_at"]);
    let expected_sub = json!({"plan": "basic", "billing_cycle": "monthly", "anchor": "calendar", "status": "active",
                              "auto_renew": true, "started_at": "2025-03-15T12:00:00Z",
                              "current_period": {"start": "2025-03-01T00:00:00Z", "end": "2025-04-01T00:00:00Z", "name": "2025-03-01"},
                              "pending_plan": null, "version": 1, "updated_at": "<masked>"});
    assert_eq!(created["subscription"], expected_sub);
    assert_eq!(created["change"], "created");
    assert_eq!(created["limits"]["calls:gemini"], 1000);
    let mut read = app.get(&sub_path("hank")).await.body["data"].clone();
    mask(&mut read, &["updated_at"]);
    assert_eq!(read["subscription"], expected_sub);

    // Anniversary periods start at the subscription's start instant.
    let ann = put_sub(
        &app,
        "ivy",
        json!({"plan": "pro", "anchor": "anniversary", "billing_cycle": "yearly"}),
    )
    .await;
    assert_eq!(ann["current_period"]["start"], "2025-03-15T12:00:00Z");
    assert_eq!(ann["subscription"]["billing_cycle"], "yearly");
}

#[tokio::test]
async fn upgrade_mid_period_changes_limits_at_once_keeps_usage_prorates_exactly_and_rearms() {
    let clock = TestClock::at("2025-04-01T00:00:00Z");
    let app = TestApp::spawn_at(&clock).await;
    put_sub(&app, "jill", json!({"plan": "basic"})).await;
    // 850k of basic's 1M gemini tokens: the 80 % alert fires.
    gemini_tokens(&app, "j-1", "jill", 850_000).await;
    assert_eq!(alert_keys(&app, "jill").await, ["tokens:gemini@80"]);

    clock.set(instant("2025-04-11T00:00:00Z"));
    let up = put_sub(&app, "jill", json!({"plan": "pro"})).await;
    assert_eq!(up["change"], "upgraded");
    assert_eq!(up["subscription"]["plan"], "pro");
    assert_eq!(up["subscription"]["version"], 2);
    assert_eq!(
        up["limits"]["tokens:gemini"], 5_000_000,
        "limits change at once"
    );
    // (79 − 29) × 20 of April's 30 days remaining.
    let exact = (Decimal::from(79) - Decimal::from(29)) * Decimal::from(20) / Decimal::from(30);
    let mut prorations = up["prorations"].clone();
    mask(&mut prorations, &[]);
    assert_eq!(
        prorations,
        json!([{"period_start": "2025-04-01T00:00:00Z", "at": "2025-04-11T00:00:00Z",
                "from_plan": "basic", "to_plan": "pro", "amount_usd": exact.to_string()}])
    );
    assert_eq!(up["rearmed_alerts"], json!(["tokens:gemini@80"]));

    let usage = app.get(&format!("{P}/usage/jill")).await.body["data"].clone();
    assert_eq!(usage["plan"], "pro");
    assert_eq!(usage["total_tokens"], 850_000, "the period's usage is kept");
    assert_eq!(usage["usage_percentages"]["tokens:gemini"], 17.0);
    let check = app
        .check(
            json!({"user_id": "jill", "provider": "gemini", "estimated_input_tokens": 1_000_000}),
        )
        .await;
    assert_eq!(
        check.status, 200,
        "pro's limits allow what basic's would not: {}",
        check.body
    );

    // Re-armed: crossing 80 % of the new limit fires the alert again.
    gemini_tokens(&app, "j-2", "jill", 3_200_000).await;
    assert_eq!(
        alert_keys(&app, "jill").await,
        ["tokens:gemini@80", "tokens:gemini@80"]
    );
    let read = app.get(&sub_path("jill")).await.body["data"].clone();
    assert_eq!(read["prorations"][0]["amount_usd"], exact.to_string());

    // April's invoice: basic's base (the plan the period started on), the exact prorated
    // difference and the usage; the total is rounded once. The subscription then renews
    // on pro with the billed proration dropped.
    clock.set(instant("2025-05-01T01:00:00Z"));
    let report = app.meter.aggregate(&Default::default()).await.unwrap();
    assert_eq!(report.invoices_created, 1);
    let jill = meter_core::domain::UserId::parse("jill").unwrap();
    let invoice = app
        .store
        .list_invoices(&app.tenant, &jill)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(invoice.base_usd, Decimal::from(29));
    assert_eq!(invoice.proration_usd, exact);
    let exact_total = Decimal::from(29) + exact + invoice.usage_usd;
    assert_eq!(
        invoice.total_usd,
        exact_total.round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
    );
    assert!(invoice
        .line_items
        .iter()
        .any(|l| l.kind == "proration" && l.amount_usd == exact));
    let renewed = app.get(&sub_path("jill")).await.body["data"].clone();
    assert_eq!(renewed["prorations"], json!([]));
    assert_eq!(renewed["subscription"]["plan"], "pro");
    let billing = app.get(&format!("{P}/billing/jill")).await;
    assert_eq!(billing.status, 200);
    assert_eq!(
        billing.body["data"]["invoices"][0]["proration_usd"],
        exact.to_string()
    );
}

#[tokio::test]
async fn downgrade_is_scheduled_and_the_same_price_switches_at_once() {
    let clock = TestClock::at("2025-04-05T00:00:00Z");
    let app = TestApp::spawn_at(&clock).await;
    put_sub(&app, "kim", json!({"plan": "pro"})).await;
    clock.set(instant("2025-04-06T00:00:00Z"));
    let down = put_sub(&app, "kim", json!({"plan": "basic"})).await;
    assert_eq!(down["change"], "downgrade_scheduled");
    assert_eq!(down["subscription"]["plan"], "pro");
    assert_eq!(down["pending_plan"], "basic");
    assert_eq!(
        down["limits"]["calls:gemini"], 5000,
        "pro's limits stay until the next period"
    );
    assert_eq!(down["prorations"], json!([]));
    let keep = put_sub(&app, "kim", json!({"plan": "pro"})).await;
    assert_eq!(
        (keep["change"].as_str(), &keep["pending_plan"]),
        (Some("updated"), &Value::Null)
    );

    let twin = json!({"tier": "custom", "monthly_price_usd": "79", "yearly_price_usd": "790",
                      "limits": {"calls:gemini": 7000}});
    assert_eq!(
        app.put(&format!("{P}/plans/pro-plus"), twin).await.status,
        200
    );
    let switched = put_sub(&app, "kim", json!({"plan": "pro-plus"})).await;
    assert_eq!(switched["change"], "switched");
    assert_eq!(switched["limits"]["calls:gemini"], 7000);
    assert_eq!(switched["prorations"], json!([]));
}

#[tokio::test]
async fn an_inactive_subscription_is_denied_checks_with_subscription_inactive() {
    let app = TestApp::spawn_at(&TestClock::at("2025-04-05T00:00:00Z")).await;
    put_sub(&app, "lena", json!({"plan": "basic"})).await;
    let check = json!({"user_id": "lena", "provider": "gemini"});
    assert_eq!(app.check(check.clone()).await.status, 200);
    for status in ["past_due", "suspended", "cancelled"] {
        let s = put_sub(&app, "lena", json!({"status": status})).await;
        assert_eq!(s["status"], status);
        let r = app.check(check.clone()).await;
        assert_eq!(
            (r.status.as_u16(), r.code()),
            (403, "subscription_inactive"),
            "{status}"
        );
        assert_eq!(r.body["error"]["details"]["status"], status);
    }
    let cancelled = app.get(&sub_path("lena")).await.body["data"].clone();
    assert_eq!(
        cancelled["subscription"]["auto_renew"], false,
        "cancelling stops renewal"
    );
    put_sub(
        &app,
        "lena",
        json!({"status": "active", "auto_renew": true}),
    )
    .await;
    assert_eq!(app.check(check).await.status, 200);
}

#[tokio::test]
async fn bad_subscription_writes_are_422_with_a_code_and_change_nothing() {
    let app = TestApp::spawn_at(&TestClock::at("2025-04-05T00:00:00Z")).await;
    let inactive = json!({"tier": "custom", "monthly_price_usd": "5", "yearly_price_usd": "50",
                          "limits": {}, "active": false});
    assert_eq!(
        app.put(&format!("{P}/plans/legacy"), inactive).await.status,
        200
    );
    for (body, code) in [
        (json!({}), "missing_field"),
        (json!({"plan": "nope"}), "unknown_plan"),
        (json!({"plan": "legacy"}), "unknown_plan"),
        (
            json!({"plan": "basic", "cycle": "monthly"}),
            "unknown_field",
        ),
        (
            json!({"plan": "basic", "billing_cycle": "weekly"}),
            "invalid_value",
        ),
        (
            json!({"plan": "basic", "status": "paused"}),
            "invalid_value",
        ),
        (
            json!({"plan": "basic", "auto_renew": "yes"}),
            "invalid_type",
        ),
        (json!(["basic"]), "invalid_type"),
    ] {
        let r = app.put(&sub_path("mia"), body.clone()).await;
        assert_eq!((r.status.as_u16(), r.code()), (422, code), "{body}");
    }
    assert_eq!(
        app.get(&sub_path("mia")).await.body["data"]["subscription"],
        Value::Null
    );

    put_sub(&app, "mia", json!({"plan": "basic"})).await;
    for body in [
        json!({"plan": "pro", "billing_cycle": "yearly"}),
        json!({"anchor": "anniversary"}),
    ] {
        let r = app.put(&sub_path("mia"), body.clone()).await;
        assert_eq!(
            (r.status.as_u16(), r.code()),
            (422, "unsupported_change"),
            "{body}"
        );
    }
    let same = put_sub(
        &app,
        "mia",
        json!({"plan": "basic", "billing_cycle": "monthly", "anchor": "calendar"}),
    )
    .await;
    assert_eq!(
        same["subscription"]["plan"], "basic",
        "restating the schedule is no change"
    );
    let bad_user = app
        .put(&sub_path("bad%20user"), json!({"plan": "basic"}))
        .await;
    assert_eq!(
        (bad_user.status.as_u16(), bad_user.code()),
        (400, "invalid_id")
    );
    let not_json = app
        .send(
            axum::http::Request::put(sub_path("mia"))
                .header("authorization", format!("Bearer {}", app.admin_key))
                .header("content-type", "application/json")
                .body(axum::body::Body::from("{"))
                .unwrap(),
        )
        .await;
    assert_eq!(
        (not_json.status.as_u16(), not_json.code()),
        (400, "malformed_json")
    );
}

#[tokio::test]
async fn admin_writes_refuse_a_service_key() {
    let app = TestApp::spawn_at(&TestClock::at("2025-04-05T00:00:00Z")).await;
    let key = app.service_key.clone();
    for (path, body) in [
        (sub_path("nina"), json!({"plan": "pro"})),
        (
            format!("{P}/plans/team"),
            json!({"tier": "custom", "monthly_price_usd": "1", "yearly_price_usd": "1", "limits": {}}),
        ),
        (format!("{P}/pricing"), json!({"versions": []})),
    ] {
        let r = app.put_as(&key, &path, body).await;
        assert_eq!((r.status.as_u16(), r.code()), (403, "forbidden"), "{path}");
    }
    assert_eq!(
        app.get(&sub_path("nina")).await.body["data"]["subscription"],
        Value::Null
    );
    let plans = app.get(&format!("{P}/plans")).await;
    assert_eq!(plans.body["data"]["plans"].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn subscriptions_are_per_tenant() {
    let app = TestApp::spawn_at(&TestClock::at("2025-04-05T00:00:00Z")).await;
    put_sub(&app, "olga", json!({"plan": "enterprise"})).await;
    let other = TenantId::parse("other").unwrap();
    meter_core::service::bootstrap::bootstrap(app.store.as_ref(), &other, None, app.meter.now())
        .await
        .unwrap();
    let key = meter_core::auth::generate_key(&other, Role::Admin, app.meter.now());
    app.store.put_api_key(&key.record).await.unwrap();
    let theirs = app.get_as(&key.secret, &sub_path("olga")).await;
    assert_eq!(theirs.body["data"]["subscription"], Value::Null);
    assert_eq!(theirs.body["data"]["plan"]["name"], "free");
    // A plan written by the other tenant does not exist here.
    let plan =
        json!({"tier": "custom", "monthly_price_usd": "1", "yearly_price_usd": "10", "limits": {}});
    assert_eq!(
        app.put_as(&key.secret, &format!("{P}/plans/theirs"), plan)
            .await
            .status,
        200
    );
    let r = app.put(&sub_path("olga"), json!({"plan": "theirs"})).await;
    assert_eq!((r.status.as_u16(), r.code()), (422, "unknown_plan"));
}

#[tokio::test]
async fn put_plan_upserts_a_validated_plan_seen_at_once() {
    let app = TestApp::spawn_at(&TestClock::at("2025-04-05T00:00:00Z")).await;
    let team = json!({"tier": "custom", "monthly_price_usd": "49", "yearly_price_usd": "490",
                      "description": "Teams", "features": ["Shared limits"], "alert_thresholds": [50, 100],
                      "limits": {"calls:gemini": 2000, "cost_usd": "80.50"}});
    let r = app.put(&format!("{P}/plans/team"), team.clone()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"]["created"], true);
    assert_eq!(
        r.body["data"]["plan"],
        json!({"name": "team", "tier": "custom", "monthly_price_usd": "49", "yearly_price_usd": "490",
               "description": "Teams", "features": ["Shared limits"], "alert_thresholds": [50, 100],
               "limits": {"calls:gemini": 2000, "cost_usd": "80.5"}, "payment": "postpaid"})
    );
    let names: Vec<String> = app.get(&format!("{P}/plans")).await.body["data"]["plans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["free", "basic", "team", "pro", "enterprise"]);
    let again = app.put(&format!("{P}/plans/team"), team.clone()).await;
    assert_eq!(again.body["data"]["created"], false);

    for (patch, code) in [
        (json!({"monthly_price_usd": "-1"}), "negative_price"),
        (
            json!({"limits": {"calls:gemini": "1.5"}}),
            "fractional_limit",
        ),
        (json!({"limits": {"calls:gemini": -3}}), "negative_limit"),
        (json!({"limits": {"calls:gemini": 1.5}}), "invalid_plan"),
        (json!({"limits": {"bogus": 1}}), "invalid_plan"),
        (
            json!({"alert_thresholds": [90, 80]}),
            "thresholds_not_ascending",
        ),
        (json!({"alert_thresholds": [0]}), "threshold_out_of_range"),
        (json!({"tier": "gold"}), "invalid_plan"),
        (json!({"name": "other"}), "name_mismatch"),
        (json!({"price": "1"}), "unknown_field"),
    ] {
        let mut body = team.clone();
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = app.put(&format!("{P}/plans/team"), body).await;
        assert_eq!(
            (r.status.as_u16(), r.code()),
            (422, code),
            "{patch}: {}",
            r.body
        );
    }
    let mut missing = team.clone();
    missing.as_object_mut().unwrap().remove("limits");
    let r = app.put(&format!("{P}/plans/team"), missing).await;
    assert_eq!((r.status.as_u16(), r.code()), (422, "missing_field"));
    let r = app.put(&format!("{P}/plans/no%20spaces"), team).await;
    assert_eq!((r.status.as_u16(), r.code()), (400, "invalid_id"));
}

fn flash_version(id: &str, from: &str, input: &str) -> Value {
    json!({"id": id, "provider": "gemini", "model": "gemini-2.5-flash", "effective_from": from,
           "prices": {"input_token": input, "output_token": "0.000002"}, "source": "tenant"})
}

#[tokio::test]
async fn put_pricing_adds_the_tenants_own_versions_and_rejects_overlaps() {
    let app = TestApp::spawn_at(&TestClock::at("2025-04-05T00:00:00Z")).await;
    let quote = json!({"provider": "gemini", "model": "gemini-2.5-flash", "input_tokens": 1000});
    let before = app.post(&format!("{P}/pricing/quote"), quote.clone()).await;
    assert_eq!(before.body["data"]["cost_usd"], "0.0003");

    let id = "tenant/gemini-2.5-flash@2025-04-01";
    let r = app
        .put(
            &format!("{P}/pricing"),
            json!({"versions": [flash_version(id, "2025-04-01T00:00:00Z", "0.000001")]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"], json!({"added": 1, "ids": [id]}));
    let after = app.post(&format!("{P}/pricing/quote"), quote.clone()).await;
    assert_eq!(
        after.body["data"]["cost_usd"], "0.001",
        "seen at once: {}",
        after.body
    );
    assert_eq!(after.body["data"]["price_version"], id);

    for (versions, code) in [
        (
            json!([flash_version(
                "other-id",
                "2025-04-01T00:00:00Z",
                "0.000003"
            )]),
            "overlapping_versions",
        ),
        (
            json!([
                flash_version("a", "2025-05-01T00:00:00Z", "0.1"),
                flash_version("a", "2025-06-01T00:00:00Z", "0.1")
            ]),
            "duplicate_id",
        ),
        (
            json!([flash_version("neg", "2025-05-01T00:00:00Z", "-0.1")]),
            "negative_price",
        ),
        (
            json!([{"id": "x", "provider": "gemini", "effective_from": "2025-05-01T00:00:00Z", "prices": {}, "source": "t"}]),
            "no_prices",
        ),
        (
            json!([{"id": "x", "provider": "gemini", "effective_from": "2025-05-01T00:00:00Z", "prices": {"input_token": "1"}, "source": "t", "currency": "EUR"}]),
            "unknown_field",
        ),
        (json!([{"id": "x"}]), "invalid_price_version"),
        (json!([]), "batch_size"),
        (json!("all"), "invalid_type"),
    ] {
        let r = app
            .put(&format!("{P}/pricing"), json!({ "versions": versions }))
            .await;
        assert_eq!(
            (r.status.as_u16(), r.code()),
            (422, code),
            "{versions}: {}",
            r.body
        );
    }
    let r = app
        .put(&format!("{P}/pricing"), json!({"versions": [], "extra": 1}))
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (422, "unknown_field"));
    let still = app.post(&format!("{P}/pricing/quote"), quote.clone()).await;
    assert_eq!(
        still.body["data"]["cost_usd"], "0.001",
        "rejected writes change nothing"
    );

    // Another tenant keeps the shared price.
    let other = TenantId::parse("other").unwrap();
    meter_core::service::bootstrap::bootstrap(app.store.as_ref(), &other, None, app.meter.now())
        .await
        .unwrap();
    let key = meter_core::auth::generate_key(&other, Role::Service, app.meter.now());
    app.store.put_api_key(&key.record).await.unwrap();
    let theirs = app
        .post_as(&key.secret, &format!("{P}/pricing/quote"), quote)
        .await;
    assert_eq!(theirs.body["data"]["cost_usd"], "0.0003");
}
