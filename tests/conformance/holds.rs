//! Issue 18: reservations hold on every budget counter at once, through the service's
//! check over a real store. 200 racing reservations from 20 members of one org never pass
//! the org's budget nor a member's; every hold goes back exactly once (released twice
//! concurrently, settled by an event, expired).

use std::collections::BTreeMap;
use std::sync::Arc;

use meter_core::alerts::LogPublisher;
use meter_core::budgets::{AppliesTo, CounterKey, Mode, Scope, Window};
use meter_core::domain::{BudgetId, EventId, ModelId, OrgId, PlanName, Role};
use meter_core::limits::{Limits, Metric};
use meter_core::service::budgets::BudgetInput;
use meter_core::service::check::{CheckOutcome, CheckRequest, Units};
use meter_core::service::ingest::NewEvent;
use meter_core::service::{Caller, Meter};
use meter_core::store::Store;
use meter_core::testing::{Keys, TestClock};
use meter_core::usage::{PeriodUsage, Tally, UsageCounts};
use rust_decimal::Decimal;

use crate::fixtures::*;

const NOW: &str = "2025-03-10T12:00:00Z";

fn acme() -> OrgId {
    OrgId::parse("acme").unwrap()
}

fn org() -> Scope {
    Scope::Org { org_id: acme() }
}

fn day_start() -> chrono::DateTime<chrono::Utc> {
    at(2025, 3, 10, 0)
}

fn pooled() -> CounterKey {
    CounterKey::Scope {
        scope: org(),
        window: Window::Day,
        window_start: day_start(),
    }
}

fn member(name: &str) -> CounterKey {
    CounterKey::Member {
        scope: org(),
        user: user(name),
        window: Window::Day,
        window_start: day_start(),
    }
}

/// Recorded and held usage of a counter, summed over providers.
fn totals(u: &PeriodUsage) -> (Tally, Tally) {
    let sum = |f: &dyn Fn(&meter_core::usage::ProviderUsage) -> &Tally| {
        u.by_provider.values().fold(Tally::default(), |a, p| Tally {
            calls: a.calls + f(p).calls,
            tokens: a.tokens + f(p).tokens,
            cost_usd: a.cost_usd + f(p).cost_usd,
        })
    };
    (sum(&|p| &p.recorded), sum(&|p| &p.held))
}

struct Setup {
    store: Arc<dyn Store>,
    meter: Arc<Meter>,
    admin: Caller,
    service: Caller,
    clock: TestClock,
}

/// The bootstrapped tenant over `store` with unlimited Free users (so that only the
/// budgets bind), and a service at [`NOW`].
async fn setup(store: Arc<dyn Store>) -> Setup {
    let keys = Keys::generate();
    meter_core::testing::bootstrap(store.as_ref(), &keys).await;
    let free = PlanName::parse("free").unwrap();
    let mut plan = store
        .get_plan(&keys.tenant, &free)
        .await
        .unwrap()
        .expect("free plan");
    plan.limits = Limits::default();
    store.put_plan(&keys.tenant, &plan).await.unwrap();
    let clock = TestClock::at(NOW);
    let meter = Arc::new(Meter::with_clock(
        store.clone(),
        Arc::new(LogPublisher),
        clock.clock(),
    ));
    let caller = |role| Caller {
        tenant: keys.tenant.clone(),
        role,
        key_id: "key_test".into(),
    };
    Setup {
        store,
        meter,
        admin: caller(Role::Admin),
        service: caller(Role::Service),
        clock,
    }
}

impl Setup {
    async fn budget(&self, id: &str, applies_to: AppliesTo, metric: &str, limit: &str) {
        self.budget_on(id, org(), applies_to, Window::Day, metric, limit)
            .await;
    }

    async fn budget_on(
        &self,
        id: &str,
        scope: Scope,
        applies_to: AppliesTo,
        window: Window,
        metric: &str,
        limit: &str,
    ) {
        let limits = Limits(BTreeMap::from([(
            Metric::parse(metric).unwrap(),
            dec(limit),
        )]));
        self.meter
            .put_budget(
                &self.admin,
                &BudgetId::parse(id).unwrap(),
                BudgetInput {
                    scope,
                    applies_to,
                    limits,
                    window,
                    mode: Mode::Hard,
                    alert_thresholds: vec![80, 90, 100],
                },
            )
            .await
            .unwrap();
    }

    fn request(&self, name: &str, output_tokens: u64) -> CheckRequest {
        CheckRequest {
            user: user(name),
            org_id: Some(acme()),
            team_id: None,
            provider: Some(provider("gemini")),
            model: Some(ModelId::parse("gemini-2.5-flash").unwrap()),
            estimated_input_tokens: 0,
            estimated_output_tokens: output_tokens,
            units: Units::default(),
            reserve: true,
            reservation_ttl_seconds: 300,
        }
    }

    /// 200 racing reservations of 20 members (five try 25 times, fifteen 5 times):
    /// the reservation ids admitted, by member.
    async fn race(&self, output_tokens: u64) -> BTreeMap<String, Vec<String>> {
        let mut tasks = Vec::new();
        for m in 0..20 {
            let tries = if m < 5 { 25 } else { 5 };
            for _ in 0..tries {
                let (meter, caller, name) =
                    (self.meter.clone(), self.service.clone(), format!("m{m}"));
                let req = self.request(&name, output_tokens);
                tasks.push(tokio::spawn(async move {
                    (name, meter.check(&caller, req).await)
                }));
            }
        }
        assert_eq!(tasks.len(), 200);
        let mut admitted: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for task in tasks {
            let (name, outcome) = task.await.unwrap();
            match outcome.expect("a check answers (no store error)") {
                CheckOutcome::Allowed(a) => {
                    let hold = a.reservation.expect("a reservation");
                    admitted.entry(name).or_default().push(hold.reservation_id);
                }
                CheckOutcome::Denied(d) => {
                    assert!(d.limited_by.is_some(), "a budget denies: {d:?}");
                }
            }
        }
        admitted
    }

    async fn counters(&self, keys: &[CounterKey]) -> Vec<(Tally, Tally)> {
        self.store
            .get_budget_counters(&self.service.tenant, keys)
            .await
            .unwrap()
            .iter()
            .map(totals)
            .collect()
    }
}

fn count(admitted: &BTreeMap<String, Vec<String>>) -> usize {
    admitted.values().map(Vec::len).sum()
}

pub async fn two_hundred_racing_reservations_hold_exactly_the_org_calls_budget_and_no_member_over_ten(
    store: Arc<dyn Store>,
) {
    let s = setup(store).await;
    s.budget("acme-calls", AppliesTo::Scope, "calls:*", "100")
        .await;
    s.budget("acme-member-calls", AppliesTo::EachMember, "calls:*", "10")
        .await;

    let admitted = s.race(10).await;
    // At most 10 of each member: 5 × 10 + 15 × 5 = 125 ≥ 100, so the org's budget binds.
    assert_eq!(count(&admitted), 100, "{admitted:?}");
    assert!(admitted.values().all(|ids| ids.len() <= 10), "{admitted:?}");

    // Every admitted call is held on the org's counter and on its member's (not counted).
    let read = s.counters(&[pooled(), member("m0"), member("m19")]).await;
    assert_eq!(read[0].0, Tally::default());
    assert_eq!(read[0].1.calls, 100);
    for (i, name) in [(1, "m0"), (2, "m19")] {
        let held = admitted.get(name).map_or(0, Vec::len) as u64;
        assert_eq!(read[i].1.calls, held, "{name}");
    }

    // The holds of the member with the most (at least 5: 100 over 20 members): the
    // first half settled by events (each event sent twice, concurrently), the rest
    // released twice, concurrently.
    let (top, ids) = admitted
        .iter()
        .max_by_key(|(_, ids)| ids.len())
        .map(|(n, ids)| (n.clone(), ids.clone()))
        .unwrap();
    assert!(ids.len() >= 5, "{admitted:?}");
    let (settled, released) = ids.split_at(ids.len() / 2);
    let mut tasks = Vec::new();
    for (i, rid) in settled.iter().enumerate() {
        for _ in 0..2 {
            let (meter, caller) = (s.meter.clone(), s.service.clone());
            let e = NewEvent {
                event_id: EventId::parse(format!("settle-{i}")).unwrap(),
                user: user(&top),
                provider: Some(provider("gemini")),
                model: Some(ModelId::parse("gemini-2.5-flash").unwrap()),
                timestamp: None,
                counts: UsageCounts {
                    output_tokens: 4,
                    ..UsageCounts::default()
                },
                estimated: false,
                endpoint: None,
                status_code: None,
                latency_ms: None,
                reservation_id: Some(rid.clone()),
                metadata: None,
                org_id: Some(acme()),
                team_id: None,
            };
            tasks.push(tokio::spawn(async move {
                meter.ingest(&caller, vec![e]).await.map(|_| ())
            }));
        }
    }
    for rid in released {
        for _ in 0..2 {
            let (meter, caller, rid) = (s.meter.clone(), s.service.clone(), rid.clone());
            tasks.push(tokio::spawn(async move {
                meter.release(&caller, &rid).await.map(|_| ())
            }));
        }
    }
    for task in tasks {
        task.await.unwrap().expect("settle or release");
    }
    let n = settled.len() as u64;
    let read = s.counters(&[pooled(), member(&top)]).await;
    // The settled calls counted (4 tokens each); the other holds of the org left, none of
    // the member's.
    assert_eq!((read[0].0.calls, read[0].0.tokens), (n, 4 * n));
    assert_eq!(read[0].1.calls, 100 - ids.len() as u64);
    assert_eq!((read[1].0.calls, read[1].0.tokens), (n, 4 * n));
    assert_eq!(read[1].1, Tally::default());

    // Everything else expires; twice changes nothing more.
    let later = s.clock.now() + chrono::Duration::seconds(301);
    let store = &s.store;
    let expired = store.expire_reservations(later, 1000).await.unwrap();
    assert_eq!(expired, 100 - ids.len());
    assert_eq!(store.expire_reservations(later, 1000).await.unwrap(), 0);
    let read = s.counters(&[pooled(), member("m19")]).await;
    assert_eq!(read[0].1, Tally::default());
    assert_eq!(read[0].0.calls, n);
    assert_eq!(read[1], (Tally::default(), Tally::default()));
}

pub async fn two_hundred_racing_reservations_never_hold_a_cent_over_the_daily_cost_budget(
    store: Arc<dyn Store>,
) {
    let s = setup(store).await;
    s.budget("acme-daily", AppliesTo::Scope, "cost_usd", "1.00")
        .await;
    s.budget(
        "acme-member-daily",
        AppliesTo::EachMember,
        "cost_usd",
        "0.10",
    )
    .await;

    // 12,000 output tokens of gemini-2.5-flash ($2.50 per 1M) = $0.03 a call.
    let admitted = s.race(12_000).await;
    // $1.00 / $0.03 = 33 calls; each member at most 3 ($0.09 ≤ $0.10).
    assert_eq!(count(&admitted), 33, "{admitted:?}");
    assert!(admitted.values().all(|ids| ids.len() <= 3), "{admitted:?}");
    let read = s.counters(&[pooled()]).await;
    assert_eq!(read[0].1.cost_usd, dec("0.99"));
    assert_eq!(read[0].1.calls, 33);

    // Released, every cent goes back.
    for ids in admitted.values() {
        for rid in ids {
            s.meter.release(&s.service, rid).await.unwrap();
        }
    }
    let read = s.counters(&[pooled()]).await;
    assert_eq!(read[0].1, Tally::default());
    assert_eq!(read[0].0.cost_usd, Decimal::ZERO);
}

pub async fn racing_reservations_never_pass_a_period_budget_on_the_users_own_scope(
    store: Arc<dyn Store>,
) {
    let s = setup(store.clone()).await;
    // A `period` budget on the user's own scope counts against the plan's counter: the
    // reservation's plan hold must pass its guard too.
    s.budget_on(
        "ann-period",
        Scope::User {
            user_id: user("ann"),
        },
        AppliesTo::Scope,
        Window::Period,
        "calls:*",
        "7",
    )
    .await;
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let (meter, caller) = (s.meter.clone(), s.service.clone());
            let req = CheckRequest {
                org_id: None,
                ..s.request("ann", 10)
            };
            tokio::spawn(async move { meter.check(&caller, req).await })
        })
        .collect();
    let mut allowed = 0;
    for task in tasks {
        match task.await.unwrap().expect("a check answers") {
            CheckOutcome::Allowed(_) => allowed += 1,
            CheckOutcome::Denied(d) => assert!(d.limited_by.is_some(), "{d:?}"),
        }
    }
    assert_eq!(allowed, 7);
    let usage = store
        .get_period_usage(&s.service.tenant, &user("ann"), &[at(2025, 3, 1, 0)])
        .await
        .unwrap()
        .remove(0);
    assert_eq!(totals(&usage).1.calls, 7);
}

/// Issue 18 with issue 19: a prepaid user's reservation over an org budget holds the plan
/// counters, the budget counter and the wallet's credit in one write. 20 racing
/// reservations of a member with credit enough for all of them against an org budget of
/// 10 calls hold exactly 10 calls and exactly their estimates of credit; 10 of a member
/// without credit are all denied (`credits_usd`) and hold nothing; releasing every hold
/// twice, concurrently, gives both back exactly once.
pub async fn racing_prepaid_reservations_hold_the_budget_and_the_credit_in_one_write(
    store: Arc<dyn Store>,
) {
    use meter_core::credits::{GrantKind, GrantRequest, Subscriber};
    use meter_core::domain::GrantId;
    use meter_core::limits::Payment;

    let s = setup(store).await;
    let t = s.service.tenant.clone();
    let free = PlanName::parse("free").unwrap();
    let mut plan = s.store.get_plan(&t, &free).await.unwrap().unwrap();
    plan.payment = Payment::Prepaid;
    s.store.put_plan(&t, &plan).await.unwrap();
    s.budget("acme-calls", AppliesTo::Scope, "calls:*", "10")
        .await;
    let rich = user("rich");
    let grant = GrantRequest::new(dec("100"), GrantKind::Purchase)
        .into_grant(GrantId::parse("g1").unwrap(), at(2025, 3, 1, 0))
        .unwrap();
    s.store
        .insert_grant(&t, &Subscriber::User(rich.clone()), &grant)
        .await
        .unwrap();

    let mut tasks = Vec::new();
    for (name, tries) in [("rich", 20), ("poor", 10)] {
        for _ in 0..tries {
            let (meter, caller) = (s.meter.clone(), s.service.clone());
            let req = s.request(name, 1_000);
            tasks.push(tokio::spawn(async move {
                (name, meter.check(&caller, req).await)
            }));
        }
    }
    let mut held = Vec::new();
    let mut estimates = Decimal::ZERO;
    for task in tasks {
        let (name, outcome) = task.await.unwrap();
        match outcome.expect("a check answers (no store error)") {
            CheckOutcome::Allowed(a) => {
                assert_eq!(name, "rich", "a member without credit is never admitted");
                estimates += a.estimated_cost_usd.expect("a priced estimate");
                held.push(a.reservation.expect("a reservation").reservation_id);
            }
            CheckOutcome::Denied(d) => {
                if name == "poor" {
                    assert!(d.credit.is_some(), "a denial for want of credit: {d:?}");
                } else {
                    assert!(d.limited_by.is_some(), "the org budget denies: {d:?}");
                }
            }
        }
    }
    assert_eq!(held.len(), 10, "the org budget's 10 calls, no more");
    assert!(estimates > Decimal::ZERO);
    let wallet = |u: &str| Subscriber::User(user(u));
    let credit = s.store.get_credit_state(&t, &wallet("rich")).await.unwrap();
    assert_eq!(
        credit.held_usd, estimates,
        "the wallet holds exactly the admitted estimates"
    );
    let poor = s.store.get_credit_state(&t, &wallet("poor")).await.unwrap();
    assert_eq!(poor.held_usd, Decimal::ZERO);
    let (recorded, on_hold) = s.counters(&[pooled()]).await.remove(0);
    assert_eq!((recorded.calls, on_hold.calls), (0, 10));

    let mut releases = Vec::new();
    for rid in held.iter().chain(held.iter()) {
        let (meter, caller, rid) = (s.meter.clone(), s.service.clone(), rid.clone());
        releases.push(tokio::spawn(async move {
            meter.release(&caller, &rid).await.map(|_| ())
        }));
    }
    for r in releases {
        r.await.unwrap().expect("a release answers");
    }
    let credit = s.store.get_credit_state(&t, &wallet("rich")).await.unwrap();
    assert_eq!(
        credit.held_usd,
        Decimal::ZERO,
        "every credit hold back, once"
    );
    let (_, on_hold) = s.counters(&[pooled()]).await.remove(0);
    assert_eq!(on_hold, Tally::default(), "every budget hold back, once");
}
