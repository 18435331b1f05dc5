//! The billing rules of an aggregation pass (docs/billing.md), each scenario driven by a
//! clock the test sets and passes `as of` chosen instants (what `meter aggregate --at`
//! runs): a period is billed under the plan and status in force at its start; every
//! period with usage is invoiced once; the subscription rolls in period order with the
//! closes, also after an outage.

use chrono::{DateTime, Utc};
use meter_core::domain::{Invoice, SubscriptionStatus, UserId};
use meter_core::service::aggregate::{AggregateOptions, AggregateReport};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use serde_json::json;

use meter_core::testing::TestClock;
use meter_tests::TestApp;

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

struct Scenario {
    app: TestApp,
    clock: TestClock,
}

impl Scenario {
    async fn start(now: &str) -> Self {
        let clock = TestClock::at(now);
        let app = TestApp::spawn_at(&clock).await;
        Scenario { app, clock }
    }

    fn set(&self, now: &str) {
        self.clock.set(at(now));
    }

    /// `PUT /user/{user}/subscription` at `now`.
    async fn subscribe(&self, now: &str, user: &str, body: serde_json::Value) {
        self.set(now);
        let r = self
            .app
            .put(&format!("/api/subscription/user/{user}/subscription"), body)
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
    }

    /// One gemini event of `user` dated `when`, reported at `now`.
    async fn event(&self, now: &str, user: &str, id: &str, when: &str) {
        self.set(now);
        let r = self
            .app
            .usage(
                json!({"event_id": id, "user_id": user, "provider": "gemini",
                          "model": "gemini-2.5-flash", "timestamp": when,
                          "input_tokens": 1000, "output_tokens": 200}),
            )
            .await;
        assert_eq!(
            r.body["data"]["events"][0]["status"], "recorded",
            "{:?}",
            r.body
        );
    }

    /// One pass as of `now` (10 minutes' grace, as by default).
    async fn pass(&self, now: &str) -> AggregateReport {
        self.set(now);
        self.app
            .meter
            .aggregate(&AggregateOptions {
                at: Some(at(now)),
                ..AggregateOptions::default()
            })
            .await
            .unwrap()
    }

    /// The user's invoices, oldest period first.
    async fn invoices(&self, user: &str) -> Vec<Invoice> {
        let mut all = self
            .app
            .store
            .list_invoices(&self.app.tenant, &UserId::parse(user).unwrap())
            .await
            .unwrap();
        all.sort_by_key(|i| i.period.start);
        all
    }
}

/// `(period start date, plan, base)` of each invoice.
fn bases(invoices: &[Invoice]) -> Vec<(String, String, Decimal)> {
    invoices
        .iter()
        .map(|i| {
            (
                i.period.start.date_naive().to_string(),
                i.plan.to_string(),
                i.base_usd,
            )
        })
        .collect()
}

fn row(date: &str, plan: &str, base: Decimal) -> (String, String, Decimal) {
    (date.to_owned(), plan.to_owned(), base)
}

#[tokio::test]
async fn months_a_subscription_spent_cancelled_carry_no_base_and_a_reactivation_is_prorated() {
    let s = Scenario::start("2025-01-01T00:00:00Z").await;
    s.subscribe("2025-01-01T00:00:00Z", "ann", json!({"plan": "basic"}))
        .await;
    s.pass("2025-02-01T01:00:00Z").await;
    s.pass("2025-03-01T01:00:00Z").await;
    s.subscribe(
        "2025-03-10T00:00:00Z",
        "ann",
        json!({"status": "cancelled"}),
    )
    .await;
    for month in ["04", "05", "06", "07", "08"] {
        s.pass(&format!("2025-{month}-01T01:00:00Z")).await;
    }
    s.subscribe("2025-08-10T00:00:00Z", "ann", json!({"status": "active"}))
        .await;
    s.pass("2025-09-01T01:00:00Z").await;
    s.pass("2025-10-01T01:00:00Z").await;

    let invoices = s.invoices("ann").await;
    assert_eq!(
        bases(&invoices),
        [
            row("2025-01-01", "basic", dec!(29)),
            row("2025-02-01", "basic", dec!(29)),
            row("2025-03-01", "basic", dec!(29)),
            row("2025-08-01", "basic", dec!(0)),
            row("2025-09-01", "basic", dec!(29)),
        ],
        "April to July were cancelled from their start: no invoice, no base"
    );
    // August: the rest of the month from the reactivation, 22 of 31 days.
    assert_eq!(invoices[3].proration_usd, dec!(29) * dec!(22) / dec!(31));
    assert!(invoices[3]
        .line_items
        .iter()
        .any(|l| l.kind == "proration" && l.description.contains("reactivated")));
}

#[tokio::test]
async fn a_cancellation_in_the_grace_window_keeps_the_base_of_the_period_it_follows() {
    let s = Scenario::start("2025-01-01T00:00:00Z").await;
    s.subscribe("2025-01-01T00:00:00Z", "bo", json!({"plan": "basic"}))
        .await;
    s.pass("2025-02-01T01:00:00Z").await;
    s.pass("2025-03-01T01:00:00Z").await;
    // Five minutes after March ended, before the pass that closes it.
    s.subscribe("2025-04-01T00:05:00Z", "bo", json!({"status": "cancelled"}))
        .await;
    s.pass("2025-04-01T00:11:00Z").await;
    let invoices = s.invoices("bo").await;
    assert_eq!(
        invoices.last().unwrap().period.start,
        at("2025-03-01T00:00:00Z")
    );
    assert_eq!(
        invoices.last().unwrap().base_usd,
        dec!(29),
        "March was used in full"
    );
}

#[tokio::test]
async fn an_upgrade_just_after_a_period_ended_bills_the_old_plan_for_it_once() {
    let s = Scenario::start("2025-01-01T00:00:00Z").await;
    s.subscribe("2025-01-01T00:00:00Z", "cy", json!({"plan": "basic"}))
        .await;
    s.pass("2025-03-01T01:00:00Z").await;
    s.subscribe("2025-04-01T00:05:00Z", "cy", json!({"plan": "pro"}))
        .await;
    s.pass("2025-04-01T00:11:00Z").await;
    s.pass("2025-05-01T01:00:00Z").await;
    s.pass("2025-06-01T01:00:00Z").await;
    let invoices = s.invoices("cy").await;
    assert_eq!(
        bases(&invoices),
        [
            row("2025-01-01", "basic", dec!(29)),
            row("2025-02-01", "basic", dec!(29)),
            row("2025-03-01", "basic", dec!(29)),
            row("2025-04-01", "basic", dec!(29)),
            row("2025-05-01", "pro", dec!(79)),
        ]
    );
    let march = &invoices[2];
    assert_eq!(
        march.proration_usd,
        Decimal::ZERO,
        "the upgrade is not March's"
    );
    // April: basic's base plus the prorated difference from 00:05 on.
    let (total, left) = (Decimal::from(30 * 86_400), Decimal::from(30 * 86_400 - 300));
    assert_eq!(invoices[3].proration_usd, dec!(50) * left / total);
}

#[tokio::test]
async fn usage_before_an_anniversary_subscription_started_is_invoiced() {
    let s = Scenario::start("2025-01-05T00:00:00Z").await;
    s.event("2025-01-05T00:00:00Z", "di", "di-1", "2025-01-05T00:00:00Z")
        .await;
    s.subscribe(
        "2025-01-15T12:00:00Z",
        "di",
        json!({"plan": "basic", "anchor": "anniversary"}),
    )
    .await;
    // Reported late, dated before the subscription started: a period of its schedule
    // that ends when the subscription starts.
    s.event("2025-01-20T00:00:00Z", "di", "di-2", "2025-01-14T00:00:00Z")
        .await;
    s.pass("2025-02-01T01:00:00Z").await;
    s.pass("2025-02-15T13:00:00Z").await;
    let invoices = s.invoices("di").await;
    let periods: Vec<_> = invoices
        .iter()
        .map(|i| (i.period.start, i.base_usd, i.usage_usd))
        .collect();
    assert_eq!(
        periods,
        [
            (at("2024-12-15T12:00:00Z"), dec!(0), dec!(0.0008)),
            (at("2025-01-01T00:00:00Z"), dec!(0), dec!(0.0008)),
            (at("2025-01-15T12:00:00Z"), dec!(29), dec!(0)),
        ]
    );
    assert!(s.pass("2025-02-15T14:00:00Z").await.invoices_created == 0);
}

#[tokio::test]
async fn every_period_with_usage_is_invoiced_after_an_outage_without_a_subscription() {
    let s = Scenario::start("2025-01-10T00:00:00Z").await;
    for (now, id) in [
        ("2025-01-10T00:00:00Z", "ed-1"),
        ("2025-02-10T00:00:00Z", "ed-2"),
        ("2025-03-10T00:00:00Z", "ed-3"),
    ] {
        s.event(now, "ed", id, now).await;
    }
    let report = s.pass("2025-04-01T01:00:00Z").await;
    assert_eq!(report.invoices_created, 3);
    let months: Vec<_> = s
        .invoices("ed")
        .await
        .iter()
        .map(|i| i.period.start.date_naive().to_string())
        .collect();
    assert_eq!(months, ["2025-01-01", "2025-02-01", "2025-03-01"]);
}

#[tokio::test]
async fn after_an_outage_a_scheduled_downgrade_applies_from_the_next_period() {
    let s = Scenario::start("2025-01-01T00:00:00Z").await;
    s.subscribe("2025-01-01T00:00:00Z", "fe", json!({"plan": "pro"}))
        .await;
    s.subscribe("2025-01-20T00:00:00Z", "fe", json!({"plan": "basic"}))
        .await;
    s.subscribe("2025-01-01T00:00:00Z", "gil", json!({"plan": "pro"}))
        .await;
    s.subscribe("2025-01-20T00:00:00Z", "gil", json!({"auto_renew": false}))
        .await;
    let report = s.pass("2025-04-01T01:00:00Z").await;
    assert_eq!(report.downgrades_applied, 1);
    assert_eq!(
        bases(&s.invoices("fe").await),
        [
            row("2025-01-01", "pro", dec!(79)),
            row("2025-02-01", "basic", dec!(29)),
            row("2025-03-01", "basic", dec!(29)),
        ]
    );
    // A subscription that does not renew ends with its period: nothing billed after it.
    assert_eq!(
        bases(&s.invoices("gil").await),
        [row("2025-01-01", "pro", dec!(79))]
    );
    let gil = s
        .app
        .store
        .get_subscription(&s.app.tenant, &UserId::parse("gil").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(gil.status, SubscriptionStatus::Cancelled);
    let again = s.pass("2025-04-01T02:00:00Z").await;
    assert_eq!(
        (again.invoices_created, again.subscriptions_renewed),
        (0, 0)
    );
}
