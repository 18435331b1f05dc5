//! Plain writes (`UpdateItem`, `PutItem`, `DeleteItem`) that lose a race with a transaction
//! (`TransactionConflictException`) or are throttled get the same retries as transactions
//! (jittered backoff, `MAX_ATTEMPTS` = 12 attempts) before `Unavailable`: a reservation or a
//! subscription change during a concurrent ingest of the same user succeeds, and only
//! conflicts that never stop answer a clean 503. An aggregation pass expires every hold it
//! can: one whose write keeps failing is skipped (the next pass expires it).
//!
//! Faults are injected by the SDK interceptor of [`crate::throttle`] on the emulator.

use chrono::{Duration, Utc};
use meter_core::service::aggregate::AggregateOptions;
use meter_tests::Reply;
use serde_json::json;

use crate::throttle::{assert_unavailable, setup, Env, Kind};

/// The adapter's attempts at one write (`store::dynamo::requests::MAX_ATTEMPTS`).
const MAX_ATTEMPTS: u32 = 12;

/// A pass acting an hour from now: every hold taken by the test has expired by then.
async fn pass_an_hour_on(env: &Env) -> meter_core::service::aggregate::AggregateReport {
    env.app
        .meter
        .aggregate(&AggregateOptions {
            at: Some(Utc::now() + Duration::hours(1)),
            ..AggregateOptions::default()
        })
        .await
        .expect("an aggregation pass answers")
}

#[tokio::test]
async fn a_reservation_is_retried_through_transaction_conflicts_and_503_only_when_they_never_stop()
{
    let env = setup().await;

    env.throttler.fault("UpdateItem", Kind::Conflict, Some(4));
    let Reply { status, body, .. } = env.reserve("ria").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["allowed"], true, "{body}");
    assert_eq!(
        env.throttler.attempts("UpdateItem"),
        5,
        "4 conflicts, then it held"
    );
    assert_eq!(env.counts("ria").await, (0, 1), "held once");

    for kind in [Kind::Throttling, Kind::RequestLimit] {
        env.throttler.fault("UpdateItem", kind, Some(2));
        let Reply { status, body, .. } = env.reserve("ria").await;
        assert_eq!(status, 200, "{kind:?}: {body}");
    }
    assert_eq!(env.counts("ria").await, (0, 3));

    env.throttler.fault("UpdateItem", Kind::Conflict, None);
    let Reply { status, body, .. } = env.reserve("ria").await;
    assert_unavailable(status, &body, "conflicts that never stop");
    assert_eq!(env.throttler.attempts("UpdateItem"), MAX_ATTEMPTS);
    env.throttler.heal();
    assert_eq!(env.counts("ria").await, (0, 3), "nothing held by the 503");
}

#[tokio::test]
async fn a_subscription_change_is_retried_through_transaction_conflicts_and_503_only_when_they_never_stop(
) {
    let env = setup().await;
    let path = "/api/subscription/user/sam/subscription";

    env.throttler.fault("UpdateItem", Kind::Conflict, Some(3));
    let Reply { status, body, .. } = env.app.put(path, json!({"plan": "pro"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["change"], "created", "{body}");
    assert_eq!(env.throttler.attempts("UpdateItem"), 4);

    env.throttler.fault("UpdateItem", Kind::Conflict, None);
    let Reply { status, body, .. } = env.app.put(path, json!({"plan": "enterprise"})).await;
    assert_unavailable(status, &body, "conflicts that never stop");
    assert_eq!(env.throttler.attempts("UpdateItem"), MAX_ATTEMPTS);

    env.throttler.heal();
    let user = meter_core::domain::UserId::parse("sam").unwrap();
    let sub =
        meter_core::store::SubscriptionStore::get_subscription(&env.clean, &env.app.tenant, &user)
            .await
            .unwrap()
            .expect("the first change was stored");
    assert_eq!(sub.plan.as_str(), "pro", "the refused change wrote nothing");
}

#[tokio::test]
async fn expiring_holds_retries_conflicts_and_skips_only_a_hold_whose_write_keeps_failing() {
    let env = setup().await;
    let users = ["ada", "ben", "cyd", "dov", "eli", "fay", "gus"];
    for user in users {
        let Reply { status, body, .. } = env.reserve(user).await;
        assert_eq!(status, 200, "{user}: {body}");
    }

    // ben's expiry keeps losing to a transaction on his item: the others expire, he is
    // skipped and the pass still completes its other steps.
    let ben = format!("\"T#{}#U#ben\"", env.app.tenant);
    env.throttler
        .fault_matching("TransactWriteItems", Kind::Conflict, None, &ben);
    let report = pass_an_hour_on(&env).await;
    assert_eq!(report.expired_reservations, users.len() - 1, "{report:?}");
    assert_eq!(env.throttler.faulted("TransactWriteItems"), MAX_ATTEMPTS);
    for user in users {
        let held = if user == "ben" { 1 } else { 0 };
        assert_eq!(env.counts(user).await, (0, held), "{user}");
    }

    // Once the conflicts stop, the next pass expires his hold; the emptied state items
    // leave the holds index through conditional updates that conflict a few times.
    env.throttler.heal();
    env.throttler.fault("UpdateItem", Kind::Conflict, Some(3));
    let report = pass_an_hour_on(&env).await;
    assert_eq!(report.expired_reservations, 1, "{report:?}");
    assert!(report.complete, "{report:?}");
    assert_eq!(env.throttler.faulted("UpdateItem"), 3);
    assert_eq!(env.counts("ben").await, (0, 0));
}
