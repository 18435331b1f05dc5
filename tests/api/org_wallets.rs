//! Org wallets through the router (issue 19, SPEC §10, §11; docs/credits.md "Who pays"):
//! a member without a subscription of their own, calling within an org on a prepaid plan,
//! is paid for by the org's wallet — the check asks it for credit, a reservation holds it
//! there, the event draws from it once — and the org's wallet has its alarms (the org's
//! alerts) and its burn. A member with a subscription of their own keeps it: the org's
//! wallet neither gates nor pays their calls.

use serde_json::{json, Value};

use meter_core::alerts::{OutboxMessage, PublishError};
use meter_core::testing::TestClock;
use meter_tests::TestApp;

const P: &str = "/api/subscription";
const ACME: &str = "/api/subscription/wallet/org/acme";

#[derive(Default)]
struct Recorder(std::sync::Mutex<Vec<OutboxMessage>>);

#[async_trait::async_trait]
impl meter_core::alerts::AlertPublisher for Recorder {
    async fn publish(&self, m: &OutboxMessage) -> Result<(), PublishError> {
        self.0.lock().unwrap().push(m.clone());
        Ok(())
    }
}

impl Recorder {
    /// `(type, org_id attribute)` of the wallet messages published.
    fn wallet(&self) -> Vec<(String, Option<String>)> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m.attributes["type"].starts_with("wallet."))
            .map(|m| {
                (
                    m.attributes["type"].clone(),
                    m.attributes.get("org_id").cloned(),
                )
            })
            .collect()
    }
}

/// A check by `user` within acme, estimated at `mtok` million input tokens ($0.30 each).
fn check(user: &str, mtok: u64, reserve: bool) -> Value {
    json!({"user_id": user, "org_id": "acme", "provider": "gemini", "model": "gemini-2.5-flash",
           "estimated_input_tokens": mtok * 1_000_000, "reserve": reserve})
}

fn usage(id: &str, user: &str, mtok: u64, reservation: Option<&str>) -> Value {
    let mut e = json!({"event_id": id, "user_id": user, "org_id": "acme", "provider": "gemini",
                       "model": "gemini-2.5-flash", "input_tokens": mtok * 1_000_000});
    if let Some(r) = reservation {
        e["reservation_id"] = json!(r);
    }
    e
}

async fn figures(app: &TestApp, path: &str) -> (String, String) {
    let w = app.get(path).await;
    w.assert_ok("wallet");
    let d = &w.body["data"];
    (
        d["balance_usd"].as_str().unwrap().to_owned(),
        d["held_usd"].as_str().unwrap().to_owned(),
    )
}

fn pair(a: &str, b: &str) -> (String, String) {
    (a.to_owned(), b.to_owned())
}

#[tokio::test]
async fn a_prepaid_org_plan_is_paid_from_the_orgs_wallet() {
    let clock = TestClock::at("2026-03-10T09:00:00Z");
    let publisher = std::sync::Arc::new(Recorder::default());
    let app = TestApp::setup()
        .clock(&clock)
        .publisher(publisher.clone())
        .spawn()
        .await;
    for (name, payment) in [("teampay", "prepaid"), ("solo", "postpaid")] {
        app.put(
            &format!("{P}/plans/{name}"),
            json!({"tier": "custom", "monthly_price_usd": "0", "yearly_price_usd": "0",
                   "limits": {"calls:gemini": 100}, "payment": payment}),
        )
        .await
        .assert_ok("plan");
    }
    app.put(
        &format!("{P}/org/acme/subscription"),
        json!({"plan": "teampay"}),
    )
    .await
    .assert_ok("org subscription");
    app.put(
        &format!("{P}/user/sue/subscription"),
        json!({"plan": "solo"}),
    )
    .await
    .assert_ok("sue's own subscription");
    app.put(
        &format!("{ACME}/settings"),
        json!({"low_balance_usd": "0.5"}),
    )
    .await
    .assert_ok("level");
    app.put(
        &format!("{ACME}/grants/pool"),
        json!({"amount_usd": "1", "kind": "purchase"}),
    )
    .await
    .assert_ok("grant");

    // ann has no subscription: acme's plan is in force and acme's $1 must cover $1.20.
    let denied = app.check(check("ann", 4, false)).await;
    assert_eq!(denied.status, 429, "{}", denied.body);
    assert_eq!(
        denied.body["error"]["details"],
        json!({"metric": "credits_usd", "scope": {"kind": "org", "org_id": "acme"},
               "used": "0", "limit": "1", "requested": "1.2", "available_usd": "1",
               "balance_usd": "1", "held_usd": "0", "resets_at": null, "upgrade_to": null})
    );
    // sue keeps her own (postpaid) plan: acme's wallet does not gate her.
    let r = app.check(check("sue", 4, false)).await;
    assert_eq!(r.status, 200, "{}", r.body);

    // A reservation of $0.30 holds acme's credit, not ann's.
    let r = app.check(check("ann", 1, true)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let rid = r.body["data"]["reservation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(figures(&app, ACME).await, pair("1", "0.3"));
    assert_eq!(
        figures(&app, &format!("{P}/wallet/user/ann")).await,
        pair("0", "0")
    );
    // $0.70 left: $0.90 is denied while the hold stands.
    assert_eq!(app.check(check("ann", 3, false)).await.status, 429);

    // The event settles it at $0.60, drawn from acme once (also on redelivery); sue's
    // event draws nothing from acme.
    for _ in 0..2 {
        app.usage(usage("ann-1", "ann", 2, Some(&rid)))
            .await
            .assert_ok("ann-1");
    }
    app.usage(usage("sue-1", "sue", 2, None))
        .await
        .assert_ok("sue-1");
    assert_eq!(figures(&app, ACME).await, pair("0.4", "0"));
    assert_eq!(
        publisher.wallet(),
        [("wallet.low_balance".to_owned(), Some("acme".to_owned()))],
        "acme's alarm, once, as acme's"
    );
    let alerts = app.get(&format!("{P}/org/acme/alerts")).await;
    alerts.assert_ok("org alerts");
    let key = alerts.body["data"]["alerts"][0]["key"].as_str().unwrap();
    assert!(key.starts_with("wallet.low_balance#"), "{key}");
    let anns = app.get(&format!("{P}/alerts/ann")).await;
    anns.assert_ok("ann's alerts");
    assert!(
        !anns.body.to_string().contains("wallet."),
        "ann owns no wallet alarm: {}",
        anns.body
    );

    // The burn: what acme's wallet paid in the last 7 days.
    let w = app.get(ACME).await;
    assert_eq!(w.body["data"]["burn_last_7_days_usd"], "0.6");
    assert!(w.body["data"]["projected_depletion_at"].is_string());

    // Past the credit: recorded anyway, overdrawn, depleted once.
    app.usage(usage("ann-2", "ann", 2, None))
        .await
        .assert_ok("ann-2");
    assert_eq!(figures(&app, ACME).await, pair("-0.2", "0"));
    assert_eq!(
        publisher.wallet(),
        [
            ("wallet.low_balance".to_owned(), Some("acme".to_owned())),
            ("wallet.depleted".to_owned(), Some("acme".to_owned())),
        ]
    );
    assert_eq!(app.check(check("ann", 0, false)).await.status, 429);
}

async fn org_invoices(app: &TestApp, org: &str) -> Vec<meter_core::domain::Invoice> {
    app.store
        .list_org_invoices(&app.tenant, &meter_core::domain::OrgId::parse(org).unwrap())
        .await
        .unwrap()
}

fn credits_line(inv: &meter_core::domain::Invoice) -> Option<rust_decimal::Decimal> {
    inv.line_items
        .iter()
        .find(|l| l.kind == "credits_applied")
        .map(|l| l.amount_usd)
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

#[tokio::test]
async fn org_invoices_get_credits_applied_once() {
    let clock = TestClock::at("2026-03-10T09:00:00Z");
    let app = TestApp::spawn_at(&clock).await;
    for (name, payment) in [("teampay", "prepaid"), ("teampost", "postpaid")] {
        app.put(
            &format!("{P}/plans/{name}"),
            json!({"tier": "custom", "monthly_price_usd": "0", "yearly_price_usd": "0",
                   "limits": {"calls:gemini": 100}, "payment": payment}),
        )
        .await
        .assert_ok("plan");
    }
    for (org, plan) in [("acme", "teampay"), ("initech", "teampost")] {
        app.put(
            &format!("{P}/org/{org}/subscription"),
            json!({"plan": plan}),
        )
        .await
        .assert_ok("org subscription");
        app.put(
            &format!("{P}/wallet/org/{org}/grants/pool"),
            json!({"amount_usd": "1", "kind": "purchase"}),
        )
        .await
        .assert_ok("grant");
    }
    // acme (prepaid): $1.20 drawn from $1, $0.20 overdrawn. initech (postpaid): $0.60 of
    // usage, nothing drawn until the invoice.
    app.usage(usage("a-1", "ann", 4, None))
        .await
        .assert_ok("a-1");
    let mut e = usage("i-1", "ivy", 2, None);
    e["org_id"] = json!("initech");
    app.usage(e).await.assert_ok("i-1");
    assert_eq!(figures(&app, ACME).await, pair("-0.2", "0"));
    let initech = "/api/subscription/wallet/org/initech";
    assert_eq!(figures(&app, initech).await, pair("1", "0"));

    for at in ["2026-04-11T01:00:00Z", "2026-04-11T02:00:00Z"] {
        clock.set(at.parse().unwrap());
        pass(&app, at).await;
    }
    let dec = |s: &str| s.parse::<rust_decimal::Decimal>().unwrap();
    let acme = org_invoices(&app, "acme").await;
    assert_eq!(acme.len(), 1, "{acme:?}");
    assert_eq!(
        credits_line(&acme[0]),
        Some(dec("-1")),
        "what acme's events drew"
    );
    assert_eq!(acme[0].total_usd, dec("0.20"), "acme's overdraft is billed");
    assert_eq!(
        figures(&app, ACME).await,
        pair("0", "0"),
        "and taken off once"
    );
    let ini = org_invoices(&app, "initech").await;
    assert_eq!(ini.len(), 1, "{ini:?}");
    assert_eq!(credits_line(&ini[0]), Some(dec("-0.6")), "postpaid credit");
    assert_eq!(ini[0].total_usd, dec("0"), "never below zero");
    assert_eq!(
        figures(&app, initech).await,
        pair("0.4", "0"),
        "unused credit stays"
    );
}
