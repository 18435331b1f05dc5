//! The aggregation pass over the SQLite store, with events ingested through the router at a
//! fixed clock: invoices equal to the exact sum, idempotence, concurrency, re-pricing with
//! adjustments, renewals and downgrades, and the invoice outbox under a publish outage.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeZone, Utc};
use meter_core::alerts::{AlertPublisher, OutboxMessage, PublishError};
use meter_core::domain::{PlanName, Subscription, SubscriptionStatus, UserId};
use meter_core::periods::{Anchor, BillingCycle, Period};
use meter_core::service::aggregate::{AggregateOptions, AggregateReport};
use meter_core::testing::TestClock;
use meter_tests::TestApp;
use rust_decimal::Decimal;
use serde_json::{json, Value};

fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
}

/// A publisher that refuses the first `failures` messages, then keeps what it accepts.
#[derive(Default)]
struct Recorder {
    failures: AtomicUsize,
    accepted: Mutex<Vec<OutboxMessage>>,
}

#[async_trait::async_trait]
impl AlertPublisher for Recorder {
    async fn publish(&self, m: &OutboxMessage) -> Result<(), PublishError> {
        if self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(PublishError("outage".into()));
        }
        self.accepted.lock().unwrap().push(m.clone());
        Ok(())
    }
}

/// An app whose service clock stands at `now`, with its alert port.
struct Clocked {
    app: TestApp,
    publisher: Arc<Recorder>,
}

async fn clocked(now: DateTime<Utc>, failures: usize) -> Clocked {
    let publisher = Arc::new(Recorder {
        failures: failures.into(),
        ..Recorder::default()
    });
    let app = TestApp::setup()
        .clock(&TestClock::new(now))
        .publisher(publisher.clone())
        .spawn()
        .await;
    Clocked { app, publisher }
}

impl Clocked {
    async fn ingest(&self, events: Vec<Value>) -> Value {
        let reply = self.app.usage(json!({ "events": events })).await;
        assert_eq!(reply.status, 200);
        reply.body
    }

    async fn pass(&self, at: DateTime<Utc>) -> AggregateReport {
        self.app
            .meter
            .aggregate(&AggregateOptions {
                at: Some(at),
                ..AggregateOptions::default()
            })
            .await
            .unwrap()
    }

    async fn invoices(&self, user: &str) -> Vec<meter_core::domain::Invoice> {
        self.app
            .store
            .list_invoices(&self.app.tenant, &UserId::parse(user).unwrap())
            .await
            .unwrap()
    }
}

/// `n` gemini events of `user` on days of March 2025 with varied token counts.
fn march_events(user: &str, prefix: &str, n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            json!({
                "event_id": format!("{prefix}-{i}"),
                "user_id": user,
                "provider": "gemini",
                "model": "gemini-2.5-flash",
                "timestamp": format!("2025-03-{:02}T{:02}:17:00Z", 1 + i % 19, i % 24),
                "input_tokens": 1 + i * 37,
                "output_tokens": i * 11 % 97,
            })
        })
        .collect()
}

fn sum_costs(reply: &Value) -> Decimal {
    reply["data"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["cost_usd"].as_str().unwrap().parse::<Decimal>().unwrap())
        .sum()
}

#[tokio::test]
async fn a_month_of_events_closes_into_one_invoice_equal_to_their_exact_sum() {
    let c = clocked(at(2025, 3, 20, 0), 0).await;
    let mut expected = Decimal::ZERO;
    for chunk in march_events("ann", "m", 300).chunks(100) {
        expected += sum_costs(&c.ingest(chunk.to_vec()).await);
    }
    assert!(expected > Decimal::ZERO);

    // Not yet: March ended 5 minutes ago, inside the grace period.
    let early = c
        .pass(at(2025, 4, 1, 0) + chrono::Duration::minutes(5))
        .await;
    assert_eq!(early.invoices_created, 0);

    let first = c.pass(at(2025, 4, 1, 1)).await;
    assert_eq!(first.invoices_created, 1);
    assert!(first.complete);
    let invoices = c.invoices("ann").await;
    assert_eq!(invoices.len(), 1);
    let inv = &invoices[0];
    assert_eq!(inv.period.start, at(2025, 3, 1, 0));
    assert_eq!(
        inv.usage_usd, expected,
        "usage is the exact sum of the events"
    );
    assert_eq!(inv.base_usd, Decimal::ZERO);
    assert_eq!(
        inv.total_usd,
        expected.round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
    );
    let lines: Decimal = inv.line_items.iter().map(|l| l.amount_usd).sum();
    assert_eq!(lines, expected);

    // A second pass changes nothing.
    let second = c.pass(at(2025, 4, 1, 2)).await;
    assert_eq!(second.invoices_created, 0);
    assert_eq!(c.invoices("ann").await, invoices);
}

#[tokio::test]
async fn two_concurrent_passes_create_one_invoice_per_period() {
    let c = clocked(at(2025, 3, 20, 0), 0).await;
    for user in ["bo", "cy", "di"] {
        c.ingest(march_events(user, user, 20)).await;
    }
    let (a, b, d) = tokio::join!(
        c.pass(at(2025, 4, 2, 0)),
        c.pass(at(2025, 4, 2, 0)),
        c.pass(at(2025, 4, 2, 0))
    );
    assert_eq!(
        a.invoices_created + b.invoices_created + d.invoices_created,
        3
    );
    for user in ["bo", "cy", "di"] {
        assert_eq!(c.invoices(user).await.len(), 1, "{user}");
    }
    // Each invoice was published, with type invoice.created (at least once: a pass may
    // deliver from the outbox an invoice another pass closed and is still publishing;
    // subscribers de-duplicate by id).
    let accepted = c.publisher.accepted.lock().unwrap().clone();
    let ids: std::collections::BTreeSet<_> = accepted
        .iter()
        .filter(|m| m.kind == "invoice.created")
        .map(|m| m.id.clone())
        .collect();
    assert_eq!(ids.len(), 3);
    assert!(c
        .app
        .store
        .unpublished_invoices(10)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn an_invoice_whose_publish_failed_is_delivered_once_after_recovery() {
    let c = clocked(at(2025, 3, 20, 0), 3).await;
    c.ingest(march_events("eve", "e", 5)).await;
    let first = c.pass(at(2025, 4, 2, 0)).await;
    assert_eq!((first.invoices_created, first.invoices_delivered), (1, 0));
    assert_eq!(c.app.store.unpublished_invoices(10).await.unwrap().len(), 1);
    for _ in 0..4 {
        c.pass(at(2025, 4, 2, 0)).await;
    }
    let accepted = c.publisher.accepted.lock().unwrap().clone();
    assert_eq!(accepted.len(), 1, "delivered exactly once");
    assert!(c
        .app
        .store
        .unpublished_invoices(10)
        .await
        .unwrap()
        .is_empty());
    assert!(c.invoices("eve").await[0].published);
}

#[tokio::test]
async fn unpriced_events_are_repriced_once_a_price_exists_with_an_adjustment_if_invoiced() {
    let c = clocked(at(2025, 3, 20, 0), 0).await;
    let event = |id: &str, day: u32| {
        json!({"event_id": id, "user_id": "fay", "provider": "openai", "model": "gpt-9-preview",
               "timestamp": format!("2025-03-{day:02}T10:00:00Z"), "input_tokens": 1000, "output_tokens": 200})
    };
    let reply = c.ingest(vec![event("u1", 3), event("u2", 4)]).await;
    assert_eq!(reply["data"]["events"][0]["priced"], false);

    // March is invoiced with the two events counted but not billed.
    c.pass(at(2025, 4, 1, 1)).await;
    let march = c.invoices("fay").await.remove(0);
    assert_eq!(march.usage_usd, Decimal::ZERO);
    assert_eq!(
        march.extra.get("unpriced_calls").map(String::as_str),
        Some("2")
    );
    // The billing route states it too (docs/billing.md: `extra.unpriced_calls`).
    let read = c.app.get("/api/subscription/billing/fay").await;
    assert_eq!(read.status, 200, "{}", read.body);
    assert_eq!(
        read.body["data"]["invoices"][0]["extra"]["unpriced_calls"],
        "2"
    );
    assert_eq!(
        read.body["data"]["invoices"][0]["extra"]["rounding"],
        meter_core::billing::ROUNDING
    );

    // The operator adds the price (in force since February).
    let version = json!({
        "id": "openai/gpt-9-preview@2025-02-01T00:00:00Z", "provider": "openai",
        "model": "gpt-9-preview", "effective_from": "2025-02-01T00:00:00Z",
        "prices": {"input_token": "0.000002", "output_token": "0.00001"}, "source": "test"
    });
    c.app
        .store
        .put_price_version(None, "openai/gpt-9-preview@2025-02-01T00:00:00Z", &version)
        .await
        .unwrap();
    c.app.meter.forget_catalog(None);
    let report = c.pass(at(2025, 4, 2, 0)).await;
    assert_eq!(report.repriced_events, 2);
    assert_eq!(
        c.pass(at(2025, 4, 2, 1)).await.repriced_events,
        0,
        "priced once"
    );

    // Counters moved by exactly the new cost: 2 × (1000 × 0.000002 + 200 × 0.00001) = 0.008.
    let user = UserId::parse("fay").unwrap();
    let usage = c
        .app
        .store
        .get_period_usage(&c.app.tenant, &user, &[at(2025, 3, 1, 0)])
        .await
        .unwrap()
        .remove(0);
    let openai = &usage.by_provider[&meter_core::domain::ProviderId::parse("openai").unwrap()];
    assert_eq!(
        openai.recorded.cost_usd,
        "0.008".parse::<Decimal>().unwrap()
    );
    assert_eq!(openai.unpriced_calls, 0);
    // March's invoice is not rewritten; April's carries a labelled adjustment line.
    assert_eq!(c.invoices("fay").await.last().unwrap(), &march);
    c.pass(at(2025, 5, 1, 1)).await;
    let april = c.invoices("fay").await.remove(0);
    assert_eq!(april.period.start, at(2025, 4, 1, 0));
    assert_eq!(april.adjustments_usd, "0.008".parse::<Decimal>().unwrap());
    assert_eq!(april.total_usd, "0.01".parse::<Decimal>().unwrap());
    let line = april
        .line_items
        .iter()
        .find(|l| l.kind == "adjustment")
        .unwrap();
    assert!(
        line.description.contains("2025-03-01"),
        "{}",
        line.description
    );
}

fn subscription(c: &Clocked, user: &str, plan: &str, started: DateTime<Utc>) -> Subscription {
    Subscription {
        tenant: c.app.tenant.clone(),
        user: UserId::parse(user).unwrap(),
        plan: PlanName::parse(plan).unwrap(),
        cycle: BillingCycle::Monthly,
        anchor: Anchor::Calendar,
        started_at: started,
        current_period: Period {
            start: at(2025, 3, 1, 0),
            end: at(2025, 4, 1, 0),
        },
        status: SubscriptionStatus::Active,
        auto_renew: true,
        pending_plan: None,
        prorations: Vec::new(),
        history: Vec::new(),
        version: 1,
        updated_at: started,
    }
}

#[tokio::test]
async fn renewal_bills_the_base_and_applies_a_scheduled_downgrade_at_the_period_start() {
    let c = clocked(at(2025, 3, 20, 0), 0).await;
    let mut sub = subscription(&c, "gus", "pro", at(2025, 3, 1, 0));
    sub.pending_plan = Some(PlanName::parse("basic").unwrap());
    c.app.store.put_subscription(&sub, None).await.unwrap();
    let mut ends = subscription(&c, "hal", "basic", at(2025, 3, 16, 0));
    ends.auto_renew = false;
    c.app.store.put_subscription(&ends, None).await.unwrap();

    let report = c.pass(at(2025, 4, 1, 1)).await;
    assert_eq!(report.invoices_created, 2);
    assert_eq!(
        (
            report.subscriptions_renewed,
            report.downgrades_applied,
            report.subscriptions_ended
        ),
        (1, 1, 1)
    );

    let gus = c.invoices("gus").await.remove(0);
    assert_eq!(
        (gus.plan.as_str(), gus.base_usd),
        ("pro", Decimal::from(79))
    );
    let now = c
        .app
        .store
        .get_subscription(&c.app.tenant, &UserId::parse("gus").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(now.plan.as_str(), "basic");
    assert_eq!(now.pending_plan, None);
    assert_eq!(now.current_period.start, at(2025, 4, 1, 0));
    assert_eq!(now.version, 2);

    // Started on the 16th: 16 of March's 31 days are billed.
    let hal = c.invoices("hal").await.remove(0);
    // (the share is computed once, to 28 significant digits, then applied to the price)
    assert_eq!(
        hal.base_usd,
        Decimal::from(29) * (Decimal::from(16) / Decimal::from(31))
    );
    assert_eq!(hal.total_usd, "14.97".parse::<Decimal>().unwrap());
    let hal_sub = c
        .app
        .store
        .get_subscription(&c.app.tenant, &UserId::parse("hal").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(hal_sub.status, SubscriptionStatus::Cancelled);

    // Nothing more to do on a second pass.
    let again = c.pass(at(2025, 4, 1, 2)).await;
    assert_eq!(
        (again.invoices_created, again.subscriptions_renewed),
        (0, 0)
    );
}

#[tokio::test]
async fn a_pass_out_of_time_makes_one_page_of_progress_and_the_next_one_resumes() {
    let c = clocked(at(2025, 3, 20, 0), 0).await;
    // 150 users: more than one page (100) of the billing step.
    let users: Vec<String> = (0..150).map(|i| format!("page-{i:03}")).collect();
    for chunk in users.chunks(100) {
        let events = chunk.iter().flat_map(|u| march_events(u, u, 1)).collect();
        c.ingest(events).await;
    }
    let out_of_time = c
        .app
        .meter
        .aggregate(&AggregateOptions {
            at: Some(at(2025, 4, 2, 0)),
            budget: Some(std::time::Duration::ZERO),
            ..AggregateOptions::default()
        })
        .await
        .unwrap();
    assert!(!out_of_time.complete);
    assert_eq!(
        out_of_time.invoices_created, 100,
        "one page per step, even out of time"
    );
    let next = c.pass(at(2025, 4, 2, 0)).await;
    assert!(next.complete);
    assert_eq!(next.invoices_created, 50);
}
