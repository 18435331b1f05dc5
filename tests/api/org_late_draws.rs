//! A prepaid org's late event is paid once (docs/credits.md, "Late events on prepaid
//! plans"), through the router and the aggregation on SQLite: recorded after the org's
//! period was invoiced, it draws from the org's wallet and is billed as an adjustment on
//! the org's next invoice, which credits what it drew (`credits_applied`) and bills only
//! its shortfall, taking that off the overdraft. The stores' promise under racing closes
//! is tests/conformance/org_late_draws.rs (both stores).

use rust_decimal::Decimal;
use serde_json::{json, Value};

use meter_core::domain::{Invoice, OrgId};
use meter_core::testing::TestClock;
use meter_tests::TestApp;

const P: &str = "/api/subscription";
const ACME: &str = "/api/subscription/wallet/org/acme";

/// A call by `user` within acme of `mtok` million input tokens ($0.30 each).
fn usage(id: &str, user: &str, mtok: u64, at: Option<&str>) -> Value {
    let mut e = json!({"event_id": id, "user_id": user, "org_id": "acme", "provider": "gemini",
                       "model": "gemini-2.5-flash", "input_tokens": mtok * 1_000_000});
    if let Some(at) = at {
        e["timestamp"] = json!(at);
    }
    json!({ "events": [e] })
}

async fn pass(app: &TestApp, clock: &TestClock, at: &str) {
    clock.set(at.parse().unwrap());
    app.aggregate_at(at.parse().unwrap()).await;
}

async fn invoices(app: &TestApp) -> Vec<Invoice> {
    let mut all = app
        .store
        .list_org_invoices(&app.tenant, &OrgId::parse("acme").unwrap())
        .await
        .unwrap();
    all.sort_by_key(|i| i.period.start);
    all
}

fn credits_line(inv: &Invoice) -> Option<Decimal> {
    inv.line_items
        .iter()
        .find(|l| l.kind == "credits_applied")
        .map(|l| l.amount_usd)
}

async fn balance(app: &TestApp) -> String {
    let w = app.get(ACME).await;
    w.assert_ok("wallet");
    w.body["data"]["balance_usd"].as_str().unwrap().to_owned()
}

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

#[tokio::test]
async fn a_prepaid_orgs_late_event_is_paid_once() {
    let clock = TestClock::at("2026-03-10T09:00:00Z");
    let app = TestApp::spawn_at(&clock).await;
    app.put(
        &format!("{P}/plans/teampay"),
        json!({"tier": "custom", "monthly_price_usd": "0", "yearly_price_usd": "0",
               "limits": {"calls:gemini": 100}, "payment": "prepaid"}),
    )
    .await
    .assert_ok("plan");
    app.put(
        &format!("{P}/org/acme/subscription"),
        json!({"plan": "teampay"}),
    )
    .await
    .assert_ok("org subscription");
    app.put(
        &format!("{ACME}/grants/pool"),
        json!({"amount_usd": "0.5", "kind": "purchase"}),
    )
    .await
    .assert_ok("grant");
    app.usage(usage("a-1", "ann", 1, None))
        .await
        .assert_ok("a-1");
    pass(&app, &clock, "2026-04-11T01:00:00Z").await;
    let first = invoices(&app).await;
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(credits_line(&first[0]), Some(dec("-0.3")));
    assert_eq!(first[0].total_usd, Decimal::ZERO);
    assert_eq!(balance(&app).await, "0.2");

    // Reported after that period was invoiced, for a call made on its last day: $0.60,
    // of which $0.20 drawn from the grant and $0.40 overdrawn.
    let late = usage("a-late", "bob", 2, Some("2026-03-31T12:00:00Z"));
    let r = app.usage(late.clone()).await;
    r.assert_ok("late");
    assert_eq!(
        r.body["data"]["events"][0]["status"], "recorded",
        "{}",
        r.body
    );
    assert_eq!(balance(&app).await, "-0.4");
    // A redelivery draws nothing.
    app.usage(late).await.assert_ok("redelivered");
    assert_eq!(balance(&app).await, "-0.4");

    pass(&app, &clock, "2026-05-11T01:00:00Z").await;
    pass(&app, &clock, "2026-05-11T02:00:00Z").await;
    let all = invoices(&app).await;
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(all[0], first[0], "the first invoice is never rewritten");
    let next = &all[1];
    assert_eq!(next.adjustments_usd, dec("0.6"), "{next:?}");
    // The adjustment bills the late call; what it drew is credited, its shortfall billed
    // once and taken off the overdraft: $0.60 paid in all, not $0.20 + $0.60.
    assert_eq!(credits_line(next), Some(dec("-0.2")), "{next:?}");
    assert_eq!(next.total_usd, dec("0.40"), "{next:?}");
    assert_eq!(balance(&app).await, "0");

    // Nothing is pending any more.
    pass(&app, &clock, "2026-06-11T01:00:00Z").await;
    let all = invoices(&app).await;
    assert_eq!(all.len(), 3);
    assert_eq!(all[2].adjustments_usd, Decimal::ZERO);
    assert_eq!(credits_line(&all[2]), None);
    assert_eq!(all[2].total_usd, Decimal::ZERO);
}
