//! Prepaid plans through the router (issue 19, SPEC §11): a plan's `payment`, the check
//! denied for want of credit (429, metric `credits_usd`), reservations holding credit,
//! usage drawing from grants (exactly once, overdrawing when it must), releases giving
//! credit back, and the refusals of a bad `payment`.

use serde_json::{json, Value};

use meter_core::testing::TestClock;
use meter_tests::TestApp;

const P: &str = "/api/subscription";
const PAM: &str = "/api/subscription/wallet/user/pam";

fn payg(payment: Value) -> Value {
    json!({"tier": "custom", "monthly_price_usd": "0", "yearly_price_usd": "0",
           "limits": {"calls:gemini": 100}, "payment": payment})
}

/// A check of gemini-2.5-flash estimated at `mtok` million input tokens ($0.30 each).
fn check(mtok: u64, reserve: bool) -> Value {
    json!({"user_id": "pam", "provider": "gemini", "model": "gemini-2.5-flash",
           "estimated_input_tokens": mtok * 1_000_000, "reserve": reserve})
}

fn usage(id: &str, mtok: u64, reservation: Option<&str>) -> Value {
    let mut e = json!({"event_id": id, "user_id": "pam", "provider": "gemini",
                       "model": "gemini-2.5-flash", "input_tokens": mtok * 1_000_000});
    if let Some(r) = reservation {
        e["reservation_id"] = json!(r);
    }
    e
}

async fn figures(app: &TestApp) -> (String, String, String) {
    let w = app.get(PAM).await;
    w.assert_ok("wallet");
    let d = &w.body["data"];
    let s = |k: &str| d[k].as_str().unwrap().to_owned();
    (s("balance_usd"), s("held_usd"), s("available_usd"))
}

fn strs(a: &str, b: &str, c: &str) -> (String, String, String) {
    (a.to_owned(), b.to_owned(), c.to_owned())
}

#[tokio::test]
async fn a_prepaid_plan_denies_beyond_credit_holds_it_and_draws_usage_once() {
    let clock = TestClock::at("2026-03-10T09:00:00Z");
    let app = TestApp::spawn_at(&clock).await;
    let r = app
        .put(&format!("{P}/plans/payg"), payg(json!("prepaid")))
        .await;
    r.assert_ok("plan");
    let plans = app.get(&format!("{P}/plans")).await;
    let listed: Vec<&Value> = plans.body["data"]["plans"]
        .as_array()
        .or_else(|| plans.body["data"].as_array())
        .unwrap()
        .iter()
        .collect();
    let payg_listed = listed.iter().find(|p| p["name"] == "payg").unwrap();
    assert_eq!(payg_listed["payment"], "prepaid");
    let free = listed.iter().find(|p| p["name"] == "free").unwrap();
    assert_eq!(free["payment"], "postpaid");
    app.put(
        &format!("{P}/user/pam/subscription"),
        json!({"plan": "payg"}),
    )
    .await
    .assert_ok("subscribe");

    // No credit at all: denied, with the wallet's figures.
    let denied = app.check(check(1, false)).await;
    assert_eq!(denied.status, 429, "{}", denied.body);
    assert_eq!(denied.code(), "usage_limit_exceeded");
    assert_eq!(
        denied.body["error"]["details"],
        json!({"metric": "credits_usd", "scope": {"kind": "user", "user_id": "pam"},
               "used": "0", "limit": "0", "requested": "0.3", "available_usd": "0",
               "balance_usd": "0", "held_usd": "0", "resets_at": null, "upgrade_to": null})
    );
    assert_eq!(denied.headers["retry-after"], "60");

    app.put(
        &format!("{PAM}/grants/topup-1"),
        json!({"amount_usd": "1.00", "kind": "purchase"}),
    )
    .await
    .assert_ok("grant");

    // Three $0.30 holds fit in $1; the fourth does not (0.10 left).
    let mut held = Vec::new();
    for i in 0..3 {
        let r = app.check(check(1, true)).await;
        r.assert_ok(&format!("hold {i}"));
        held.push(
            r.body["data"]["reservation_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(figures(&app).await, strs("1", "0.9", "0.1"));
    let denied = app.check(check(1, true)).await;
    assert_eq!(denied.status, 429, "{}", denied.body);
    assert_eq!(denied.body["error"]["details"]["available_usd"], "0.1");
    assert_eq!(
        figures(&app).await,
        strs("1", "0.9", "0.1"),
        "a denial holds nothing"
    );
    // Without reserving, a call that fits is allowed and holds nothing.
    app.check(
        json!({"user_id": "pam", "provider": "gemini", "model": "gemini-2.5-flash",
                     "estimated_input_tokens": 300_000}),
    )
    .await
    .assert_ok("$0.09 fits");

    // The first hold settles at $0.60 (more than its estimate): it draws $0.60, its
    // $0.30 hold is released.
    let r = app.usage(usage("e-1", 2, Some(&held[0]))).await;
    r.assert_ok("settle");
    assert_eq!(figures(&app).await, strs("0.4", "0.6", "-0.2"));
    // A redelivery draws nothing.
    let r = app.usage(usage("e-1", 2, Some(&held[0]))).await;
    assert_eq!(r.body["data"]["events"][0]["status"], "duplicate");
    assert_eq!(figures(&app).await, strs("0.4", "0.6", "-0.2"));

    // Releases give the credit back.
    for id in &held[1..] {
        app.post(&format!("{P}/reservations/{id}/release"), json!({}))
            .await
            .assert_ok("release");
    }
    assert_eq!(figures(&app).await, strs("0.4", "0", "0.4"));

    // Usage that already happened is recorded past the credit: the wallet overdraws.
    app.usage(usage("e-2", 2, None)).await.assert_ok("overdraw");
    assert_eq!(figures(&app).await, strs("-0.2", "0", "-0.2"));
    let w = app.get(PAM).await;
    assert_eq!(
        w.body["data"]["grants"][0]["remaining_usd"], "0",
        "no grant below 0"
    );
    // The burn of the last 7 days is what the events drew; nothing is available: the
    // projected depletion is now.
    assert_eq!(w.body["data"]["burn_last_7_days_usd"], "1.2");
    assert_eq!(
        w.body["data"]["projected_depletion_at"],
        "2026-03-10T09:00:00Z"
    );
    let denied = app.check(check(0, false)).await;
    assert_eq!(denied.status, 429, "an overdrawn wallet admits nothing");

    // A top-up covers the overdraft first: $1 − $0.20 is available.
    app.put(
        &format!("{PAM}/grants/topup-2"),
        json!({"amount_usd": "1", "kind": "purchase"}),
    )
    .await
    .assert_ok("top-up");
    assert_eq!(figures(&app).await, strs("0.8", "0", "0.8"));
    // 0.8 at 1.2 a week: 4 days 16 hours left.
    let w = app.get(PAM).await;
    assert_eq!(
        w.body["data"]["projected_depletion_at"],
        "2026-03-15T01:00:00Z"
    );
    app.check(check(1, false)).await.assert_ok("credit again");
}

#[tokio::test]
async fn a_postpaid_plan_ignores_the_wallet() {
    let app = TestApp::spawn().await;
    app.put(&format!("{P}/plans/payg"), payg(json!("postpaid")))
        .await
        .assert_ok("plan");
    app.put(
        &format!("{P}/user/pam/subscription"),
        json!({"plan": "payg"}),
    )
    .await
    .assert_ok("subscribe");
    app.check(check(1, true))
        .await
        .assert_ok("no wallet needed");
    app.usage(usage("e-1", 1, None)).await.assert_ok("usage");
    assert_eq!(figures(&app).await, strs("0", "0", "0"));
}

#[tokio::test]
async fn a_bad_payment_is_refused_and_changes_nothing() {
    let app = TestApp::spawn().await;
    for (payment, code) in [
        (json!("credit"), "invalid_value"),
        (json!("PREPAID"), "invalid_value"),
        (json!(1), "invalid_type"),
        (json!(null), "invalid_type"),
    ] {
        let r = app
            .put(&format!("{P}/plans/payg"), payg(payment.clone()))
            .await;
        assert_eq!(r.status, 422, "{payment}: {}", r.body);
        let errors = r.body["error"]["details"]["errors"].as_array().unwrap();
        assert!(
            errors
                .iter()
                .any(|e| e["field"] == "payment" && e["code"] == code),
            "{payment}: {}",
            r.body
        );
    }
    let plans = app.get(&format!("{P}/plans")).await;
    assert!(!plans.body.to_string().contains("payg"), "nothing stored");
}

async fn pass(app: &TestApp, at: &str) {
    app.meter
        .aggregate(&meter_core::service::aggregate::AggregateOptions {
            at: Some(at.parse().unwrap()),
            ..Default::default()
        })
        .await
        .unwrap();
}

async fn invoices(app: &TestApp, user: &str) -> Vec<meter_core::domain::Invoice> {
    app.store
        .list_invoices(
            &app.tenant,
            &meter_core::domain::UserId::parse(user).unwrap(),
        )
        .await
        .unwrap()
}

fn line<'a>(
    inv: &'a meter_core::domain::Invoice,
    kind: &str,
) -> Option<&'a meter_core::domain::LineItem> {
    inv.line_items.iter().find(|l| l.kind == kind)
}

#[tokio::test]
async fn postpaid_credit_reduces_the_invoice_once_and_never_below_zero() {
    let clock = TestClock::at("2026-03-10T09:00:00Z");
    let app = TestApp::spawn_at(&clock).await;
    app.put(
        &format!("{P}/wallet/user/cal/grants/promo"),
        json!({"amount_usd": "0.5", "kind": "promo", "expires_at": "2026-12-31T00:00:00Z"}),
    )
    .await
    .assert_ok("grant");
    // $0.90 of usage in March on the (postpaid) Free plan.
    let mut e = usage("c-1", 3, None);
    e["user_id"] = json!("cal");
    app.usage(e).await.assert_ok("usage");

    clock.set("2026-04-01T01:00:00Z".parse().unwrap());
    pass(&app, "2026-04-01T01:00:00Z").await;
    let inv = invoices(&app, "cal").await;
    assert_eq!(inv.len(), 1);
    let credits = line(&inv[0], "credits_applied").expect("a credits_applied line");
    assert_eq!(credits.amount_usd, rust_decimal::Decimal::new(-5, 1));
    assert_eq!(
        inv[0].total_usd,
        rust_decimal::Decimal::new(40, 2),
        "0.90 − 0.50"
    );
    let w = app.get("/api/subscription/wallet/user/cal").await;
    assert_eq!(w.body["data"]["balance_usd"], "0", "the promo paid $0.50");

    // Another pass (and another after) takes nothing more.
    pass(&app, "2026-04-01T02:00:00Z").await;
    pass(&app, "2026-04-02T00:00:00Z").await;
    assert_eq!(invoices(&app, "cal").await, inv);
    // More credit than the invoice: the total stops at zero, the rest stays.
    app.put(
        &format!("{P}/wallet/user/cal/grants/big"),
        json!({"amount_usd": "100", "kind": "purchase"}),
    )
    .await
    .assert_ok("grant");
    let mut e = usage("c-2", 1, None);
    e["user_id"] = json!("cal");
    app.usage(e).await.assert_ok("april usage");
    clock.set("2026-05-01T01:00:00Z".parse().unwrap());
    pass(&app, "2026-05-01T01:00:00Z").await;
    let inv = invoices(&app, "cal").await;
    assert_eq!(inv.len(), 2);
    assert_eq!(
        inv[0].total_usd,
        rust_decimal::Decimal::ZERO,
        "{:?}",
        inv[0]
    );
    let w = app.get("/api/subscription/wallet/user/cal").await;
    assert_eq!(w.body["data"]["balance_usd"], "99.7");
}

#[tokio::test]
async fn a_prepaid_invoice_credits_what_events_drew_and_bills_the_overdraft() {
    let clock = TestClock::at("2026-03-10T09:00:00Z");
    let app = TestApp::spawn_at(&clock).await;
    app.put(&format!("{P}/plans/payg"), payg(json!("prepaid")))
        .await
        .assert_ok("plan");
    app.put(
        &format!("{P}/user/pam/subscription"),
        json!({"plan": "payg"}),
    )
    .await
    .assert_ok("subscribe");
    app.put(
        &format!("{PAM}/grants/topup"),
        json!({"amount_usd": "1", "kind": "purchase"}),
    )
    .await
    .assert_ok("grant");
    // $1.20 of usage: $1 drawn, $0.20 overdrawn.
    app.usage(usage("p-1", 4, None)).await.assert_ok("usage");
    assert_eq!(figures(&app).await, strs("-0.2", "0", "-0.2"));

    clock.set("2026-04-01T01:00:00Z".parse().unwrap());
    pass(&app, "2026-04-01T01:00:00Z").await;
    let inv = invoices(&app, "pam").await;
    assert_eq!(inv.len(), 1, "{inv:?}");
    assert_eq!(
        line(&inv[0], "credits_applied").unwrap().amount_usd,
        rust_decimal::Decimal::from(-1)
    );
    assert_eq!(
        inv[0].total_usd,
        rust_decimal::Decimal::new(20, 2),
        "the overdraft"
    );
    // The invoice took the overdraft: the wallet is back at zero, once.
    assert_eq!(figures(&app).await, strs("0", "0", "0"));
    pass(&app, "2026-04-01T02:00:00Z").await;
    assert_eq!(figures(&app).await, strs("0", "0", "0"));
    assert_eq!(invoices(&app, "pam").await, inv);
}

/// Keeps what the alert port accepts.
#[derive(Default)]
struct Recorder(std::sync::Mutex<Vec<meter_core::alerts::OutboxMessage>>);

#[async_trait::async_trait]
impl meter_core::alerts::AlertPublisher for Recorder {
    async fn publish(
        &self,
        m: &meter_core::alerts::OutboxMessage,
    ) -> Result<(), meter_core::alerts::PublishError> {
        self.0.lock().unwrap().push(m.clone());
        Ok(())
    }
}

impl Recorder {
    fn types(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|m| m.attributes["type"].clone())
            .filter(|t| t.starts_with("wallet."))
            .collect()
    }
}

#[tokio::test]
async fn wallet_alarms_fire_once_per_crossing_and_rearm_on_rising() {
    let clock = TestClock::at("2026-03-10T09:00:00Z");
    let publisher = std::sync::Arc::new(Recorder::default());
    let app = TestApp::setup()
        .clock(&clock)
        .publisher(publisher.clone())
        .spawn()
        .await;
    app.put(&format!("{P}/plans/payg"), payg(json!("prepaid")))
        .await
        .assert_ok("plan");
    app.put(
        &format!("{P}/user/pam/subscription"),
        json!({"plan": "payg"}),
    )
    .await
    .assert_ok("subscribe");
    app.put(
        &format!("{PAM}/settings"),
        json!({"low_balance_usd": "0.5"}),
    )
    .await
    .assert_ok("level");
    app.put(
        &format!("{PAM}/grants/topup-1"),
        json!({"amount_usd": "1", "kind": "purchase"}),
    )
    .await
    .assert_ok("grant");
    assert!(publisher.types().is_empty(), "a top-up fires nothing");

    // $0.30: 0.7 left, above the level.
    app.usage(usage("a-1", 1, None)).await.assert_ok("a-1");
    assert!(publisher.types().is_empty());
    // $0.30 more: 0.4 < 0.5 — low balance, once.
    app.usage(usage("a-2", 1, None)).await.assert_ok("a-2");
    assert_eq!(publisher.types(), ["wallet.low_balance"]);
    // Still low (0.1): nothing more, also on redelivery.
    app.usage(usage("a-3", 1, None)).await.assert_ok("a-3");
    app.usage(usage("a-3", 1, None))
        .await
        .assert_ok("a-3 again");
    assert_eq!(publisher.types(), ["wallet.low_balance"]);
    // Below zero: depleted, once.
    app.usage(usage("a-4", 1, None)).await.assert_ok("a-4");
    app.usage(usage("a-5", 1, None)).await.assert_ok("a-5");
    assert_eq!(publisher.types(), ["wallet.low_balance", "wallet.depleted"]);

    // A top-up re-arms both; falling again fires both again.
    app.put(
        &format!("{PAM}/grants/topup-2"),
        json!({"amount_usd": "2", "kind": "purchase"}),
    )
    .await
    .assert_ok("top-up");
    assert_eq!(figures(&app).await, strs("1.5", "0", "1.5"));
    app.usage(usage("b-1", 6, None)).await.assert_ok("b-1");
    assert_eq!(
        publisher.types(),
        [
            "wallet.low_balance",
            "wallet.depleted",
            "wallet.low_balance",
            "wallet.depleted"
        ]
    );
    let alerts = app.get(&format!("{P}/alerts/pam")).await;
    alerts.assert_ok("alerts");
    let keys: Vec<&str> = alerts.body["data"]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["key"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        keys.iter().filter(|k| k.starts_with("wallet.")).count(),
        4,
        "{keys:?}"
    );
}
