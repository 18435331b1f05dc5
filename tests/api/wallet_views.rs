//! The views of wallets through the router (issue 19): a user's export shows the draws of
//! every event of theirs whichever wallet paid (naming it), an org has its export (admin
//! only), and `GET /admin/wallets` pages the tenant's wallets with the figures their own
//! wallet reads show.

use serde_json::{json, Value};

use meter_core::testing::TestClock;
use meter_tests::TestApp;

const P: &str = "/api/subscription";

fn usage(id: &str, user: &str, mtok: u64, team: Option<&str>) -> Value {
    let mut e = json!({"event_id": id, "user_id": user, "org_id": "acme", "provider": "gemini",
                       "model": "gemini-2.5-flash", "input_tokens": mtok * 1_000_000});
    if let Some(t) = team {
        e["team_id"] = json!(t);
    }
    e
}

/// `(event_id, wallet kind, wallet id, cost_usd)` of an export's draws.
fn draws(export: &Value) -> Vec<(String, String, String, String)> {
    export["draws"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["event_id"].as_str().unwrap().to_owned(),
                d["wallet"]["kind"].as_str().unwrap().to_owned(),
                d["wallet"]["id"].as_str().unwrap().to_owned(),
                d["cost_usd"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn row(id: &str, kind: &str, wallet: &str, cost: &str) -> (String, String, String, String) {
    (id.into(), kind.into(), wallet.into(), cost.into())
}

/// acme on a prepaid org plan with a $2 grant; bo on a prepaid plan of his own with $1.
/// ann (no subscription) calls within acme's team red: acme pays; bo calls within acme
/// too: he pays himself.
async fn seeded() -> TestApp {
    let clock = TestClock::at("2026-03-10T09:00:00Z");
    let app = TestApp::spawn_at(&clock).await;
    for name in ["teampay", "mypay"] {
        app.put(
            &format!("{P}/plans/{name}"),
            json!({"tier": "custom", "monthly_price_usd": "0", "yearly_price_usd": "0",
                   "limits": {"calls:gemini": 100}, "payment": "prepaid"}),
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
        &format!("{P}/user/bo/subscription"),
        json!({"plan": "mypay"}),
    )
    .await
    .assert_ok("bo's subscription");
    for (wallet, amount) in [("org/acme", "2"), ("user/bo", "1")] {
        app.put(
            &format!("{P}/wallet/{wallet}/grants/first"),
            json!({"amount_usd": amount, "kind": "purchase"}),
        )
        .await
        .assert_ok("grant");
    }
    app.put(
        &format!("{P}/wallet/org/acme/settings"),
        json!({"low_balance_usd": "1.5"}),
    )
    .await
    .assert_ok("level");
    for (name, scope) in [
        ("acme-cap", json!({"kind": "org", "org_id": "acme"})),
        (
            "red-cap",
            json!({"kind": "team", "org_id": "acme", "team_id": "red"}),
        ),
    ] {
        app.put(
            &format!("{P}/budgets/{name}"),
            json!({"scope": scope, "limits": {"cost_usd": "50"}, "window": "month",
                   "mode": "soft"}),
        )
        .await
        .assert_ok("budget");
    }
    app.usage(usage("ann-1", "ann", 1, Some("red")))
        .await
        .assert_ok("ann-1");
    app.usage(usage("ann-2", "ann", 2, None))
        .await
        .assert_ok("ann-2");
    app.usage(usage("bo-1", "bo", 1, None))
        .await
        .assert_ok("bo-1");
    app
}

#[tokio::test]
async fn the_exports_show_every_draw_naming_the_wallet_that_paid() {
    let app = seeded().await;
    let admin = app.admin_key.clone();

    let ann = app.get_as(&admin, &format!("{P}/user/ann/export")).await;
    ann.assert_ok("ann's export");
    assert_eq!(
        draws(&ann.body["data"]),
        [
            row("ann-1", "org", "acme", "0.3"),
            row("ann-2", "org", "acme", "0.6")
        ],
        "acme paid for ann's calls: they are in her export, naming acme"
    );
    assert_eq!(
        ann.body["data"]["draws"][0]["draws"][0]["grant_id"],
        "first"
    );
    let bo = app.get_as(&admin, &format!("{P}/user/bo/export")).await;
    bo.assert_ok("bo's export");
    assert_eq!(draws(&bo.body["data"]), [row("bo-1", "user", "bo", "0.3")]);

    let acme = app.get_as(&admin, &format!("{P}/org/acme/export")).await;
    acme.assert_ok("acme's export");
    let d = &acme.body["data"];
    assert_eq!(d["org_id"], "acme");
    assert_eq!(d["subscription"]["plan"], "teampay");
    assert_eq!(d["invoices"], json!([]));
    assert_eq!(
        d["wallet"]["subscriber"],
        json!({"kind": "org", "id": "acme"})
    );
    assert_eq!(d["wallet"]["balance_usd"], "1.1");
    assert_eq!(d["wallet"]["grants"][0]["remaining_usd"], "1.1");
    let budgets: Vec<&str> = d["budgets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["budget_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        budgets,
        ["acme-cap", "red-cap"],
        "the org's, then its teams'"
    );
    assert_eq!(
        draws(d),
        [
            row("ann-1", "org", "acme", "0.3"),
            row("ann-2", "org", "acme", "0.6")
        ],
        "only what acme's wallet paid (not bo's own draws)"
    );
    // The wallet in the export is what GET /wallet shows.
    let wallet = app.get(&format!("{P}/wallet/org/acme")).await;
    assert_eq!(
        wallet.body["data"]["balance_usd"],
        d["wallet"]["balance_usd"]
    );

    // Admin only; a bad id is 400; an unknown org exports empty.
    assert_eq!(app.get(&format!("{P}/org/acme/export")).await.status, 403);
    let bad = app.get_as(&admin, &format!("{P}/org/a%20b/export")).await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert_eq!(bad.code(), "invalid_id");
    let none = app.get_as(&admin, &format!("{P}/org/nobody/export")).await;
    none.assert_ok("unknown org");
    assert_eq!(none.body["data"]["subscription"], Value::Null);
    assert_eq!(none.body["data"]["draws"], json!([]));
    assert_eq!(none.body["data"]["budgets"], json!([]));
}

#[tokio::test]
async fn the_tenants_wallets_are_paged_with_the_figures_of_their_own_reads() {
    let app = seeded().await;
    let admin = app.admin_key.clone();
    for u in ["cy", "di"] {
        app.put(
            &format!("{P}/wallet/user/{u}/grants/promo"),
            json!({"amount_usd": "0.25", "kind": "promo"}),
        )
        .await
        .assert_ok("promo");
    }
    let page = app
        .get_as(&admin, &format!("{P}/admin/wallets?limit=2"))
        .await;
    page.assert_ok("first page");
    let d = &page.body["data"];
    let first = d["wallets"].as_array().unwrap().clone();
    assert_eq!(first.len(), 2);
    assert_eq!(d["next_cursor"], "user/bo");
    let rest = app
        .get_as(&admin, &format!("{P}/admin/wallets?limit=2&cursor=user/bo"))
        .await;
    rest.assert_ok("second page");
    let second = rest.body["data"]["wallets"].as_array().unwrap().clone();
    assert_eq!(rest.body["data"]["next_cursor"], Value::Null);
    let all: Vec<Value> = first.into_iter().chain(second).collect();
    let ids: Vec<String> = all
        .iter()
        .map(|w| {
            format!(
                "{}/{}",
                w["subscriber"]["kind"].as_str().unwrap(),
                w["subscriber"]["id"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(ids, ["org/acme", "user/bo", "user/cy", "user/di"]);
    for w in &all {
        let path = format!(
            "{P}/wallet/{}/{}",
            w["subscriber"]["kind"].as_str().unwrap(),
            w["subscriber"]["id"].as_str().unwrap()
        );
        let own = app.get(&path).await;
        own.assert_ok("wallet");
        for field in [
            "balance_usd",
            "held_usd",
            "available_usd",
            "low_balance_usd",
        ] {
            assert_eq!(w[field], own.body["data"][field], "{path} {field}");
        }
    }
    // acme: $1.10 left of $2, below its $1.50 level; nobody is depleted.
    assert_eq!(all[0]["available_usd"], "1.1");
    assert_eq!(all[0]["low_balance"], true);
    assert_eq!(all[1]["low_balance"], false);
    assert!(all.iter().all(|w| w["depleted"] == false));

    // Admin only; bad parameters are 400 and change nothing.
    assert_eq!(app.get(&format!("{P}/admin/wallets")).await.status, 403);
    for q in [
        "limit=0",
        "limit=101",
        "cursor=bo",
        "cursor=team/x",
        "page=2",
    ] {
        let r = app.get_as(&admin, &format!("{P}/admin/wallets?{q}")).await;
        assert_eq!(r.status, 400, "{q}: {}", r.body);
    }
}
