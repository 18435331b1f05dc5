//! Late events of prepaid users (docs/credits.md, "Late events on prepaid plans"): an
//! event recorded after its period was invoiced draws from the wallet and goes to the
//! pending adjustment; the invoice that bills the adjustment credits what it drew and
//! bills only its shortfall, taking that off the overdraft, so the event is paid once.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use meter_core::alerts::LogPublisher;
use meter_core::credits::{GrantKind, GrantRequest, Subscriber};
use meter_core::domain::{GrantId, Invoice, PlanName, TenantId, UsageEvent, UserId};
use meter_core::limits::{Limits, Payment};
use meter_core::service::aggregate::AggregateOptions;
use meter_core::service::Meter;
use meter_core::store::Store;
use meter_core::testing::{Keys, TestClock};
use rust_decimal::Decimal;

use crate::fixtures::*;

struct Setup {
    store: Arc<dyn Store>,
    meter: Arc<Meter>,
    tenant: TenantId,
}

/// A bootstrapped tenant whose Free plan is prepaid and unlimited.
async fn setup(store: Arc<dyn Store>) -> Setup {
    let keys = Keys::generate();
    meter_core::testing::bootstrap(store.as_ref(), &keys).await;
    let free = PlanName::parse("free").unwrap();
    let mut plan = store.get_plan(&keys.tenant, &free).await.unwrap().unwrap();
    plan.limits = Limits::default();
    plan.payment = Payment::Prepaid;
    store.put_plan(&keys.tenant, &plan).await.unwrap();
    let clock = TestClock::new(at(2025, 3, 1, 0));
    let meter = Arc::new(Meter::with_clock(
        store.clone(),
        Arc::new(LogPublisher),
        clock.clock(),
    ));
    Setup {
        store,
        meter,
        tenant: keys.tenant,
    }
}

impl Setup {
    async fn grant(&self, u: &UserId, id: &str, amount: &str) {
        let g = GrantRequest::new(dec(amount), GrantKind::Purchase)
            .into_grant(GrantId::parse(id).unwrap(), at(2025, 2, 1, 0))
            .unwrap();
        self.store
            .insert_grant(&self.tenant, &Subscriber::User(u.clone()), &g)
            .await
            .unwrap();
    }

    /// A March event of `cost` recorded at `recorded`, drawing as a prepaid ingest does.
    fn march_event(&self, u: &UserId, id: &str, cost: &str, recorded: DateTime<Utc>) -> UsageEvent {
        let mut e = event(&self.tenant, u, id, 10, cost);
        e.timestamp = at(2025, 3, 20, 12);
        e.recorded_at = recorded;
        e
    }

    async fn record(&self, e: UsageEvent) {
        self.store.record_events_drawing(&[e], &[]).await.unwrap();
    }

    /// One aggregation pass at 01:00 on the first of `month` (2025).
    async fn aggregate(&self, month: u32) {
        let (y, m) = if month > 12 {
            (2026, month - 12)
        } else {
            (2025, month)
        };
        let opts = AggregateOptions {
            at: Some(at(y, m, 1, 1)),
            ..Default::default()
        };
        self.meter.aggregate(&opts).await.unwrap();
    }

    async fn invoices(&self, u: &UserId) -> Vec<Invoice> {
        let mut all = self.store.list_invoices(&self.tenant, u).await.unwrap();
        all.sort_by_key(|i| i.period.start);
        all
    }

    async fn overdrawn(&self, u: &UserId) -> Decimal {
        self.store
            .get_wallet(&self.tenant, &Subscriber::User(u.clone()))
            .await
            .unwrap()
            .overdrawn_usd
    }

    async fn remaining(&self, u: &UserId) -> Decimal {
        self.store
            .get_wallet(&self.tenant, &Subscriber::User(u.clone()))
            .await
            .unwrap()
            .grants
            .iter()
            .map(|g| g.remaining_usd)
            .sum()
    }
}

fn credited(i: &Invoice) -> Decimal {
    -i.line_items
        .iter()
        .filter(|l| l.kind == "credits_applied")
        .map(|l| l.amount_usd)
        .sum::<Decimal>()
}

/// March is invoiced (its event drawn from the $5 grant and credited); a March event
/// recorded in April draws the $3.75 left and overdraws $2.25; April's invoice bills it
/// as an adjustment, credits the $3.75 it drew and bills the $2.25 shortfall, which
/// leaves the overdraft. Another pass changes nothing.
pub async fn a_prepaid_late_event_is_paid_once(store: Arc<dyn Store>) {
    let s = setup(store).await;
    let u = user("late");
    s.grant(&u, "g1", "5").await;
    s.record(s.march_event(&u, "m-1", "1.25", at(2025, 3, 20, 12)))
        .await;
    s.aggregate(4).await;
    let march = s.invoices(&u).await;
    assert_eq!(march.len(), 1);
    assert_eq!(
        (credited(&march[0]), march[0].total_usd),
        (dec("1.25"), dec("0"))
    );

    // Late: recorded on April 2 for March.
    s.record(s.march_event(&u, "m-late", "6", at(2025, 4, 2, 9)))
        .await;
    assert_eq!(s.remaining(&u).await, dec("0"));
    assert_eq!(s.overdrawn(&u).await, dec("2.25"));

    s.aggregate(5).await;
    let all = s.invoices(&u).await;
    assert_eq!(all.len(), 2, "{all:#?}");
    let april = &all[1];
    assert_eq!(april.period.start, at(2025, 4, 1, 0));
    assert_eq!(april.adjustments_usd, dec("6"));
    assert_eq!(credited(april), dec("3.75"), "{april:#?}");
    assert_eq!(april.total_usd, dec("2.25"));
    assert_eq!(s.overdrawn(&u).await, dec("0"));

    // Paid once: $5 of credit and $2.25 in cash for $7.25 of usage.
    let cash: Decimal = all.iter().map(|i| i.total_usd).sum();
    let credit: Decimal = all.iter().map(credited).sum();
    assert_eq!((cash, credit), (dec("2.25"), dec("5")));

    // Again: nothing changes.
    s.aggregate(5).await;
    s.aggregate(6).await;
    assert_eq!(s.invoices(&u).await, all);
    assert_eq!(s.overdrawn(&u).await, dec("0"));
}

/// Forty late March events of $0.25 race two passes closing April (and the pass that
/// closes May afterwards bills what landed after April's close): every late event's cost
/// is paid exactly once — $3.75 from the grant, credited on the invoice that bills its
/// adjustment, and the $6.25 shortfall in cash, the overdraft settled to zero.
pub async fn late_prepaid_events_racing_the_next_close_are_paid_exactly_once(
    store: Arc<dyn Store>,
) {
    let s = Arc::new(setup(store).await);
    let u = user("racer");
    s.grant(&u, "g1", "5").await;
    s.record(s.march_event(&u, "m-1", "1.25", at(2025, 3, 20, 12)))
        .await;
    s.aggregate(4).await;

    let mut tasks = Vec::new();
    for k in 0..40 {
        let (r, u) = (s.clone(), u.clone());
        tasks.push(tokio::spawn(async move {
            let e = r.march_event(&u, &format!("late-{k}"), "0.25", at(2025, 4, 2, 9));
            r.record(e).await;
        }));
        if k % 10 == 5 {
            let p = s.clone();
            tasks.push(tokio::spawn(async move { p.aggregate(5).await }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    s.aggregate(5).await;
    s.aggregate(6).await;
    s.aggregate(6).await;

    let all = s.invoices(&u).await;
    let later: Vec<&Invoice> = all
        .iter()
        .filter(|i| i.period.start >= at(2025, 4, 1, 0))
        .collect();
    assert!(!later.is_empty());
    let adjustments: Decimal = later.iter().map(|i| i.adjustments_usd).sum();
    let credit: Decimal = later.iter().map(|i| credited(i)).sum();
    let cash: Decimal = later.iter().map(|i| i.total_usd).sum();
    assert_eq!(adjustments, dec("10"), "{later:#?}");
    assert_eq!((credit, cash), (dec("3.75"), dec("6.25")), "{later:#?}");
    assert_eq!(s.remaining(&u).await, dec("0"));
    assert_eq!(s.overdrawn(&u).await, dec("0"));
}

/// An unpriced March event priced after March was invoiced (eight racing pricings, two
/// racing passes closing April) draws once, like a late event: its $5 is billed once as an
/// adjustment, the $3.75 it drew credited on that invoice and the $1.25 shortfall billed
/// and taken off the overdraft.
pub async fn a_prepaid_event_repriced_after_its_period_was_invoiced_is_paid_once(
    store: Arc<dyn Store>,
) {
    let s = Arc::new(setup(store).await);
    let u = user("repriced");
    s.grant(&u, "g1", "5").await;
    s.record(s.march_event(&u, "m-1", "1.25", at(2025, 3, 20, 12)))
        .await;
    let mut unpriced = s.march_event(&u, "m-unpriced", "0", at(2025, 3, 21, 12));
    unpriced.model = Some(meter_core::domain::ModelId::parse("no-price-model").unwrap());
    unpriced.cost_usd = None;
    unpriced.price_version = None;
    let id = unpriced.event_id.clone();
    s.record(unpriced).await;
    s.aggregate(4).await;
    let march = s.invoices(&u).await;
    assert_eq!(march.len(), 1);
    assert_eq!(march[0].total_usd, dec("0"));

    let mut tasks = Vec::new();
    let priced = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for k in 0..8 {
        let (r, u, id, priced) = (s.clone(), u.clone(), id.clone(), priced.clone());
        tasks.push(tokio::spawn(async move {
            let w = Subscriber::User(u);
            if r.store
                .price_event_paying(&r.tenant, &id, dec("5"), "late@v1", &w)
                .await
                .unwrap()
            {
                priced.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }));
        if k % 4 == 1 {
            let p = s.clone();
            tasks.push(tokio::spawn(async move { p.aggregate(5).await }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(priced.load(std::sync::atomic::Ordering::SeqCst), 1);
    s.aggregate(5).await;
    s.aggregate(6).await;

    let all = s.invoices(&u).await;
    let later: Vec<&Invoice> = all
        .iter()
        .filter(|i| i.period.start >= at(2025, 4, 1, 0))
        .collect();
    let adjustments: Decimal = later.iter().map(|i| i.adjustments_usd).sum();
    let credit: Decimal = later.iter().map(|i| credited(i)).sum();
    let cash: Decimal = later.iter().map(|i| i.total_usd).sum();
    assert_eq!(adjustments, dec("5"), "{later:#?}");
    assert_eq!((credit, cash), (dec("3.75"), dec("1.25")), "{later:#?}");
    assert_eq!(s.remaining(&u).await, dec("0"));
    assert_eq!(s.overdrawn(&u).await, dec("0"));
}

/// A late event that drew a grant dry, the grant then expired and pruned before the next
/// close (the wallet has no grant and no overdraft left): the invoice that bills its
/// adjustment still credits what it drew.
pub async fn a_late_draw_is_credited_after_its_grant_was_pruned(store: Arc<dyn Store>) {
    let s = setup(store).await;
    let u = user("pruned");
    let g = GrantRequest::new(dec("5"), GrantKind::Purchase)
        .into_grant(GrantId::parse("g1").unwrap(), at(2025, 2, 1, 0))
        .unwrap();
    let mut g = g;
    g.expires_at = Some(at(2025, 4, 5, 0));
    s.store
        .insert_grant(&s.tenant, &Subscriber::User(u.clone()), &g)
        .await
        .unwrap();
    s.record(s.march_event(&u, "m-1", "1.25", at(2025, 3, 20, 12)))
        .await;
    s.aggregate(4).await;
    // Late, drawing what is left: $3.75 of $3.75.
    s.record(s.march_event(&u, "m-late", "3.75", at(2025, 4, 2, 9)))
        .await;
    for day in [6, 13, 20] {
        s.meter
            .aggregate(&AggregateOptions {
                at: Some(at(2025, 4, day, 1)),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let w = s
        .store
        .get_wallet(&s.tenant, &Subscriber::User(u.clone()))
        .await
        .unwrap();
    assert!(w.grants.is_empty(), "{w:?}");
    assert_eq!(w.overdrawn_usd, dec("0"));

    s.aggregate(5).await;
    let all = s.invoices(&u).await;
    assert_eq!(all.len(), 2, "{all:#?}");
    assert_eq!(all[1].adjustments_usd, dec("3.75"));
    assert_eq!(
        (credited(&all[1]), all[1].total_usd),
        (dec("3.75"), dec("0")),
        "{all:#?}"
    );
}
