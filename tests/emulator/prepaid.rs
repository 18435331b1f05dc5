//! The DynamoDB request budget of a prepaid plan (issue 19): a check is still one request
//! (one `BatchGetItem` of the user's state item and the wallet's head), allowed or denied;
//! a reservation that holds credit one `TransactWriteItems` more; an event that draws from
//! the wallet reads the settled reservation and the wallet, then writes one transaction
//! (and reads the wallet once more for its alarms).

use serde_json::json;

use super::ops;
use super::setup;

const P: &str = "/api/subscription";

fn check(user: &str, mtok: u64, reserve: bool) -> serde_json::Value {
    json!({"user_id": user, "provider": "gemini", "model": "gemini-2.5-flash",
           "estimated_input_tokens": mtok * 1_000_000, "reserve": reserve})
}

#[tokio::test]
async fn a_prepaid_check_is_one_request_and_a_draw_one_transaction() {
    let env = setup(None).await;
    let app = &env.app;
    let plan = json!({"tier": "custom", "monthly_price_usd": "0", "yearly_price_usd": "0",
                      "limits": {"calls:gemini": 1000}, "payment": "prepaid"});
    assert_eq!(app.put(&format!("{P}/plans/payg"), plan).await.status, 200);
    let r = app
        .put(
            &format!("{P}/user/pam/subscription"),
            json!({"plan": "payg"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = app
        .put(
            &format!("{P}/wallet/user/pam/grants/topup"),
            json!({"amount_usd": "1", "kind": "purchase"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Warm the key, plan and catalog caches.
    assert_eq!(app.check(check("pam", 1, false)).await.status, 200);

    env.counter.take();
    let r = app.check(check("pam", 1, false)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        env.counter.take(),
        ops(&[("BatchGetItem", 1)]),
        "a prepaid check"
    );

    let r = app.check(check("pam", 1, true)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let rid = r.body["data"]["reservation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        env.counter.take(),
        ops(&[("BatchGetItem", 1), ("TransactWriteItems", 1)]),
        "a prepaid reservation"
    );

    let r = app.check(check("pam", 4, false)).await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(r.body["error"]["details"]["metric"], "credits_usd");
    assert_eq!(
        env.counter.take(),
        ops(&[("BatchGetItem", 1)]),
        "a credit denial"
    );

    // A postpaid user of a tenant that sells prepaid plans: the same one request.
    let r = app.check(check("post", 0, false)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        env.counter.take(),
        ops(&[("BatchGetItem", 1)]),
        "a postpaid check"
    );

    let r = app
        .usage(
            json!({"event_id": "e-1", "user_id": "pam", "provider": "gemini",
                      "model": "gemini-2.5-flash", "input_tokens": 1_000_000,
                      "reservation_id": rid}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // The ingest's read of the user, the settled reservation's (projected) state read and
    // the alerts' read after recording are the non-prepaid event's (the state alone: the
    // check found pam without budgets of her own, service::check_view); one wallet Query is the draw's input, the other the alarms'
    // observation after it (no alarm changes here, so no write); one transaction records,
    // settles, releases the hold and draws.
    assert_eq!(
        env.counter.take(),
        ops(&[("GetItem", 3), ("Query", 2), ("TransactWriteItems", 1)]),
        "a prepaid event settling a reservation"
    );
    let w = app.get(&format!("{P}/wallet/user/pam")).await;
    assert_eq!(
        (&w.body["data"]["balance_usd"], &w.body["data"]["held_usd"]),
        (&json!("0.7"), &json!("0"))
    );
}
