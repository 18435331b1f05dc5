//! `alert.resolved` passes read every remembered denial (issue 18): 500 older notes of a
//! budget that still denies (as a prepaid wallet that stays empty would) do not hide a
//! newer note that is allowed again from the aggregation pass.

use chrono::Duration;
use meter_core::budgets::Scope;
use meter_core::domain::{BudgetId, UserId};
use meter_core::service::aggregate::AggregateOptions;
use meter_core::store::DeniedLimit;
use meter_core::testing::TestClock;
use meter_tests::TestApp;
use rust_decimal::Decimal;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notes_that_still_deny_do_not_hide_newer_ones_from_a_pass() {
    let clock = TestClock::at("2026-03-10T12:00:00Z");
    let app = TestApp::spawn_at(&clock).await;
    app.put(
        "/api/subscription/budgets/day-cap",
        json!({"scope": {"kind": "org", "org_id": "acme"}, "applies_to": "each_member",
               "limits": {"calls:*": 5}, "window": "day", "mode": "hard"}),
    )
    .await
    .assert_ok("budget");
    let day = clock.now() - Duration::hours(12);
    let note = |user: &str, budget: Option<&str>, denied_minutes_ago: i64, resets_in: i64| {
        let u = UserId::parse(user).unwrap();
        DeniedLimit {
            tenant: app.tenant.clone(),
            key: format!("note/{user}"),
            user: u.clone(),
            org: None,
            budget_id: budget.map(|b| BudgetId::parse(b).unwrap()),
            plan: budget.is_none().then(|| "free".parse().unwrap()),
            scope: Some(Scope::User { user_id: u }),
            metric: "calls:*".into(),
            window: "day".into(),
            window_start: day,
            resets_at: clock.now() + Duration::minutes(resets_in),
            used: Decimal::from(5),
            limit: Decimal::from(5),
            denied_at: clock.now() - Duration::minutes(denied_minutes_ago),
        }
    };
    // 500 notes of the budget, still at its limit until the day ends.
    for i in 0..500 {
        let n = note(&format!("member-{i:03}"), Some("day-cap"), 600 - i, 720);
        assert!(app.store.note_denied_limit(&n).await.unwrap());
    }
    // A newer note whose window has ended: allowed again.
    let newer = note("late-one", None, 1, -1);
    assert!(app.store.note_denied_limit(&newer).await.unwrap());

    let report = app
        .meter
        .aggregate(&AggregateOptions {
            at: Some(clock.now()),
            ..AggregateOptions::default()
        })
        .await
        .unwrap();
    assert_eq!(
        report.alerts_resolved, 1,
        "the newer note, behind 500 older ones"
    );
    let left = app.store.denied_limits(None, 1000).await.unwrap();
    assert_eq!(left.len(), 500);
    assert!(left.iter().all(|d| d.key != newer.key));
}
