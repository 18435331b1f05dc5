//! What events and allowed checks write to budget counters.

use rust_decimal_macros::dec;

use super::*;
use crate::periods::Schedule;

fn gemini() -> ProviderId {
    ProviderId::parse("gemini").unwrap()
}

fn limits_at(budgets: &[Budget], call: &CallScopes) -> Vec<Applicable> {
    let cal = Schedule::calendar();
    budget_limits(budgets, call, &cal, &cal, utc(2025, 3, 10, 15, 30, 20)).unwrap()
}

#[test]
fn an_event_adds_its_tally_once_per_counter_without_its_call_in_rate_limit_windows() {
    let budgets = [
        budget(
            "day-a",
            org_scope("acme"),
            Window::Day,
            &[("calls:*", dec!(10))],
        ),
        // Same scope and window: the same pooled counter, written once.
        budget(
            "day-b",
            org_scope("acme"),
            Window::Day,
            &[("cost_usd", dec!(5))],
        ),
        budget(
            "rate",
            team_scope("acme", "red"),
            Window::Minute,
            &[("calls:*", dec!(60))],
        ),
        // The user's period counter is the plan's: not a budget counter.
        budget(
            "own",
            user_scope("ann"),
            Window::Period,
            &[("cost_usd", dec!(2))],
        ),
    ];
    let call = call_scopes("ann", Some("acme"), Some("red"));
    let tally = Tally {
        calls: 1,
        tokens: 30,
        cost_usd: dec!(0.02),
    };
    let writes = event_writes(&limits_at(&budgets, &call), &gemini(), &tally);
    let got: Vec<(String, Tally)> = writes
        .iter()
        .map(|w| (w.counter.key(), w.add.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "org#acme#day#2025-03-10T00:00:00Z".to_owned(),
                tally.clone()
            ),
            (
                "team#acme#red#minute#2025-03-10T15:30:00Z".to_owned(),
                Tally { calls: 0, ..tally }
            ),
        ]
    );
    assert!(
        writes.iter().all(|w| w.guards.is_empty()),
        "ingest never guards"
    );
    assert_eq!(writes[0].window_end, day(2025, 3, 11));
}

#[test]
fn an_allowed_check_counts_its_call_in_rate_limit_windows_guarded_by_hard_call_limits() {
    let mut soft = budget(
        "soft-hour",
        org_scope("acme"),
        Window::Hour,
        &[("calls:*", dec!(5))],
    );
    soft.mode = Mode::Soft;
    let budgets = [
        budget(
            "rate",
            org_scope("acme"),
            Window::Minute,
            &[("calls:*", dec!(60)), ("cost_usd", dec!(1))],
        ),
        soft,
        budget(
            "day",
            org_scope("acme"),
            Window::Day,
            &[("calls:*", dec!(10))],
        ),
    ];
    let call = call_scopes("ann", Some("acme"), None);
    let states: Vec<LimitState> = limits_at(&budgets, &call)
        .into_iter()
        .map(|a| a.with_usage(PeriodUsage::default()))
        .collect();
    let estimate = CallEstimate {
        provider: gemini(),
        estimated_tokens: 0,
        estimated_cost: Some(dec!(0.5)),
    };
    let writes = check_call_writes(&states, &estimate);
    let keys: Vec<String> = writes.iter().map(|w| w.counter.key()).collect();
    // The minute and the (soft) hour counters; the day counts calls when recorded.
    assert_eq!(
        keys,
        vec![
            "org#acme#minute#2025-03-10T15:30:00Z".to_owned(),
            "org#acme#hour#2025-03-10T15:00:00Z".to_owned(),
        ]
    );
    assert!(writes.iter().all(|w| w.add
        == Tally {
            calls: 1,
            ..Tally::default()
        }));
    // Only the hard budget's calls limit guards; a soft budget never does.
    assert_eq!(writes[0].guards.len(), 1);
    assert_eq!(writes[0].guards[0].metric, m("calls:*"));
    assert_eq!(writes[0].guards[0].limit, dec!(60));
    assert!(writes[1].guards.is_empty());
}
