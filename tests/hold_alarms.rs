//! Wallet alarms after a check's hold (issue 19), one story run on SQLite (`tests/api`)
//! and on DynamoDB (`tests/emulator`): a reservation whose hold takes `available_usd`
//! below `low_balance_usd` raises `wallet.low_balance` once, one that takes it to 0
//! `wallet.depleted` once, and racing holds that each cross raise it once.

use std::sync::{Arc, Mutex};

use meter_core::alerts::{AlertPublisher, OutboxMessage, PublishError};
use meter_core::store::Store;
use serde_json::{json, Value};

use crate::TestApp;

const P: &str = "/api/subscription";

/// Keeps what the alert port accepts.
#[derive(Default)]
struct Recorder(Mutex<Vec<OutboxMessage>>);

#[async_trait::async_trait]
impl AlertPublisher for Recorder {
    async fn publish(&self, m: &OutboxMessage) -> Result<(), PublishError> {
        self.0.lock().unwrap().push(m.clone());
        Ok(())
    }
}

impl Recorder {
    /// The wallet alarms published for `user`, in order.
    fn alarms(&self, user: &str) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m.attributes.get("user_id").map(String::as_str) == Some(user))
            .map(|m| m.attributes["type"].clone())
            .filter(|t| t.starts_with("wallet."))
            .collect()
    }
}

/// A reserving check of `user` for gemini-2.5-flash, `mtok` million input tokens ($0.30
/// each).
fn hold(user: &str, mtok: u64) -> Value {
    json!({"user_id": user, "provider": "gemini", "model": "gemini-2.5-flash",
           "estimated_input_tokens": mtok * 1_000_000, "reserve": true})
}

async fn prepaid_user(app: &TestApp, user: &str, grant: &str, level: &str) {
    app.put(
        &format!("{P}/user/{user}/subscription"),
        json!({"plan": "payg"}),
    )
    .await
    .assert_ok("subscribe");
    app.put(
        &format!("{P}/wallet/user/{user}/settings"),
        json!({"low_balance_usd": level}),
    )
    .await
    .assert_ok("level");
    app.put(
        &format!("{P}/wallet/user/{user}/grants/topup"),
        json!({"amount_usd": grant, "kind": "purchase"}),
    )
    .await
    .assert_ok("grant");
}

async fn available(app: &TestApp, user: &str) -> String {
    let w = app.get(&format!("{P}/wallet/user/{user}")).await;
    w.assert_ok("wallet");
    w.body["data"]["available_usd"].as_str().unwrap().to_owned()
}

/// The story, on `store` (`None`: a fresh SQLite store).
pub async fn holds_raise_wallet_alarms_once_per_crossing(store: Option<Arc<dyn Store>>) {
    let publisher = Arc::new(Recorder::default());
    let mut setup = TestApp::setup().publisher(publisher.clone());
    if let Some(store) = store {
        setup = setup.store(store);
    }
    let app = Arc::new(setup.spawn().await);
    let plan = json!({"tier": "custom", "monthly_price_usd": "0", "yearly_price_usd": "0",
                      "limits": {"calls:gemini": 1000}, "payment": "prepaid"});
    app.put(&format!("{P}/plans/payg"), plan)
        .await
        .assert_ok("plan");

    // Pam: $1.50, level $1. $0.30 held: $1.20 available, above the level.
    prepaid_user(&app, "pam", "1.5", "1").await;
    app.check(hold("pam", 1)).await.assert_ok("hold 1");
    assert_eq!(available(&app, "pam").await, "1.2");
    assert!(publisher.alarms("pam").is_empty(), "no crossing, no alarm");
    // $0.60 more: $0.60 < $1: low balance, once.
    app.check(hold("pam", 2)).await.assert_ok("hold 2");
    assert_eq!(publisher.alarms("pam"), ["wallet.low_balance"]);
    // $0.60 more: $0 — depleted, once; low balance does not fire again.
    app.check(hold("pam", 2)).await.assert_ok("hold 3");
    assert_eq!(available(&app, "pam").await, "0");
    assert_eq!(
        publisher.alarms("pam"),
        ["wallet.low_balance", "wallet.depleted"]
    );
    // A denied check holds nothing and raises nothing.
    let r = app.check(hold("pam", 1)).await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(
        publisher.alarms("pam"),
        ["wallet.low_balance", "wallet.depleted"]
    );

    // Quinn: $3, level $2.90: each of eight racing $0.30 holds crosses as its check read
    // the wallet; the alarm is raised once.
    prepaid_user(&app, "quinn", "3", "2.9").await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let app = app.clone();
        tasks.push(tokio::spawn(
            async move { app.check(hold("quinn", 1)).await },
        ));
    }
    for t in tasks {
        t.await.unwrap().assert_ok("racing hold");
    }
    assert_eq!(available(&app, "quinn").await, "0.6");
    assert_eq!(publisher.alarms("quinn"), ["wallet.low_balance"]);
    let alerts = app.get(&format!("{P}/alerts/quinn")).await;
    alerts.assert_ok("alerts");
    let stored = alerts.body["data"]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["key"].as_str().unwrap_or_default().starts_with("wallet."))
        .count();
    assert_eq!(stored, 1, "one stored alert: {}", alerts.body);
}
