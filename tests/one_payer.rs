//! Issue 18: one payer per call (docs/billing.md, "One payer per call"). A call naming an
//! org with an active subscription is billed on one invoice: the member's own when the
//! member has a subscription of their own, else the org's; a call naming no org on the
//! user's. Late calls are adjustments of their payer only, a call recorded unpriced is
//! billed to the payer its recording chose once it is priced, and the invoices of a month
//! add up to the cost of its calls, to the decimal. One story through the router and the
//! aggregation, run on SQLite (`tests/api`) and on DynamoDB (`tests/emulator`).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::{json, Value};

use meter_core::domain::{Invoice, OrgId, UserId};
use meter_core::store::Store;
use meter_core::testing::TestClock;

use crate::org_repricing::add_price;
use crate::TestApp;

const P: &str = "/api/subscription";
/// What one call of the story costs once priced: 1,000 input tokens at $0.000002 and 200
/// output tokens at $0.00001.
const CALL: Decimal = Decimal::from_parts(4, 0, 0, false, 3);

fn call(id: &str, user: &str, org: Option<&str>, model: &str, at: &str) -> Value {
    let mut v = json!({"event_id": id, "user_id": user, "provider": "openai", "model": model,
                       "timestamp": at, "input_tokens": 1000, "output_tokens": 200});
    if let Some(org) = org {
        v["org_id"] = json!(org);
    }
    v
}

/// The story's app on `store` (`None`: a fresh SQLite store) at 2026-03-10T12:00Z, with a
/// price for `gpt-9` and acme on Pro; with `bob_subscribes`, bob on Pro of his own.
async fn story(store: Option<Arc<dyn Store>>, bob_subscribes: bool) -> (TestApp, TestClock) {
    let clock = TestClock::at("2026-03-10T12:00:00Z");
    let mut setup = TestApp::setup().clock(&clock);
    if let Some(store) = store {
        setup = setup.store(store);
    }
    let app = setup.spawn().await;
    add_price(&app, "gpt-9").await;
    let mut subscribers = vec![(format!("{P}/org/acme/subscription"), "acme")];
    if bob_subscribes {
        subscribers.push((format!("{P}/user/bob/subscription"), "bob"));
    }
    for (path, who) in subscribers {
        app.put(&path, json!({"plan": "pro"})).await.assert_ok(who);
    }
    (app, clock)
}

async fn pass(app: &TestApp, clock: &TestClock, at: &str) {
    let at: DateTime<Utc> = at.parse().unwrap();
    clock.set(at);
    app.aggregate_at(at).await;
}

/// Every invoice of the story's subscribers (ann, bob, cid, acme), by subscriber, oldest
/// first.
async fn invoices(app: &TestApp) -> Vec<(String, Vec<Invoice>)> {
    let mut out = Vec::new();
    for u in ["ann", "bob", "cid"] {
        let mut list = app
            .store
            .list_invoices(&app.tenant, &UserId::parse(u).unwrap())
            .await
            .unwrap();
        list.sort_by_key(|i| i.period.start);
        out.push((u.to_owned(), list));
    }
    let mut org = app
        .store
        .list_org_invoices(&app.tenant, &OrgId::parse("acme").unwrap())
        .await
        .unwrap();
    org.sort_by_key(|i| i.period.start);
    out.push(("acme".to_owned(), org));
    out
}

/// (usage, adjustments) of `who`'s invoice of the period starting on `start`.
fn billed(all: &[(String, Vec<Invoice>)], who: &str, start: &str) -> (Decimal, Decimal) {
    let start: DateTime<Utc> = start.parse().unwrap();
    let list = &all.iter().find(|(w, _)| w == who).unwrap().1;
    let inv = list
        .iter()
        .find(|i| i.period.start == start)
        .unwrap_or_else(|| panic!("no invoice of {who} for {start}: {list:?}"));
    (inv.usage_usd, inv.adjustments_usd)
}

/// The usage and adjustments of every invoice.
fn total(all: &[(String, Vec<Invoice>)]) -> Decimal {
    all.iter()
        .flat_map(|(_, l)| l)
        .map(|i| i.usage_usd + i.adjustments_usd)
        .sum()
}

/// The story, on `store` (`None`: a fresh SQLite store).
pub async fn every_call_is_billed_once_by_its_payer(store: Option<Arc<dyn Store>>) {
    let (app, clock) = story(store, true).await;
    // acme is on Pro; bob has Pro of his own; ann and cid have no subscription.

    // March, in concurrent batches, one of them delivered twice: ann calls 3 times within
    // acme (acme pays) and once on her own; bob twice within acme (bob pays) and once on
    // his own, and once more unpriced; cid once within acme, unpriced (acme pays once it
    // is priced).
    let m = "2026-03-10T12:00:00Z";
    let batches = [
        vec![
            call("a1", "ann", Some("acme"), "gpt-9", m),
            call("a2", "ann", Some("acme"), "gpt-9", m),
        ],
        vec![
            call("a3", "ann", Some("acme"), "gpt-9", m),
            call("a4", "ann", None, "gpt-9", m),
        ],
        vec![
            call("b1", "bob", Some("acme"), "gpt-9", m),
            call("b2", "bob", Some("acme"), "gpt-9", m),
            call("b3", "bob", None, "gpt-9", m),
        ],
        vec![
            call("c1", "cid", Some("acme"), "gpt-9-mini", m),
            call("b5", "bob", Some("acme"), "gpt-9-mini", m),
        ],
        vec![
            call("a1", "ann", Some("acme"), "gpt-9", m),
            call("b1", "bob", Some("acme"), "gpt-9", m),
        ],
    ];
    let send = |i: usize| app.usage(json!({"events": batches[i].clone()}));
    let (r0, r1, r2, r3, r4) = tokio::join!(send(0), send(1), send(2), send(3), send(4));
    for r in [r0, r1, r2, r3, r4] {
        r.assert_ok("a batch of March");
    }
    // The org's plan still counts every call naming it, whoever pays.
    let r = app.get(&format!("{P}/org/acme/usage")).await;
    r.assert_ok("acme's usage");
    assert_eq!(
        r.body["data"]["total_calls"].as_u64(),
        Some(7),
        "{}",
        r.body
    );

    // cid subscribes before c1 is priced: c1 stays acme's to pay (its payer is kept).
    app.put(
        &format!("{P}/user/cid/subscription"),
        json!({"plan": "pro"}),
    )
    .await
    .assert_ok("cid subscribes");

    // April: March is invoiced. Each call is on one invoice.
    pass(&app, &clock, "2026-04-01T00:20:00Z").await;
    let all = invoices(&app).await;
    let march = "2026-03-01T00:00:00Z";
    assert_eq!(billed(&all, "ann", march), (CALL, Decimal::ZERO), "{all:?}");
    assert_eq!(
        billed(&all, "bob", march),
        (CALL * Decimal::from(3), Decimal::ZERO)
    );
    assert_eq!(
        billed(&all, "acme", march),
        (CALL * Decimal::from(3), Decimal::ZERO)
    );
    // cid's only call is unpriced and acme's: cid's March closes with nothing to bill.
    assert!(
        all[2].1.iter().all(|i| i.usage_usd.is_zero()),
        "{:?}",
        all[2].1
    );
    assert_eq!(total(&all), CALL * Decimal::from(7), "{all:?}");

    // Late March calls arrive in April, and c1 is priced: each an adjustment of its
    // payer only, whatever happened to subscriptions in between.
    let late = [
        call("a5", "ann", Some("acme"), "gpt-9", "2026-03-31T23:00:00Z"),
        call("b4", "bob", Some("acme"), "gpt-9", "2026-03-31T23:00:00Z"),
    ];
    clock.set("2026-04-02T00:00:00Z".parse().unwrap());
    let (r1, r2) = tokio::join!(
        app.usage(json!({"events": late.clone()})),
        app.usage(json!({"events": late.clone()}))
    );
    r1.assert_ok("late calls");
    r2.assert_ok("late calls again");
    add_price(&app, "gpt-9-mini").await;
    pass(&app, &clock, "2026-04-02T00:10:00Z").await;
    pass(&app, &clock, "2026-05-01T00:20:00Z").await;
    let all = invoices(&app).await;
    let april = "2026-04-01T00:00:00Z";
    assert_eq!(
        billed(&all, "acme", april),
        (Decimal::ZERO, CALL * Decimal::from(2)),
        "a5 and c1: {all:?}"
    );
    assert_eq!(
        billed(&all, "bob", april),
        (Decimal::ZERO, CALL * Decimal::from(2)),
        "b4 and b5"
    );
    for (who, list) in &all[..1] {
        assert!(
            list.iter().all(|i| i.adjustments_usd.is_zero()),
            "{who}: {list:?}"
        );
    }
    assert!(all[2].1.iter().all(|i| i.adjustments_usd.is_zero()), "cid");
    // Eleven distinct calls, each billed once.
    assert_eq!(total(&all), CALL * Decimal::from(11), "{all:?}");
}

/// What `who`'s invoices bill in all (usage and adjustments).
fn billed_to(all: &[(String, Vec<Invoice>)], who: &str) -> Decimal {
    all.iter()
        .filter(|(w, _)| w == who)
        .flat_map(|(_, l)| l)
        .map(|i| i.usage_usd + i.adjustments_usd)
        .sum()
}

/// Calls of March arrive while aggregation passes close March for the members and the org
/// (the closes race the calls, on every store): however the race goes, each call is billed
/// once, on its payer's invoice, in March's invoice or as an adjustment of April's.
pub async fn calls_racing_the_closes_are_billed_once_by_their_payer(store: Option<Arc<dyn Store>>) {
    let (app, clock) = story(store, true).await;
    let m = "2026-03-31T23:00:00Z";
    clock.set(m.parse().unwrap());
    // Each of ann (acme pays), bob (he pays) and cid (no org) has March usage already.
    app.usage(json!({"events": [
        call("ann-0", "ann", Some("acme"), "gpt-9", m),
        call("bob-0", "bob", Some("acme"), "gpt-9", m),
        call("cid-0", "cid", None, "gpt-9", m),
    ]}))
    .await
    .assert_ok("March");

    // 2026-04-01T00:20: March can be closed. 12 rounds of three concurrent calls of March
    // (one of each kind) race aggregation passes, run one after another until the calls
    // are in.
    let at: DateTime<Utc> = "2026-04-01T00:20:00Z".parse().unwrap();
    clock.set(at);
    let done = std::sync::atomic::AtomicBool::new(false);
    let calls = async {
        for i in 1..=12 {
            let (a, b, c) = tokio::join!(
                app.usage(
                    json!({"events": [call(&format!("ann-{i}"), "ann", Some("acme"), "gpt-9", m)]})
                ),
                app.usage(
                    json!({"events": [call(&format!("bob-{i}"), "bob", Some("acme"), "gpt-9", m)]})
                ),
                app.usage(json!({"events": [call(&format!("cid-{i}"), "cid", None, "gpt-9", m)]})),
            );
            for r in [a, b, c] {
                r.assert_ok("a racing call");
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        done.store(true, std::sync::atomic::Ordering::SeqCst);
    };
    let passes = async {
        while !done.load(std::sync::atomic::Ordering::SeqCst) {
            app.aggregate_at(at).await;
        }
    };
    tokio::join!(calls, passes);
    // Whatever March's invoices did not bill is an adjustment on April's.
    pass(&app, &clock, "2026-04-01T00:30:00Z").await;
    pass(&app, &clock, "2026-05-01T00:20:00Z").await;
    let all = invoices(&app).await;
    let thirteen = CALL * Decimal::from(13);
    assert_eq!(billed_to(&all, "ann"), Decimal::ZERO, "acme pays: {all:?}");
    assert_eq!(billed_to(&all, "acme"), thirteen, "ann's calls: {all:?}");
    assert_eq!(billed_to(&all, "bob"), thirteen, "bob's calls: {all:?}");
    assert_eq!(billed_to(&all, "cid"), thirteen, "cid's calls: {all:?}");
}

/// A call the org was to pay for is re-priced after the org cancelled its subscription:
/// no org counter bills it any more, so its user's invoice does (its cost is never lost).
pub async fn a_call_repriced_after_its_org_cancelled_is_billed_to_its_user(
    store: Option<Arc<dyn Store>>,
) {
    let (app, clock) = story(store, false).await;
    let org_sub = format!("{P}/org/acme/subscription");
    let m = "2026-03-10T12:00:00Z";
    // Recorded unpriced while acme pays for ann's calls.
    app.usage(json!({"events": [
        call("a1", "ann", Some("acme"), "gpt-9-mini", m),
        call("a2", "ann", Some("acme"), "gpt-9-nano", m),
    ]}))
    .await
    .assert_ok("a1 and a2");
    app.put(&org_sub, json!({"plan": "pro", "status": "cancelled"}))
        .await
        .assert_ok("acme cancels");
    // Named after the cancellation: ann's own from the start.
    app.usage(json!({"events": [call("a3", "ann", Some("acme"), "gpt-9", m)]}))
        .await
        .assert_ok("a3");
    // a1 is priced in March (ann's period open), a2 after March was invoiced.
    add_price(&app, "gpt-9-mini").await;
    pass(&app, &clock, "2026-03-11T00:00:00Z").await;
    pass(&app, &clock, "2026-04-01T00:20:00Z").await;
    add_price(&app, "gpt-9-nano").await;
    pass(&app, &clock, "2026-04-02T00:00:00Z").await;
    pass(&app, &clock, "2026-05-01T00:20:00Z").await;
    let all = invoices(&app).await;
    let three = CALL * Decimal::from(3);
    assert_eq!(billed_to(&all, "ann"), three, "{all:?}");
    assert_eq!(total(&all), three, "{all:?}");
}
