//! The dashboard reads: GET /usage/{user}, /usage/{user}/trends, /dashboard/{user},
//! /billing/{user}. Time is fixed with `Meter::with_clock`.

use std::collections::BTreeSet;

use meter_core::domain::{
    Alert, Invoice, InvoiceStatus, LineItem, PlanName, Role, Severity, TenantId, UserId,
};
use meter_core::periods::Period;
use meter_core::testing::{instant, TestClock};
use meter_tests::TestApp;
use rust_decimal::Decimal;
use serde_json::{json, Value};

const P: &str = "/api/subscription";

/// Replaces the values of volatile fields (ids, timestamps of creation) with a marker.
pub fn mask(v: &mut Value, fields: &[&str]) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if fields.contains(&k.as_str()) {
                    *x = json!("<masked>");
                } else {
                    mask(x, fields);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|x| mask(x, fields)),
        _ => {}
    }
}

/// Every path of object keys in a value (arrays: the paths of their elements).
pub fn key_paths(v: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let p = format!("{prefix}.{k}");
                out.insert(p.clone());
                key_paths(x, &p, out);
            }
        }
        Value::Array(items) => items
            .iter()
            .for_each(|x| key_paths(x, &format!("{prefix}[]"), out)),
        _ => {}
    }
}

fn paths(v: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    key_paths(v, "", &mut out);
    out
}

async fn record(app: &TestApp, events: Value) {
    let r = app.usage(json!({ "events": events })).await;
    assert_eq!(r.status, 200, "{}", r.body);
    for e in r.body["data"]["events"].as_array().unwrap() {
        assert_eq!(e["status"], "recorded", "{e}");
    }
}

/// Two gemini-2.5-flash calls: $0.0008 (1000 in, 200 out; HTTP 500, 100 ms) and $0.0006
/// (2000 in; HTTP 200, 300 ms).
async fn two_gemini_calls(app: &TestApp, user: &str) {
    record(
        app,
        json!([
            {"event_id": format!("{user}-1"), "user_id": user, "provider": "gemini", "model": "gemini-2.5-flash",
             "input_tokens": 1000, "output_tokens": 200, "status_code": 500, "latency_ms": 100},
            {"event_id": format!("{user}-2"), "user_id": user, "provider": "gemini", "model": "gemini-2.5-flash",
             "input_tokens": 2000, "status_code": 200, "latency_ms": 300},
        ]),
    )
    .await;
}

/// Another tenant with its own service key and a user `alice` who has usage there.
async fn other_tenant(app: &TestApp) -> String {
    let other = TenantId::parse("other").unwrap();
    meter_core::service::bootstrap::bootstrap(app.store.as_ref(), &other, None, app.meter.now())
        .await
        .unwrap();
    let key = meter_core::auth::generate_key(&other, Role::Service, app.meter.now());
    app.store.put_api_key(&key.record).await.unwrap();
    let r = app
        .post_as(
            &key.secret,
            &format!("{P}/usage"),
            json!({"event_id": "o-1", "user_id": "alice", "provider": "gemini", "model": "gemini-2.5-flash", "input_tokens": 5}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    key.secret
}

fn zero_provider() -> Value {
    json!({"calls": 0, "tokens": 0, "cost": "0", "avg_response_time_ms": 0.0, "error_rate": 0.0,
           "error_calls": 0, "unpriced_calls": 0, "estimated_calls": 0})
}

#[tokio::test]
async fn usage_reports_recorded_totals_breakdown_rates_and_limits_golden() {
    let app = TestApp::spawn_at(&TestClock::at("2025-03-31T12:00:00Z")).await;
    two_gemini_calls(&app, "alice").await;
    // An open hold is not usage on the dashboard.
    let hold = app
        .check(
            json!({"user_id": "alice", "provider": "gemini", "model": "gemini-2.5-flash",
                       "estimated_input_tokens": 50, "reserve": true}),
        )
        .await;
    assert_eq!(hold.status, 200, "{}", hold.body);

    let r = app.get(&format!("{P}/usage/alice")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mut breakdown = serde_json::Map::new();
    for p in [
        "anthropic",
        "firecrawl",
        "metaphor",
        "mistral",
        "openai",
        "serper",
        "stability",
        "tavily",
    ] {
        breakdown.insert(p.into(), zero_provider());
    }
    breakdown.insert(
        "gemini".into(),
        json!({"calls": 2, "tokens": 3200, "cost": "0.0014", "avg_response_time_ms": 200.0,
               "error_rate": 0.5, "error_calls": 1, "unpriced_calls": 0, "estimated_calls": 0}),
    );
    let expected = json!({
        "user_id": "alice",
        "plan": "free",
        "period": {"start": "2025-03-01T00:00:00Z", "end": "2025-04-01T00:00:00Z", "name": "2025-03-01"},
        "total_calls": 2,
        "total_tokens": 3200,
        "total_cost": "0.0014",
        "provider_breakdown": breakdown,
        "usage_status": "active",
        "limits": {"calls:anthropic": 0, "calls:firecrawl": 10, "calls:gemini": 100, "calls:metaphor": 10,
                   "calls:mistral": 50, "calls:openai": 0, "calls:serper": 20, "calls:stability": 5,
                   "calls:tavily": 20, "cost_usd": "2", "tokens:anthropic": 0, "tokens:gemini": 100000,
                   "tokens:openai": 0},
        "usage_percentages": {"calls:anthropic": 0.0, "calls:firecrawl": 0.0, "calls:gemini": 2.0,
                              "calls:metaphor": 0.0, "calls:mistral": 0.0, "calls:openai": 0.0,
                              "calls:serper": 0.0, "calls:stability": 0.0, "calls:tavily": 0.0,
                              "cost_usd": 0.07, "tokens:anthropic": 0.0, "tokens:gemini": 3.2,
                              "tokens:openai": 0.0},
        "unpriced_calls": 0,
        "estimated_calls": 0,
        "error_calls": 1,
        "avg_response_time_ms": 200.0,
        "error_rate": 0.5,
    });
    assert_eq!(r.body["data"], expected);
}

#[tokio::test]
async fn a_user_without_events_has_the_same_shape_with_zeros() {
    let app = TestApp::spawn_at(&TestClock::at("2025-03-31T12:00:00Z")).await;
    two_gemini_calls(&app, "alice").await;
    for route in ["usage/{u}", "usage/{u}/trends", "dashboard/{u}"] {
        let busy = app
            .get(&format!("{P}/{}", route.replace("{u}", "alice")))
            .await;
        let idle = app
            .get(&format!("{P}/{}", route.replace("{u}", "nobody")))
            .await;
        assert_eq!(
            (busy.status.as_u16(), idle.status.as_u16()),
            (200, 200),
            "{route}"
        );
        assert_eq!(paths(&busy.body), paths(&idle.body), "{route}");
    }
    let idle = app.get(&format!("{P}/usage/nobody")).await.body;
    assert_eq!(idle["data"]["total_calls"], 0);
    assert_eq!(idle["data"]["total_cost"], "0");
    assert_eq!(idle["data"]["error_rate"], 0.0);
    assert_eq!(
        idle["data"]["provider_breakdown"]["gemini"],
        zero_provider()
    );
}

#[tokio::test]
async fn billing_period_selects_a_past_period_and_bad_values_are_400() {
    let clock = TestClock::at("2025-02-15T10:00:00Z");
    let app = TestApp::spawn_at(&clock).await;
    record(&app, json!([{"event_id": "feb", "user_id": "bob", "provider": "gemini", "model": "gemini-2.5-flash", "input_tokens": 10}])).await;
    clock.set(instant("2025-03-10T10:00:00Z"));
    for q in ["2025-02", "2025-02-01", "2025-02-20"] {
        let r = app.get(&format!("{P}/usage/bob?billing_period={q}")).await;
        assert_eq!(r.status, 200, "{q}: {}", r.body);
        assert_eq!(r.body["data"]["period"]["name"], "2025-02-01", "{q}");
        assert_eq!(r.body["data"]["total_calls"], 1, "{q}");
    }
    let now = app.get(&format!("{P}/usage/bob")).await;
    assert_eq!(now.body["data"]["period"]["name"], "2025-03-01");
    assert_eq!(now.body["data"]["total_calls"], 0);
    for (q, code) in [
        ("billing_period=2025-13", "invalid_parameter"),
        ("billing_period=2025-02-30", "invalid_parameter"),
        ("billing_period=last", "invalid_parameter"),
        ("billing_period=", "invalid_parameter"),
        ("period=2025-02", "unknown_parameter"),
    ] {
        let r = app.get(&format!("{P}/usage/bob?{q}")).await;
        assert_eq!((r.status.as_u16(), r.code()), (400, code), "{q}");
    }
}

#[tokio::test]
async fn trends_on_march_31_name_six_consecutive_real_periods_zero_filled() {
    let clock = TestClock::at("2025-01-20T08:00:00Z");
    let app = TestApp::spawn_at(&clock).await;
    record(&app, json!([{"event_id": "jan", "user_id": "carol", "provider": "mistral", "model": "mistral-small-latest", "input_tokens": 1000}])).await;
    clock.set(instant("2025-03-31T23:00:00Z"));
    two_gemini_calls(&app, "carol").await;

    let r = app.get(&format!("{P}/usage/carol/trends")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let d = &r.body["data"];
    assert_eq!(
        d["periods"],
        json!([
            "2024-10-01",
            "2024-11-01",
            "2024-12-01",
            "2025-01-01",
            "2025-02-01",
            "2025-03-01"
        ])
    );
    assert_eq!(d["total_calls"], json!([0, 0, 0, 1, 0, 2]));
    assert_eq!(d["total_tokens"], json!([0, 0, 0, 1000, 0, 3200]));
    assert_eq!(
        d["total_cost"],
        json!(["0", "0", "0", "0.00015", "0", "0.0014"])
    );
    assert_eq!(
        d["provider_trends"]["mistral"]["calls"],
        json!([0, 0, 0, 1, 0, 0])
    );
    assert_eq!(
        d["provider_trends"]["gemini"]["cost"],
        json!(["0", "0", "0", "0", "0", "0.0014"])
    );
    assert_eq!(d["months"], 6);

    let one = app.get(&format!("{P}/usage/carol/trends?months=1")).await;
    assert_eq!(one.body["data"]["periods"], json!(["2025-03-01"]));
    let two_years = app.get(&format!("{P}/usage/carol/trends?months=24")).await;
    assert_eq!(two_years.body["data"]["periods"][0], "2023-04-01");
    for q in [
        "months=0",
        "months=25",
        "months=six",
        "months=-1",
        "months=1.5",
    ] {
        let r = app.get(&format!("{P}/usage/carol/trends?{q}")).await;
        assert_eq!(
            (r.status.as_u16(), r.code()),
            (400, "invalid_parameter"),
            "{q}"
        );
    }
}

fn alert(app: &TestApp, user: &str, key: &str, minute: u32) -> Alert {
    Alert {
        id: format!("al-{key}"),
        tenant: app.tenant.clone(),
        user: UserId::parse(user).unwrap(),
        period_start: instant("2025-03-01T00:00:00Z"),
        key: key.to_owned(),
        metric: None,
        threshold: None,
        severity: Severity::Info,
        title: format!("title {key}"),
        message: format!("message {key}"),
        created_at: instant(&format!("2025-03-30T10:{minute:02}:00Z")),
        read: false,
        published: true,
        org: None,
        budget: None,
    }
}

#[tokio::test]
async fn dashboard_combines_usage_projection_trends_alerts_and_summary_golden() {
    let clock = TestClock::at("2025-03-31T00:00:00Z");
    let app = TestApp::spawn_at(&clock).await;
    two_gemini_calls(&app, "dana").await;
    for i in 0..7 {
        assert!(app
            .store
            .create_alert_once(&alert(&app, "dana", &format!("k{i}"), i))
            .await
            .unwrap());
    }
    let r = app
        .post(&format!("{P}/alerts/al-k6/mark-read"), json!({}))
        .await;
    assert_eq!(r.status, 200);

    let r = app.get(&format!("{P}/dashboard/dana")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let d = &r.body["data"];
    let usage = app.get(&format!("{P}/usage/dana")).await;
    assert_eq!(
        d["current_usage"], usage.body["data"],
        "current_usage is /usage"
    );
    let trends = app.get(&format!("{P}/usage/dana/trends")).await;
    let mut expected_trends = trends.body["data"].clone();
    expected_trends.as_object_mut().unwrap().remove("user_id");
    assert_eq!(
        d["trends"], expected_trends,
        "trends is /trends of 6 periods"
    );
    assert_eq!(d["limits"]["plan_name"], "free");
    assert_eq!(d["limits"]["limits"], usage.body["data"]["limits"]);
    assert_eq!(
        d["usage_percentages"],
        usage.body["data"]["usage_percentages"]
    );
    // $0.0014 over 30 of March's 31 days: 0.0014 × 31 / 30.
    let projected: Decimal =
        "0.0014".parse::<Decimal>().unwrap() * Decimal::from(31) / Decimal::from(30);
    assert_eq!(
        d["projections"],
        json!({"projected_monthly_cost": projected.normalize().to_string(),
               "projected_usage_percentage": 0.07, "cost_cap": "2"})
    );
    let items = d["alerts"]["items"].as_array().unwrap();
    let keys: Vec<&str> = items.iter().map(|a| a["key"].as_str().unwrap()).collect();
    assert_eq!(
        keys,
        ["k6", "k5", "k4", "k3", "k2"],
        "the latest five, newest first"
    );
    assert_eq!(
        d["alerts"]["unread_count"], 6,
        "counts every unread alert, not the page"
    );
    let mut summary = d["summary"].clone();
    mask(&mut summary, &[]);
    assert_eq!(
        summary,
        json!({"plan": "free", "tier": "free", "subscription_status": "active", "usage_status": "active",
               "billing_cycle": "monthly",
               "period": {"start": "2025-03-01T00:00:00Z", "end": "2025-04-01T00:00:00Z", "name": "2025-03-01"},
               "days_remaining": 1, "total_calls": 2, "total_cost": "0.0014", "pending_plan": null})
    );
    assert_eq!(d["recommendations"], json!([]));

    // Within the first hour of a period there is no projection yet.
    clock.set(instant("2025-04-01T00:30:00Z"));
    let early = app.get(&format!("{P}/dashboard/dana")).await;
    assert_eq!(
        early.body["data"]["projections"],
        json!({"projected_monthly_cost": null, "projected_usage_percentage": null, "cost_cap": "2"})
    );
}

#[tokio::test]
async fn dashboard_recommends_the_cheapest_plan_that_holds_the_usage() {
    let app = TestApp::spawn_at(&TestClock::at("2025-03-20T00:00:00Z")).await;
    let events: Vec<Value> = (0..85)
        .map(|i| json!({"event_id": format!("e{i}"), "user_id": "erin", "provider": "gemini", "model": "gemini-2.5-flash", "input_tokens": 10}))
        .collect();
    record(&app, json!(events)).await;
    let r = app.get(&format!("{P}/dashboard/erin")).await;
    let recs = &r.body["data"]["recommendations"];
    assert_eq!(recs.as_array().unwrap().len(), 1, "{recs}");
    assert_eq!(recs[0]["kind"], "upgrade");
    assert_eq!(recs[0]["plan"], "basic");
    assert!(
        recs[0]["reason"]
            .as_str()
            .unwrap()
            .contains("calls:gemini is at 85.00%"),
        "{recs}"
    );
    assert_eq!(r.body["data"]["summary"]["usage_status"], "warning");
}

fn invoice(app: &TestApp, user: &str, month: u32, total: &str) -> Invoice {
    Invoice {
        id: format!("inv-{month}"),
        tenant: app.tenant.clone(),
        user: user.to_owned(),
        period: Period {
            start: instant(&format!("2025-{month:02}-01T00:00:00Z")),
            end: instant(&format!("2025-{:02}-01T00:00:00Z", month + 1)),
        },
        plan: PlanName::parse("pro").unwrap(),
        base_usd: "79".parse().unwrap(),
        usage_usd: "1.234567".parse().unwrap(),
        overage_usd: Decimal::ZERO,
        proration_usd: "33.3333333333".parse().unwrap(),
        adjustments_usd: Decimal::ZERO,
        total_usd: total.parse().unwrap(),
        line_items: vec![LineItem {
            kind: "base".into(),
            description: "Pro, monthly".into(),
            amount_usd: "79".parse().unwrap(),
        }],
        status: InvoiceStatus::Pending,
        created_at: instant(&format!("2025-{:02}-01T00:05:00Z", month + 1)),
        published: true,
        extra: [
            ("rounding", meter_core::billing::ROUNDING),
            ("exact_total_usd", "113.5680037333"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
    }
}

#[tokio::test]
async fn billing_lists_invoices_newest_first_with_exact_amounts_golden() {
    let app = TestApp::spawn_at(&TestClock::at("2025-04-02T00:00:00Z")).await;
    assert!(app
        .store
        .put_invoice_once(&invoice(&app, "frank", 2, "113.57"))
        .await
        .unwrap());
    assert!(app
        .store
        .put_invoice_once(&invoice(&app, "frank", 3, "80.23"))
        .await
        .unwrap());
    let r = app.get(&format!("{P}/billing/frank")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mut data = r.body["data"].clone();
    mask(&mut data, &["id", "created_at"]);
    let one = |month: u32, total: &str| {
        json!({"id": "<masked>",
               "period": {"start": format!("2025-{month:02}-01T00:00:00Z"), "end": format!("2025-{:02}-01T00:00:00Z", month + 1),
                          "name": format!("2025-{month:02}-01")},
               "plan": "pro", "base_usd": "79", "usage_usd": "1.234567", "overage_usd": "0",
               "proration_usd": "33.3333333333", "adjustments_usd": "0", "total_usd": total,
               "line_items": [{"kind": "base", "description": "Pro, monthly", "amount_usd": "79"}],
               "status": "pending", "created_at": "<masked>",
               "extra": {"rounding": "total rounded to cents, half away from zero",
                         "exact_total_usd": "113.5680037333"}})
    };
    assert_eq!(
        data,
        json!({"user_id": "frank", "invoices": [one(3, "80.23"), one(2, "113.57")]})
    );
    let none = app.get(&format!("{P}/billing/nobody")).await;
    assert_eq!(none.body["data"]["invoices"], json!([]));
}

#[tokio::test]
async fn another_tenants_user_reads_as_a_user_without_data() {
    let app = TestApp::spawn_at(&TestClock::at("2025-03-31T12:00:00Z")).await;
    let other_key = other_tenant(&app).await;
    assert!(app
        .store
        .put_invoice_once(&invoice(&app, "alice", 2, "1.00"))
        .await
        .unwrap());
    // The other tenant's key sees its own alice (1 call), not this tenant's invoice.
    let theirs = app.get_as(&other_key, &format!("{P}/usage/alice")).await;
    assert_eq!(theirs.body["data"]["total_calls"], 1);
    let bills = app.get_as(&other_key, &format!("{P}/billing/alice")).await;
    assert_eq!(bills.body["data"]["invoices"], json!([]));
    // This tenant's key sees nothing of the other tenant's alice.
    let ours = app.get(&format!("{P}/usage/alice")).await;
    assert_eq!(ours.body["data"]["total_calls"], 0);
    let dash = app.get(&format!("{P}/dashboard/alice")).await;
    assert_eq!(dash.body["data"]["current_usage"]["total_calls"], 0);
    let trends = app.get(&format!("{P}/usage/alice/trends")).await;
    assert_eq!(
        trends.body["data"]["total_calls"],
        json!([0, 0, 0, 0, 0, 0])
    );
}

#[tokio::test]
async fn dashboard_routes_need_a_key_and_a_valid_user_id() {
    let app = TestApp::spawn_at(&TestClock::at("2025-03-31T12:00:00Z")).await;
    let long = "u".repeat(129);
    for route in [
        "usage/{u}",
        "usage/{u}/trends",
        "dashboard/{u}",
        "billing/{u}",
    ] {
        let r = app
            .get_as(
                "mk_live_nope",
                &format!("{P}/{}", route.replace("{u}", "alice")),
            )
            .await;
        assert_eq!(
            (r.status.as_u16(), r.code()),
            (401, "unauthorized"),
            "{route}"
        );
        for bad in [long.as_str(), "sp%20ace"] {
            let r = app.get(&format!("{P}/{}", route.replace("{u}", bad))).await;
            assert_eq!(
                (r.status.as_u16(), r.code()),
                (400, "invalid_id"),
                "{route} {bad}"
            );
        }
        // The admin key may read too.
        let r = app
            .get_as(
                &app.admin_key.clone(),
                &format!("{P}/{}", route.replace("{u}", "alice")),
            )
            .await;
        assert_eq!(r.status, 200, "{route}");
    }
}
