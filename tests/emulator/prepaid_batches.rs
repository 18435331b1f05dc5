//! The DynamoDB request budget of a prepaid event batch (§12, issue 19): one
//! `TransactWriteItems` per at most 100 items plus at most 2 reads — the settled
//! reservations (one `GetItem` of the state item) and the wallet (one `Query`) — whether
//! the user's own wallet or an org's pays; the draws of many events on one grant are one
//! update of their sum.

use chrono::Duration;
use meter_core::credits::{GrantKind, GrantRequest, Subscriber};
use meter_core::domain::{GrantId, OrgId, UsageEvent};
use meter_core::store::{OrgWalletStore, PrepaidStore, ReserveOutcome};
use meter_core::store::{RecordOutcome, UsageStore, WalletStore};
use meter_core::testing::{at, dec, event, reservation, tenant, user};

use super::{counted_store, ops};

#[tokio::test]
async fn a_prepaid_batch_is_one_transaction_per_100_items_and_two_reads() {
    let (store, counter, _) = counted_store().await;
    let t = tenant();
    let u = user("payg");
    let acme = Subscriber::Org(OrgId::parse("acme").unwrap());
    let mine = Subscriber::User(u.clone());
    for (w, id, amount, priority) in [
        (&mine, "promo", "1", 1),
        (&mine, "purchase", "50", 10),
        (&acme, "pool", "50", 10),
    ] {
        let mut g = GrantRequest::new(dec(amount), GrantKind::Purchase)
            .into_grant(GrantId::parse(id).unwrap(), at(2025, 3, 1, 0))
            .unwrap();
        g.priority = priority;
        store.insert_grant(&t, w, &g).await.unwrap();
    }
    // Five open reservations the batch settles.
    let mut held = Vec::new();
    for _ in 0..5 {
        let r = reservation(&t, &u, 10, "0.01", at(2025, 3, 10, 13));
        assert_eq!(
            store.reserve(&r, &[]).await.unwrap(),
            ReserveOutcome::Reserved
        );
        held.push(r.id);
    }
    let events = |prefix: &str, n: usize| -> Vec<UsageEvent> {
        (0..n)
            .map(|i| {
                let mut e = event(&t, &u, &format!("{prefix}-{i}"), 10, "0.03");
                e.timestamp += Duration::seconds(i as i64);
                e
            })
            .collect()
    };

    // 120 events drawing from the user's wallet (the promo's $1 then the purchase), five
    // of them settling reservations: 120 puts + the state, the day, two grants, the head
    // and five tombstones = 130 items, two transactions.
    let mut batch = events("own", 120);
    // Settled in the first transaction and in the second: both from the batch's one read.
    for (i, id) in [0, 1, 2, 118, 119].into_iter().zip(&held) {
        batch[i].reservation_id = Some(id.clone());
    }
    counter.take();
    let out = store.record_events_drawing(&batch, &[]).await.unwrap();
    assert!(out.iter().all(|o| *o == RecordOutcome::Recorded));
    assert_eq!(
        counter.take(),
        ops(&[("GetItem", 1), ("Query", 1), ("TransactWriteItems", 2)]),
        "120 prepaid events settling 5 reservations"
    );
    for id in &held {
        let r = store.get_reservation(&t, id).await.unwrap().unwrap();
        assert_eq!(
            r.status,
            meter_core::domain::ReservationStatus::Settled,
            "{id}"
        );
    }
    let w = store.get_wallet(&t, &mine).await.unwrap();
    let left: rust_decimal::Decimal = w.grants.iter().map(|g| g.remaining_usd).sum();
    assert_eq!(left, dec("51") - dec("3.6"), "120 × $0.03 drawn exactly");

    // 300 events an org pays for (each with its ledger item): no reservation, so one read
    // (the wallet) and 300 puts + 300 ledger items + the state, the day, the grant and the
    // head in transactions of at most 100 items: 7.
    let batch = events("org", 300);
    let payers = vec![Some(acme.clone()); batch.len()];
    counter.take();
    let out = store
        .record_events_paying(&batch, &[], &payers)
        .await
        .unwrap();
    assert!(out.iter().all(|o| *o == RecordOutcome::Recorded));
    assert_eq!(
        counter.take(),
        ops(&[("Query", 1), ("TransactWriteItems", 7)]),
        "300 events an org pays for"
    );
    let w = store.get_wallet(&t, &acme).await.unwrap();
    assert_eq!(
        w.grants[0].remaining_usd,
        dec("41"),
        "300 × $0.03 drawn exactly"
    );

    // The same batch again: every event a duplicate, nothing drawn twice.
    let out = store
        .record_events_paying(&batch, &[], &payers)
        .await
        .unwrap();
    assert!(out.iter().all(|o| *o == RecordOutcome::Duplicate));
    let w = store.get_wallet(&t, &acme).await.unwrap();
    assert_eq!(w.grants[0].remaining_usd, dec("41"));
}

/// A check naming an org on a prepaid plan reads the org wallet's head as one more key of
/// the check's `BatchGetItem` (with the user's state item and wallet head): no request of
/// its own. The other requests are those of any check naming an org (its subscription
/// item, its budget list, its counters: `tests/emulator/enforcement.rs`), which the
/// one-request check over scopes (issue 18) folds into that same batch.
#[tokio::test]
async fn an_org_wallet_adds_a_key_to_the_checks_batch_not_a_request() {
    use serde_json::json;
    let clock = meter_core::testing::TestClock::at("2026-03-10T09:00:00Z");
    let (app, counter) = super::setup_at(&clock).await;
    const P: &str = "/api/subscription";
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
    }
    app.put(
        &format!("{P}/wallet/org/acme/grants/pool"),
        json!({"amount_usd": "1", "kind": "purchase"}),
    )
    .await
    .assert_ok("grant");
    let check = |org: &str, mtok: u64| {
        json!({"user_id": "ann", "org_id": org, "provider": "gemini",
               "model": "gemini-2.5-flash", "estimated_input_tokens": mtok * 1_000_000})
    };
    app.check(check("acme", 1)).await.assert_ok("warm");
    app.check(check("initech", 1)).await.assert_ok("warm");

    counter.take();
    app.check(check("initech", 1))
        .await
        .assert_ok("postpaid org");
    let postpaid = counter.take();
    app.check(check("acme", 1)).await.assert_ok("prepaid org");
    assert_eq!(counter.take(), postpaid, "allowed from acme's wallet");
    let denied = app.check(check("acme", 4)).await;
    assert_eq!(denied.status, 429, "{}", denied.body);
    assert_eq!(denied.body["error"]["details"]["scope"]["org_id"], "acme");
    // One read either way (issue 18's check view): the state item, both wallet heads, the
    // org's subscription, the scopes' budget items and counter items in one batch.
    assert_eq!(
        counter.take(),
        ops(&[("BatchGetItem", 1)]),
        "denied for acme's credit"
    );
    assert_eq!(postpaid, ops(&[("BatchGetItem", 1)]));
    eprintln!("a check naming an org on a plan, in a tenant selling prepaid plans: {postpaid:?}");
}
