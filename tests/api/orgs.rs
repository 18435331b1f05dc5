//! Issue 18: org subscriptions through the router on SQLite. The org's plan applies to
//! the pooled usage of every call naming the org (and stands in for the Free plan of
//! members without their own subscription); the aggregation closes each ended org period
//! into one org invoice and renews the subscription; bad input changes nothing.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use meter_core::service::aggregate::AggregateReport;
use meter_core::testing::TestClock;
use meter_tests::TestApp;

const P: &str = "/api/subscription";

fn check(user: &str, org: Option<&str>) -> Value {
    let mut c = json!({"user_id": user, "provider": "gemini"});
    if let Some(o) = org {
        c["org_id"] = json!(o);
    }
    c
}

fn event(id: &str, user: &str, org: &str, at: &str) -> Value {
    json!({"event_id": id, "user_id": user, "org_id": org, "provider": "gemini",
           "model": "gemini-2.5-flash", "input_tokens": 1000, "timestamp": at})
}

async fn pass(app: &TestApp, at: DateTime<Utc>) -> AggregateReport {
    app.aggregate_at(at).await
}

async fn tiny_plan(app: &TestApp) {
    app.put(
        &format!("{P}/plans/orgtiny"),
        json!({"tier": "custom", "monthly_price_usd": "10", "yearly_price_usd": "100",
               "limits": {"calls:gemini": 3}}),
    )
    .await
    .assert_ok("plan");
}

#[tokio::test]
async fn an_org_plan_pools_members_denies_past_it_and_is_invoiced_once_per_period() {
    let clock = TestClock::at("2026-03-10T12:00:00Z");
    let app = TestApp::spawn_at(&clock).await;
    tiny_plan(&app).await;

    // No subscription yet: null, calendar months.
    let r = app.get(&format!("{P}/org/acme/subscription")).await;
    r.assert_ok("get none");
    assert_eq!(r.body["data"]["subscription"], Value::Null);
    assert_eq!(
        r.body["data"]["current_period"]["start"],
        "2026-03-01T00:00:00Z"
    );

    let r = app
        .put(
            &format!("{P}/org/acme/subscription"),
            json!({"plan": "orgtiny"}),
        )
        .await;
    r.assert_ok("put");
    let d = &r.body["data"];
    assert_eq!(d["change"], "created", "{d}");
    assert_eq!(d["org_id"], "acme");
    assert_eq!(d["plan"]["name"], "orgtiny");
    assert_eq!(d["limits"], json!({"calls:gemini": 3}));
    assert_eq!(d["current_period"]["end"], "2026-04-01T00:00:00Z");
    let r = app
        .get_as(&app.service_key, &format!("{P}/org/acme/subscription"))
        .await;
    r.assert_ok("get");
    assert_eq!(r.body["data"]["subscription"]["plan"], "orgtiny");
    assert_eq!(r.body["data"]["subscription"]["version"], 1);

    // The org's plan decides for a member without a subscription (not Free's 100 calls).
    let r = app.check(check("ann", Some("acme"))).await;
    r.assert_ok("first check");
    assert_eq!(r.body["data"]["remaining"]["calls:gemini"], 3, "{}", r.body);
    assert_eq!(
        r.body["data"]["limited_by"]["calls:gemini"],
        json!({"scope": {"kind": "org", "org_id": "acme"}, "plan": "orgtiny", "window": "period"})
    );

    // Three members' calls fill the org's period; a redelivery counts nothing more.
    let events = json!({"events": [
        event("a1", "ann", "acme", "2026-03-10T12:00:00Z"),
        event("b1", "bob", "acme", "2026-03-10T12:00:00Z"),
        event("c1", "cat", "acme", "2026-03-10T12:00:00Z"),
    ]});
    app.usage(events.clone()).await.assert_ok("ingest");
    app.usage(events).await.assert_ok("redelivery");

    let denied = app.check(check("dan", Some("acme"))).await;
    assert_eq!(denied.status, 429, "{}", denied.body);
    let details = &denied.body["error"]["details"];
    assert_eq!(details["scope"], json!({"kind": "org", "org_id": "acme"}));
    assert_eq!(details["plan"], "orgtiny");
    assert_eq!(details["used"], 3);
    assert_eq!(details["limit"], 3);
    assert_eq!(details["resets_at"], "2026-04-01T00:00:00Z");
    assert_eq!(details["upgrade_to"], Value::Null);
    // Without the org, dan is on his own (Free) plan.
    app.check(check("dan", None)).await.assert_ok("dan alone");

    // Before the period ends, nothing is invoiced.
    pass(&app, "2026-03-31T23:00:00Z".parse().unwrap()).await;
    let r = app.get(&format!("{P}/org/acme/billing")).await;
    r.assert_ok("billing before");
    assert_eq!(r.body["data"]["invoices"], json!([]));

    // Two passes after the end: one invoice, the subscription renewed once.
    let after: DateTime<Utc> = "2026-04-01T00:20:00Z".parse().unwrap();
    clock.set(after);
    pass(&app, after).await;
    pass(&app, after).await;
    let r = app
        .get_as(&app.service_key, &format!("{P}/org/acme/billing"))
        .await;
    r.assert_ok("billing");
    let invoices = r.body["data"]["invoices"].as_array().unwrap().clone();
    assert_eq!(invoices.len(), 1, "{}", r.body);
    let inv = &invoices[0];
    assert_eq!(inv["plan"], "orgtiny");
    assert_eq!(inv["period"]["start"], "2026-03-01T00:00:00Z");
    // Subscribed on March 10 at noon on calendar months: 21.5 of 31 days of the $10 base,
    // as for a user; the usage is the three members' calls, each priced once.
    let amount = |k: &str| -> rust_decimal::Decimal { inv[k].as_str().unwrap().parse().unwrap() };
    let base = amount("base_usd");
    assert_eq!(
        base.round_dp(6),
        (rust_decimal_macros::dec!(10) * rust_decimal_macros::dec!(21.5)
            / rust_decimal_macros::dec!(31))
        .round_dp(6)
    );
    assert!(amount("usage_usd") > rust_decimal::Decimal::ZERO, "{inv}");
    assert_eq!(
        amount("total_usd"),
        (base + amount("usage_usd")).round_dp(2),
        "{inv}"
    );
    let r = app.get(&format!("{P}/org/acme/subscription")).await;
    assert_eq!(
        r.body["data"]["subscription"]["current_period"]["start"],
        "2026-04-01T00:00:00Z"
    );
    assert_eq!(r.body["data"]["subscription"]["version"], 2);

    // The new period allows again.
    app.check(check("dan", Some("acme")))
        .await
        .assert_ok("next period");
    // A user named like the org has no invoice of the org's.
    let r = app.get(&format!("{P}/billing/acme")).await;
    assert_eq!(r.body["data"]["invoices"], json!([]));
}

#[tokio::test]
async fn a_member_with_an_own_subscription_keeps_it_beside_the_orgs_plan() {
    let clock = TestClock::at("2026-03-10T12:00:00Z");
    let app = TestApp::spawn_at(&clock).await;
    tiny_plan(&app).await;
    app.put(
        &format!("{P}/org/acme/subscription"),
        json!({"plan": "pro"}),
    )
    .await
    .assert_ok("org");
    app.put(
        &format!("{P}/user/ann/subscription"),
        json!({"plan": "orgtiny"}),
    )
    .await
    .assert_ok("user");
    let r = app.check(check("ann", Some("acme"))).await;
    r.assert_ok("check");
    // The tighter of the two: ann's own 3 calls, not the org's 5000.
    assert_eq!(r.body["data"]["remaining"]["calls:gemini"], 3, "{}", r.body);
    assert_eq!(
        r.body["data"]["limited_by"]["calls:gemini"]["scope"],
        json!({"kind": "user", "user_id": "ann"})
    );
}

#[tokio::test]
async fn bad_org_subscription_writes_are_refused_and_change_nothing() {
    let app = TestApp::spawn().await;
    app.put(
        &format!("{P}/org/acme/subscription"),
        json!({"plan": "basic"}),
    )
    .await
    .assert_ok("first");
    let before = app.get(&format!("{P}/org/acme/subscription")).await.body;

    let r = app
        .put(
            &format!("{P}/org/acme/subscription"),
            json!({"plan": "nope"}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(r.code(), "unknown_plan");
    let r = app
        .put(
            &format!("{P}/org/acme/subscription"),
            json!({"plan": "pro", "colour": "red"}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    let r = app
        .put(
            &format!("{P}/org/a%20b/subscription"),
            json!({"plan": "pro"}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.code(), "invalid_id");
    // A service key reads but does not write.
    let r = app
        .put_as(
            &app.service_key,
            &format!("{P}/org/acme/subscription"),
            json!({"plan": "pro"}),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(
        app.get(&format!("{P}/org/acme/subscription")).await.body,
        before
    );
}

fn team_event(id: &str, user: &str, team: Option<&str>, tokens: u64) -> Value {
    let mut e = json!({"event_id": id, "user_id": user, "org_id": "acme", "provider": "gemini",
           "model": "gemini-2.5-flash", "input_tokens": tokens});
    if let Some(t) = team {
        e["team_id"] = json!(t);
    }
    e
}

#[tokio::test]
async fn org_reads_pool_the_period_rank_members_and_teams_by_cost_and_page() {
    let clock = TestClock::at("2026-03-10T12:00:00Z");
    let app = TestApp::spawn_at(&clock).await;
    // Nothing yet: zeros, no members.
    let r = app.get(&format!("{P}/org/acme/usage")).await;
    r.assert_ok("usage empty");
    assert_eq!(r.body["data"]["total_calls"], 0);
    assert_eq!(r.body["data"]["plan"], Value::Null);
    assert_eq!(r.body["data"]["period"]["start"], "2026-03-01T00:00:00Z");

    // ann: 3 calls in red; bob: 1 big call in blue; cat: 2 calls without a team; and
    // dan's call names no org (not counted). Redelivered: counted once.
    let batch = json!({"events": [
        team_event("a1", "ann", Some("red"), 1000),
        team_event("a2", "ann", Some("red"), 1000),
        team_event("a3", "ann", Some("red"), 1000),
        team_event("b1", "bob", Some("blue"), 100000),
        team_event("c1", "cat", None, 10),
        team_event("c2", "cat", None, 10),
        {"event_id": "d1", "user_id": "dan", "provider": "gemini", "model": "gemini-2.5-flash", "input_tokens": 5},
    ]});
    app.usage(batch.clone()).await.assert_ok("ingest");
    app.usage(batch).await.assert_ok("redelivery");

    let r = app
        .get_as(&app.service_key, &format!("{P}/org/acme/usage"))
        .await;
    r.assert_ok("usage");
    let u = &r.body["data"];
    assert_eq!(u["total_calls"], 6, "{u}");
    assert_eq!(u["total_tokens"], 103020, "{u}");
    assert_eq!(u["provider_breakdown"]["gemini"]["calls"], 6);

    let r = app.get(&format!("{P}/org/acme/members?limit=2")).await;
    r.assert_ok("members page 1");
    let m = &r.body["data"];
    assert_eq!(m["total_users"], 3, "{m}");
    let ids = |v: &Value, k: &str| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x[k].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&m["users"], "user_id"), ["bob", "ann"], "{m}");
    assert_eq!(m["users"][1]["calls"], 3);
    assert_eq!(ids(&m["teams"], "team_id"), ["blue", "red"], "{m}");
    assert_eq!(m["teams"][1]["tokens"], 3000);
    // The per-user costs add up to the org's.
    let cost = |v: &Value| -> rust_decimal::Decimal { v.as_str().unwrap().parse().unwrap() };
    let next = m["next_cursor"].as_str().unwrap().to_owned();
    let r = app
        .get(&format!("{P}/org/acme/members?limit=2&cursor={next}"))
        .await;
    r.assert_ok("members page 2");
    let m2 = &r.body["data"];
    assert_eq!(ids(&m2["users"], "user_id"), ["cat"]);
    assert_eq!(m2["next_cursor"], Value::Null);
    let sum = cost(&m["users"][0]["cost_usd"])
        + cost(&m["users"][1]["cost_usd"])
        + cost(&m2["users"][0]["cost_usd"]);
    assert_eq!(sum, cost(&u["total_cost"]));

    let r = app.get(&format!("{P}/org/acme/dashboard")).await;
    r.assert_ok("dashboard");
    let d = &r.body["data"];
    assert_eq!(d["usage"]["total_calls"], 6);
    assert_eq!(ids(&d["top_users"], "user_id"), ["bob", "ann", "cat"]);
    assert_eq!(d["total_users"], 3);
    assert_eq!(d["invoices"], 0);

    // Bad paging is refused.
    for q in [
        "limit=0",
        "limit=101",
        "cursor=zzz",
        "limit=1&limit=2",
        "colour=red",
    ] {
        let r = app.get(&format!("{P}/org/acme/members?{q}")).await;
        assert_eq!(r.status, 400, "{q}: {}", r.body);
    }
    let r = app.get(&format!("{P}/org/a%20b/usage")).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.code(), "invalid_id");

    // A new period starts from zero.
    clock.set("2026-04-02T00:00:00Z".parse().unwrap());
    let r = app.get(&format!("{P}/org/acme/members")).await;
    assert_eq!(r.body["data"]["users"], json!([]));
    assert_eq!(
        app.get(&format!("{P}/org/acme/usage")).await.body["data"]["total_calls"],
        0
    );
}

#[tokio::test]
async fn a_subscribed_org_stands_in_for_free_in_the_answer_and_the_alerts() {
    let app = TestApp::spawn().await;
    app.put(
        &format!("{P}/org/acme/subscription"),
        json!({"plan": "pro"}),
    )
    .await
    .assert_ok("org");
    let r = app.check(check("zed", Some("acme"))).await;
    r.assert_ok("check");
    assert_eq!(r.body["data"]["plan"], "pro", "{}", r.body);
    // $4 of usage naming acme: past the Free plan's $2 cap, but zed is not on Free there.
    let big = |id: &str, org: Option<&str>| {
        let mut e = json!({"event_id": id, "user_id": "zed", "provider": "openai",
                           "model": "gpt-4o", "output_tokens": 400000});
        if let Some(o) = org {
            e["org_id"] = json!(o);
        }
        e
    };
    app.usage(big("z1", Some("acme")))
        .await
        .assert_ok("in acme");
    let alerts = |body: &Value| -> Vec<String> {
        body["data"]["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["key"].as_str().unwrap().to_owned())
            .collect()
    };
    let r = app.get(&format!("{P}/alerts/zed")).await;
    assert_eq!(alerts(&r.body), Vec::<String>::new(), "{}", r.body);
    // A call of zed's own (no org) is on Free: its thresholds alert.
    app.usage(big("z2", None)).await.assert_ok("alone");
    let r = app.get(&format!("{P}/alerts/zed")).await;
    assert!(
        alerts(&r.body).contains(&"cost_usd@100".to_owned()),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn an_orgs_period_budget_follows_the_orgs_billing_period() {
    let clock = TestClock::at("2026-03-10T12:00:00Z");
    let app = TestApp::spawn_at(&clock).await;
    let r = app
        .put(
            &format!("{P}/org/acme/subscription"),
            json!({"plan": "pro", "anchor": "anniversary"}),
        )
        .await;
    r.assert_ok("org");
    let end = r.body["data"]["current_period"]["end"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(end.starts_with("2026-04-10"), "{end}");
    app.put(
        &format!("{P}/budgets/acme-period"),
        json!({"scope": {"kind": "org", "org_id": "acme"}, "limits": {"calls:*": 2},
               "window": "period", "mode": "hard"}),
    )
    .await
    .assert_ok("budget");
    // Two calls at the end of March and one on April 9th fill the org's period (not a
    // calendar month, which would have started again on April 1st).
    clock.set("2026-03-31T12:00:00Z".parse().unwrap());
    app.usage(json!({"events": [
        {"event_id": "p1", "user_id": "ann", "org_id": "acme", "provider": "gemini",
         "model": "gemini-2.5-flash", "input_tokens": 10, "timestamp": "2026-03-31T12:00:00Z"},
        {"event_id": "p2", "user_id": "bob", "org_id": "acme", "provider": "gemini",
         "model": "gemini-2.5-flash", "input_tokens": 10, "timestamp": "2026-03-31T12:00:00Z"},
    ]}))
    .await
    .assert_ok("usage");
    clock.set("2026-04-09T12:00:00Z".parse().unwrap());
    let denied = app.check(check("cat", Some("acme"))).await;
    assert_eq!(denied.status, 429, "{}", denied.body);
    let d = &denied.body["error"]["details"];
    assert_eq!(d["budget_id"], "acme-period");
    assert_eq!(d["window"], "period");
    assert_eq!(d["resets_at"].as_str().unwrap(), end);
    // The org's next period allows again.
    clock.set(end.parse::<DateTime<Utc>>().unwrap() + chrono::Duration::minutes(1));
    app.check(check("cat", Some("acme")))
        .await
        .assert_ok("next org period");
}
