//! A prepaid org's late event is paid once, and a cancelled org's pending adjustments are
//! billed once, on DynamoDB through the router and the aggregation (the SQLite runs are
//! tests/api/org_late_draws.rs and tests/api/org_cancelled.rs): the late event's org
//! wallet draw rides on the org's pooled counter item with its adjustment, and the invoice
//! billing the adjustment — here the last ended period of the cancelled org — credits it.

use super::setup_at;
use meter_core::domain::{Invoice, OrgId};
use meter_core::testing::TestClock;
use rust_decimal::Decimal;
use serde_json::{json, Value};

const P: &str = "/api/subscription";
const ACME: &str = "/api/subscription/wallet/org/acme";

fn usage(id: &str, user: &str, mtok: u64, at: &str) -> Value {
    json!({"events": [{"event_id": id, "user_id": user, "org_id": "acme", "provider": "gemini",
           "model": "gemini-2.5-flash", "input_tokens": mtok * 1_000_000, "timestamp": at}]})
}

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn credits_line(inv: &Invoice) -> Option<Decimal> {
    inv.line_items
        .iter()
        .find(|l| l.kind == "credits_applied")
        .map(|l| l.amount_usd)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancelled_prepaid_orgs_late_event_is_billed_and_paid_once_on_dynamodb() {
    let clock = TestClock::at("2026-03-10T09:00:00Z");
    let (app, _) = setup_at(&clock).await;
    let pass = |at: &'static str| {
        let (app, clock) = (app.clone(), clock.clone());
        async move {
            clock.set(at.parse().unwrap());
            app.aggregate_at(at.parse().unwrap()).await;
        }
    };
    let invoices = || {
        let app = app.clone();
        async move {
            let mut all = app
                .store
                .list_org_invoices(&app.tenant, &OrgId::parse("acme").unwrap())
                .await
                .unwrap();
            all.sort_by_key(|i| i.period.start);
            all
        }
    };
    let balance = || {
        let app = app.clone();
        async move {
            let w = app.get(ACME).await;
            w.assert_ok("wallet");
            w.body["data"]["balance_usd"].as_str().unwrap().to_owned()
        }
    };
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
    app.usage(usage("d-1", "ann", 1, "2026-03-10T09:00:00Z"))
        .await
        .assert_ok("d-1");
    pass("2026-04-01T01:00:00Z").await;
    let first = invoices().await;
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(credits_line(&first[0]), Some(dec("-0.3")));
    assert_eq!(balance().await, "0.2");

    // Late: $0.60, $0.20 drawn and $0.40 overdrawn; redelivered, nothing more. Then the
    // org cancels at once: no later period of its subscription is closed.
    for _ in 0..2 {
        app.usage(usage("d-late", "bob", 2, "2026-03-31T12:00:00Z"))
            .await
            .assert_ok("late");
    }
    assert_eq!(balance().await, "-0.4");
    clock.set("2026-04-05T09:00:00Z".parse().unwrap());
    app.put(
        &format!("{P}/org/acme/subscription"),
        json!({"plan": "teampay", "status": "cancelled"}),
    )
    .await
    .assert_ok("cancel");

    pass("2026-05-01T01:00:00Z").await;
    pass("2026-05-01T02:00:00Z").await;
    let all = invoices().await;
    assert_eq!(all.len(), 2, "{all:?}");
    let april = &all[1];
    assert_eq!(april.period.start.to_rfc3339(), "2026-04-01T00:00:00+00:00");
    assert_eq!(april.base_usd, Decimal::ZERO, "{april:?}");
    assert_eq!(april.adjustments_usd, dec("0.6"), "{april:?}");
    assert_eq!(credits_line(april), Some(dec("-0.2")), "{april:?}");
    assert_eq!(april.total_usd, dec("0.40"), "{april:?}");
    assert_eq!(balance().await, "0");
    pass("2026-06-01T01:00:00Z").await;
    assert_eq!(invoices().await.len(), 2, "billed once");
}
