//! An erasure gives back the credit that the user's open reservations hold (issue 19),
//! exactly once: nine open reservations (one more than fit on the state item) hold
//! $2.70 of a $5 wallet; two racing erasures leave `held_usd` at 0, not below.

use serde_json::json;

use meter_core::testing::TestClock;
use meter_tests::TestApp;

const P: &str = "/api/subscription";
const PAM: &str = "/api/subscription/wallet/user/pam";

/// Runs the story on `app` (shared with tests/emulator).
pub async fn erasure_releases_held_credit_once(app: &TestApp) {
    let plan = json!({"tier": "custom", "monthly_price_usd": "0", "yearly_price_usd": "0",
                      "limits": {"calls:gemini": 1000}, "payment": "prepaid"});
    app.put(&format!("{P}/plans/payg"), plan)
        .await
        .assert_ok("plan");
    app.put(
        &format!("{P}/user/pam/subscription"),
        json!({"plan": "payg"}),
    )
    .await
    .assert_ok("subscribe");
    app.put(
        &format!("{PAM}/grants/topup"),
        json!({"amount_usd": "5", "kind": "purchase"}),
    )
    .await
    .assert_ok("grant");
    for _ in 0..9 {
        let r = app
            .check(
                json!({"user_id": "pam", "provider": "gemini", "model": "gemini-2.5-flash",
                          "estimated_input_tokens": 1_000_000, "reserve": true}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let w = app.get(PAM).await.body["data"].clone();
    assert_eq!(
        (&w["held_usd"], &w["available_usd"]),
        (&json!("2.7"), &json!("2.3"))
    );

    let path = format!("{P}/user/pam");
    let (a, b) = tokio::join!(app.delete(&path), app.delete(&path));
    assert_eq!(
        (a.status.as_u16(), b.status.as_u16()),
        (200, 200),
        "{} {}",
        a.body,
        b.body
    );
    let w = app.get(PAM).await.body["data"].clone();
    assert_eq!(
        (&w["balance_usd"], &w["held_usd"], &w["available_usd"]),
        (&json!("5"), &json!("0"), &json!("5")),
        "{w}"
    );
    // Once more: nothing is left to give back.
    app.delete(&path).await.assert_ok("erase again");
    assert_eq!(app.get(PAM).await.body["data"]["held_usd"], "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_releases_the_credit_held_by_open_reservations_once() {
    let clock = TestClock::at("2026-03-10T09:00:00Z");
    let app = TestApp::spawn_at(&clock).await;
    erasure_releases_held_credit_once(&app).await;
}
