//! The n-th store call fails: each hot-path request is first run without faults to list
//! the store calls it makes; then, for each of those calls and both timings (before the
//! store sees it: nothing written; after: written, answer lost), a fresh user gets the
//! same request with that call failing. The client sees 503 `store_unavailable` for every
//! call up to the request's write (later ones — alerts after recorded usage — are logged
//! and answered 200), the store stays consistent, and the same request retried completes
//! the work exactly once.

use meter_core::testing::instant;
use meter_tests::Reply;
use serde_json::{json, Value};

use crate::faulty::{Fault, Injected, Timing};
use crate::helpers::{event, spawn_app, App};

const NOW: &str = "2025-03-20T12:00:00Z";
const TS: &str = "2025-03-20T11:00:00Z";

/// The calls that raise and deliver alerts after usage is recorded: their failures are
/// logged, not answered (the usage is recorded; a retry or the aggregation catches up).
const AFTER_RECORD: [&str; 5] = [
    "get_user_limits",
    "create_alert_once",
    "claim_alert",
    "mark_alert_published",
    "release_alert_claim",
];

/// What one sweep step saw.
#[derive(Debug)]
struct Step {
    injected: Injected,
    status: u16,
}

/// Runs `act` on a dry user without faults to list its store calls, then fails each call
/// in turn (both timings) for a fresh user: `arrange` (no faults), `act` with the fault,
/// the consistency audit, `act` again without faults, then `verify` of the retry (told
/// whether the failed call came after the request's first write `write`).
/// `write` names the request's first write: failures after it of [`AFTER_RECORD`] calls
/// are answered 200, all others 503.
async fn sweep(
    app: &App,
    name: &str,
    write: &str,
    arrange: impl AsyncFn(&App, &str) -> Value,
    act: impl AsyncFn(&App, &str, &Value) -> Reply,
    verify: impl AsyncFn(&App, &str, &Value, &Reply, Injected, bool),
) -> Vec<Step> {
    let dry = format!("{name}-dry");
    let ctx = arrange(app, &dry).await;
    app.faulty.faults.take_calls();
    act(app, &dry, &ctx).await.assert_ok("dry run");
    let calls = app.faulty.faults.take_calls();
    let write_at = calls
        .iter()
        .position(|c| *c == write)
        .unwrap_or_else(|| panic!("{name}: no {write} in {calls:?}"));

    let mut steps = Vec::new();
    for (i, op) in calls.iter().enumerate() {
        for timing in [Timing::Before, Timing::After] {
            let user = format!(
                "{name}-{i}-{}",
                if timing == Timing::Before { "b" } else { "a" }
            );
            let context = format!("{name}: {op} (call {}) failing {timing:?}", i + 1);
            let ctx = arrange(app, &user).await;
            app.faulty.faults.inject(Fault::nth(i + 1, timing));
            let failed = act(app, &user, &ctx).await;
            app.faulty.faults.heal();
            let injected = app.faulty.faults.injected();
            assert_eq!(
                injected,
                vec![Injected { op, timing }],
                "{context}: the request's calls changed"
            );
            if i <= write_at || !AFTER_RECORD.contains(op) {
                failed.assert_unavailable(&context);
            } else {
                failed.assert_ok(&context);
            }
            app.assert_consistent(&user, &context).await;

            let retried = act(app, &user, &ctx).await;
            retried.assert_ok(&format!("{context}, retried"));
            app.assert_consistent(&user, &format!("{context}, retried"))
                .await;
            // Whether the failed call came after the request's first write.
            verify(app, &user, &ctx, &retried, injected[0], i > write_at).await;
            steps.push(Step {
                injected: injected[0],
                status: failed.status.as_u16(),
            });
        }
    }
    steps
}

/// `n` recorded events of `user`, in one request without faults.
async fn seed_events(app: &App, user: &str, n: usize) {
    let events: Vec<_> = (0..n)
        .map(|i| event(&format!("{user}-seed-{i}"), user, 10 + i as u64, TS))
        .collect();
    app.ingest(&events).await.assert_ok("seeding");
}

fn alert_keys(alerts: &[meter_core::domain::Alert]) -> Vec<String> {
    let mut keys: Vec<_> = alerts.iter().map(|a| a.key.clone()).collect();
    keys.sort();
    keys
}

#[tokio::test]
async fn a_failed_ingest_is_recorded_exactly_once_by_its_retry_with_its_alert() {
    let app = spawn_app(NOW).await;
    seed_events(&app, "warmup", 1).await;
    let steps = sweep(
        &app,
        "ingest",
        "record_events",
        // 79 of the Free plan's 100 gemini calls: the next event crosses 80 %.
        async |app, user| {
            seed_events(app, user, 79).await;
            Value::Null
        },
        async |app, user, _| {
            app.ingest(&[event(&format!("{user}-x"), user, 7, TS)])
                .await
        },
        async |app, user, _, retried, injected, after_write| {
            let audit = app.audit(user).await;
            assert_eq!(audit.event_ids.len(), 80, "{injected:?}");
            assert_eq!(audit.recorded.calls, 80, "{injected:?}");
            let status = &retried.body["data"]["events"][0]["status"];
            // Ingest reads the user's state (`get_user_limits`: subscription and whether
            // the user has budgets) before recording, and again for alerts after.
            let committed =
                injected.op == "record_events" && injected.timing == Timing::After || after_write;
            assert_eq!(
                status,
                if committed { "duplicate" } else { "recorded" },
                "{injected:?}"
            );
            let u = meter_core::domain::UserId::parse(user).unwrap();
            let (alerts, _) = app
                .store
                .list_alerts(&app.tenant, &u, false, 100)
                .await
                .unwrap();
            assert_eq!(
                alert_keys(&alerts),
                ["calls:gemini@80"],
                "{injected:?}: the 80 % alert is stored once"
            );
            // Whatever was not delivered is delivered by the next pass.
            app.aggregate().await.unwrap();
            let pending = app.store.unpublished_alerts(1000).await.unwrap();
            assert!(pending.iter().all(|a| a.user != u), "{injected:?}");
            assert!(app.publisher.accepted("alert").contains(&alerts[0].id));
        },
    )
    .await;
    let ops: Vec<_> = steps.iter().map(|s| s.injected.op).collect();
    for op in [
        "record_events",
        "get_user_limits",
        "create_alert_once",
        "claim_alert",
        "mark_alert_published",
    ] {
        assert!(ops.contains(&op), "{op} was not swept: {ops:?}");
    }
    assert!(steps.iter().any(|s| s.status == 503) && steps.iter().any(|s| s.status == 200));
}

#[tokio::test]
async fn a_failed_batch_of_several_users_is_completed_exactly_once_by_its_retry() {
    let app = spawn_app(NOW).await;
    seed_events(&app, "warmup", 1).await;
    let users = |u: &str| [format!("{u}-p"), format!("{u}-q"), format!("{u}-r")];
    let batch = |u: &str| -> Vec<Value> {
        let mut events = Vec::new();
        for (k, sub) in users(u).iter().enumerate() {
            for i in 0..3 {
                events.push(event(&format!("{sub}-{i}"), sub, 100 * k as u64 + i, TS));
            }
        }
        // The same event twice in one request: recorded once.
        events.push(events[0].clone());
        events
    };
    let steps = sweep(
        &app,
        "batch",
        "record_events",
        async |_, _| Value::Null,
        async |app, user, _| app.ingest(&batch(user)).await,
        async |app, user, _, retried, injected, _| {
            for sub in users(user) {
                app.assert_consistent(&sub, &format!("{injected:?}")).await;
                let audit = app.audit(&sub).await;
                assert_eq!(audit.event_ids.len(), 3, "{sub} {injected:?}");
                assert_eq!(audit.recorded.calls, 3, "{sub} {injected:?}");
            }
            let statuses: Vec<_> = retried.body["data"]["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["status"].as_str().unwrap().to_owned())
                .collect();
            assert_eq!(statuses.len(), 10);
            assert!(
                statuses.iter().all(|s| s == "recorded" || s == "duplicate"),
                "{statuses:?}"
            );
            assert_eq!(statuses[9], "duplicate", "{injected:?}");
        },
    )
    .await;
    // One record_events per user: the second and third users' writes were swept too.
    let writes = steps
        .iter()
        .filter(|s| s.injected.op == "record_events")
        .count();
    assert_eq!(writes, 6, "{steps:?}");
}

#[tokio::test]
async fn a_failed_reservation_leaves_holds_equal_to_open_reservations_and_an_orphan_expires() {
    let app = spawn_app(NOW).await;
    seed_events(&app, "warmup", 1).await;
    sweep(
        &app,
        "reserve",
        "reserve",
        async |app, user| {
            seed_events(app, user, 10).await;
            Value::Null
        },
        async |app, user, _| {
            app.check(json!({"user_id": user, "provider": "gemini", "model": "gemini-2.5-flash", "estimated_input_tokens": 500, "reserve": true, "reservation_ttl_seconds": 60}))
                .await
        },
        async |app, user, _, retried, injected, _| {
            let id = retried.body["data"]["reservation_id"].as_str().unwrap();
            let audit = app.audit(user).await;
            // A hold written before its answer was lost has no idempotency key: it stays
            // (counted against the limits) until its TTL.
            let orphans = usize::from(injected == Injected { op: "reserve", timing: Timing::After });
            assert_eq!(audit.open_reservations.len(), 1 + orphans, "{injected:?}");
            assert!(audit.open_reservations.iter().any(|r| r == id));
            assert_eq!(audit.held.calls, 1 + orphans as u64, "{injected:?}");

            // The acknowledged reservation is settled by its call's usage ...
            let mut e = event(&format!("{user}-settle"), user, 400, TS);
            e["reservation_id"] = json!(id);
            app.ingest(&[e]).await.assert_ok("settle");
            // ... and the orphan released by the aggregation after its TTL.
            app.set_now(instant(NOW) + chrono::Duration::seconds(61));
            app.aggregate().await.unwrap();
            app.set_now(instant(NOW));
            app.assert_consistent(user, "after expiry").await;
            let audit = app.audit(user).await;
            assert_eq!(audit.held, Default::default(), "{injected:?}");
            assert!(audit.open_reservations.is_empty());
            assert_eq!(audit.recorded.calls, 11, "{injected:?}");
        },
    )
    .await;
}

#[tokio::test]
async fn a_failed_settling_ingest_settles_its_reservation_once() {
    let app = spawn_app(NOW).await;
    seed_events(&app, "warmup", 1).await;
    sweep(
        &app,
        "settle",
        "record_events",
        async |app, user| {
            let r = app
                .check(json!({"user_id": user, "provider": "gemini", "estimated_input_tokens": 900, "reserve": true}))
                .await;
            r.assert_ok("reserve");
            r.body["data"]["reservation_id"].clone()
        },
        async |app, user, id| {
            let mut e = event(&format!("{user}-call"), user, 300, TS);
            e["reservation_id"] = id.clone();
            app.ingest(&[e]).await
        },
        async |app, user, id, _, injected, _| {
            let audit = app.audit(user).await;
            assert_eq!(audit.recorded.calls, 1, "{injected:?}");
            assert_eq!(audit.held, Default::default(), "{injected:?}: the hold is gone");
            let r = app
                .store
                .get_reservation(&app.tenant, id.as_str().unwrap())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(r.status, meter_core::domain::ReservationStatus::Settled);
        },
    )
    .await;
}

#[tokio::test]
async fn a_failed_release_is_completed_by_its_retry_and_frees_the_hold_once() {
    let app = spawn_app(NOW).await;
    seed_events(&app, "warmup", 1).await;
    sweep(
        &app,
        "release",
        "release_reservation",
        async |app, user| {
            seed_events(app, user, 2).await;
            let r = app
                .check(json!({"user_id": user, "provider": "gemini", "estimated_input_tokens": 900, "reserve": true}))
                .await;
            r.assert_ok("reserve");
            r.body["data"]["reservation_id"].clone()
        },
        async |app, _, id| app.release(id.as_str().unwrap()).await,
        async |app, user, _, retried, injected, _| {
            assert_eq!(retried.body["data"]["status"], "released", "{injected:?}");
            let audit = app.audit(user).await;
            assert_eq!(audit.held, Default::default(), "{injected:?}");
            assert_eq!(audit.recorded.calls, 2, "{injected:?}");
        },
    )
    .await;
}

#[tokio::test]
async fn a_failed_check_changes_nothing_and_its_retry_answers() {
    let app = spawn_app(NOW).await;
    seed_events(&app, "warmup", 1).await;
    sweep(
        &app,
        "check",
        "get_user_limits",
        async |app, user| {
            seed_events(app, user, 5).await;
            json!(app.audit(user).await.recorded.tokens)
        },
        async |app, user, _| {
            app.check(json!({"user_id": user, "provider": "gemini", "estimated_input_tokens": 10}))
                .await
        },
        async |app, user, tokens, retried, _, _| {
            assert_eq!(retried.body["data"]["allowed"], true);
            assert_eq!(retried.body["data"]["remaining"]["calls:gemini"], 95);
            let audit = app.audit(user).await;
            assert_eq!(json!(audit.recorded.tokens), *tokens);
            assert_eq!(audit.held, Default::default());
        },
    )
    .await;
}
