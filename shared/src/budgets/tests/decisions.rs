use std::collections::BTreeMap;

use proptest::prelude::*;
use rust_decimal_macros::dec;

use super::*;
use crate::domain::PlanName;
use crate::limits::{
    default_plans, DecisionError, Guard, MetricAmounts, Percentages, Plan, UsageStatus,
};
use crate::periods::{Period, Schedule};

fn now() -> DateTime<Utc> {
    utc(2025, 3, 14, 15, 30, 20)
}

fn budget_source(scope: Scope, id: &str) -> LimitSource {
    LimitSource::Budget {
        scope,
        budget_id: bid(id),
    }
}

/// A limit on `source`'s scope over `window` (calendar schedule), with its usage.
fn state(
    source: LimitSource,
    window: Window,
    entries: &[(&str, Decimal)],
    mode: Mode,
    usage: PeriodUsage,
) -> LimitState {
    let period = window.containing(now(), &Schedule::calendar()).unwrap();
    LimitState {
        counter: CounterKey::Scope {
            scope: source.scope().clone(),
            window,
            window_start: period.start,
        },
        source,
        window,
        period,
        limits: limits(entries),
        mode,
        usage,
    }
}

fn hard_budget(
    id: &str,
    window: Window,
    entries: &[(&str, Decimal)],
    u: PeriodUsage,
) -> LimitState {
    state(
        budget_source(org_scope("acme"), id),
        window,
        entries,
        Mode::Hard,
        u,
    )
}

fn denied(v: &Verdict) -> Option<&Denial> {
    match v {
        Verdict::Allowed(_) => None,
        Verdict::Denied(d) => Some(d),
    }
}

fn headroom(v: Verdict) -> Headroom {
    match v {
        Verdict::Allowed(h) => h,
        Verdict::Denied(d) => panic!("denied: {d:?}"),
    }
}

fn pro() -> Plan {
    default_plans()
        .into_iter()
        .find(|p| p.name.as_str() == "pro")
        .unwrap()
}

/// An org on Pro with a daily $5, a monthly $50 and 60 calls a minute, as `applicable`
/// builds them, with the usage of each counter.
fn acme_states(minute_calls: u64, day_cost: Decimal, month_cost: Decimal) -> Vec<LimitState> {
    let pro = pro();
    let free = default_plans().remove(0);
    let budgets = [
        budget(
            "daily",
            org_scope("acme"),
            Window::Day,
            &[("cost_usd", dec!(5))],
        ),
        budget(
            "monthly",
            org_scope("acme"),
            Window::Month,
            &[("cost_usd", dec!(50))],
        ),
        budget(
            "rate",
            org_scope("acme"),
            Window::Minute,
            &[("calls:*", dec!(60))],
        ),
    ];
    let inputs = PlanInputs {
        free: &free,
        user: None,
        org: Some(Subscribed {
            plan: &pro,
            schedule: Schedule::calendar(),
        }),
    };
    let found = applicable(
        &budgets,
        &call_scopes("u1", Some("acme"), None),
        &inputs,
        now(),
    )
    .unwrap();
    found
        .into_iter()
        .map(|a| {
            let u = match a.window {
                Window::Minute => recorded("gemini", minute_calls, 0, dec!(0)),
                Window::Day => recorded("gemini", minute_calls, 0, day_cost),
                _ => recorded("gemini", minute_calls, 0, month_cost),
            };
            a.with_usage(u)
        })
        .collect()
}

#[test]
fn a_daily_cap_a_monthly_cap_and_a_rate_limit_on_one_scope() {
    let (minute_end, day_end, month_end) = (
        utc(2025, 3, 14, 15, 31, 0),
        day(2025, 3, 15),
        day(2025, 4, 1),
    );
    type Case = (
        &'static str,
        (u64, Decimal, Decimal),
        Option<Decimal>,
        Option<(&'static str, &'static str, DateTime<Utc>)>,
    );
    let cases: Vec<Case> = vec![
        ("room everywhere", (10, dec!(1), dec!(10)), None, None),
        (
            "the 61st call of the minute",
            (60, dec!(1), dec!(10)),
            None,
            Some(("rate", "calls:*", minute_end)),
        ),
        (
            "the 60th call of the minute",
            (59, dec!(1), dec!(10)),
            None,
            None,
        ),
        (
            "the day's $5 used, no estimate",
            (10, dec!(5), dec!(10)),
            None,
            Some(("daily", "cost_usd", day_end)),
        ),
        (
            "an estimate past the day's cap",
            (10, dec!(4.5), dec!(10)),
            Some(dec!(0.51)),
            Some(("daily", "cost_usd", day_end)),
        ),
        (
            "an estimate exactly at the day's cap",
            (10, dec!(4.5), dec!(10)),
            Some(dec!(0.5)),
            None,
        ),
        (
            "day and month exhausted: the month resets last",
            (10, dec!(5), dec!(50)),
            None,
            Some(("monthly", "cost_usd", month_end)),
        ),
        (
            "minute and day exhausted: the day resets last",
            (60, dec!(5), dec!(10)),
            None,
            Some(("daily", "cost_usd", day_end)),
        ),
        (
            "all three exhausted",
            (60, dec!(5), dec!(50)),
            None,
            Some(("monthly", "cost_usd", month_end)),
        ),
    ];
    for (name, (calls, day_cost, month_cost), estimate, expected) in cases {
        let states = acme_states(calls, day_cost, month_cost);
        let v = decide_all(&states, &call("gemini", 0, estimate)).unwrap();
        let got = denied(&v).map(|d| {
            (
                d.source.budget_id().unwrap().to_string(),
                d.metric.to_string(),
                d.resets_at,
            )
        });
        let expected = expected.map(|(id, metric, at)| (id.to_owned(), metric.to_owned(), at));
        assert_eq!(got, expected, "{name}");
        if let Some(d) = denied(&v) {
            assert_eq!(d.scope(), &org_scope("acme"), "{name}");
            assert_eq!(d.resets_at, d.period.end, "{name}");
        }
    }
}

#[test]
fn a_denial_carries_what_the_429_details_need() {
    let states = acme_states(10, dec!(4.5), dec!(10));
    let v = decide_all(&states, &call("gemini", 0, Some(dec!(0.75)))).unwrap();
    assert_eq!(
        denied(&v),
        Some(&Denial {
            source: budget_source(org_scope("acme"), "daily"),
            window: Window::Day,
            period: Period {
                start: day(2025, 3, 14),
                end: day(2025, 3, 15)
            },
            metric: Metric::CostUsd,
            used: dec!(4.5),
            limit: dec!(5),
            requested: dec!(0.75),
            resets_at: day(2025, 3, 15),
        })
    );
}

#[test]
fn an_allowed_call_sees_the_tightest_limit_of_each_metric() {
    let h = headroom(
        decide_all(
            &acme_states(10, dec!(1), dec!(10)),
            &call("gemini", 0, None),
        )
        .unwrap(),
    );
    let by = |metric: &str| {
        let l = &h.limited_by[&m(metric)];
        (
            l.source
                .budget_id()
                .map_or_else(|| l.source.plan().unwrap().to_string(), ToString::to_string),
            l.window,
        )
    };
    assert_eq!(h.remaining.0[&Metric::CostUsd], dec!(4));
    assert_eq!(h.usage_percentages.0[&Metric::CostUsd], dec!(20.00));
    assert_eq!(by("cost_usd"), ("daily".to_owned(), Window::Day));
    assert_eq!(h.remaining.0[&m("calls:*")], dec!(50));
    assert_eq!(by("calls:*"), ("rate".to_owned(), Window::Minute));
    assert_eq!(h.remaining.0[&m("calls:gemini")], dec!(4990));
    assert_eq!(by("calls:gemini"), ("pro".to_owned(), Window::Period));
    assert_eq!(
        h.limited_by[&m("calls:gemini")].source.scope(),
        &org_scope("acme")
    );
    assert_eq!(h.usage_status, UsageStatus::Active);
    assert_eq!(
        h.remaining.0.len(),
        pro().limits.0.len() + 1,
        "every hard metric, plus calls:* of the rate limit"
    );
}

#[test]
fn the_tightest_limit_is_the_least_remaining_then_the_highest_percentage() {
    let cost = |limit, used| {
        move |id: &str| {
            hard_budget(
                id,
                Window::Month,
                &[("cost_usd", limit)],
                recorded("gemini", 0, 0, used),
            )
        }
    };
    // (limits as (limit, used), expected budget, remaining, percentage)
    type Case = (
        &'static str,
        Vec<(Decimal, Decimal)>,
        &'static str,
        Decimal,
        Decimal,
    );
    let cases: [Case; 4] = [
        (
            "least remaining",
            vec![
                (dec!(150), dec!(10)),
                (dec!(50), dec!(40)),
                (dec!(5), dec!(4)),
            ],
            "b2",
            dec!(1),
            dec!(80.00),
        ),
        (
            "a big cap nearly used beats a small one barely used",
            vec![(dec!(5), dec!(0)), (dec!(50), dec!(46))],
            "b1",
            dec!(4),
            dec!(92.00),
        ),
        (
            "same remaining: the higher percentage",
            vec![(dec!(20), dec!(10)), (dec!(100), dec!(90))],
            "b1",
            dec!(10),
            dec!(90.00),
        ),
        (
            "a full tie: the first",
            vec![(dec!(20), dec!(10)), (dec!(20), dec!(10))],
            "b0",
            dec!(10),
            dec!(50.00),
        ),
    ];
    for (name, entries, expected, left, pct) in cases {
        let states: Vec<LimitState> = entries
            .iter()
            .enumerate()
            .map(|(i, &(l, u))| cost(l, u)(&format!("b{i}")))
            .collect();
        let h = headroom(decide_all(&states, &call("gemini", 0, None)).unwrap());
        let source = &h.limited_by[&Metric::CostUsd].source;
        assert_eq!(source.budget_id().unwrap().as_str(), expected, "{name}");
        assert_eq!(h.remaining.0[&Metric::CostUsd], left, "{name}");
        assert_eq!(h.usage_percentages.0[&Metric::CostUsd], pct, "{name}");
    }
}

#[test]
fn a_soft_budget_never_denies_and_is_not_a_limit_in_the_answer() {
    let soft = state(
        budget_source(org_scope("acme"), "soft"),
        Window::Day,
        &[("cost_usd", dec!(5)), ("calls:openai", dec!(0))],
        Mode::Soft,
        recorded("openai", 3, 0, dec!(10)),
    );
    let hard = hard_budget(
        "hard",
        Window::Month,
        &[("cost_usd", dec!(100))],
        recorded("openai", 3, 0, dec!(10)),
    );
    for estimate in [None, Some(dec!(50))] {
        let v = decide_all(std::slice::from_ref(&soft), &call("openai", 0, estimate)).unwrap();
        assert_eq!(
            headroom(v).limited_by.len(),
            0,
            "soft only: nothing limits the call"
        );
        let h = headroom(
            decide_all(&[soft.clone(), hard.clone()], &call("openai", 0, estimate)).unwrap(),
        );
        assert_eq!(h.remaining.0[&Metric::CostUsd], dec!(90));
        assert_eq!(
            h.limited_by[&Metric::CostUsd]
                .source
                .budget_id()
                .unwrap()
                .as_str(),
            "hard"
        );
        assert_eq!(h.usage_status, UsageStatus::Active);
    }
    assert_eq!(hard_limit_reached(&soft), Vec::<Metric>::new());
}

#[test]
fn ties_on_reset_time_report_the_first_limit_given() {
    let plan = state(
        LimitSource::Plan {
            scope: user_scope("u1"),
            plan: PlanName::free(),
        },
        Window::Period,
        &[("calls:gemini", dec!(100))],
        Mode::Hard,
        recorded("gemini", 100, 0, dec!(0)),
    );
    let month = state(
        budget_source(user_scope("u1"), "month"),
        Window::Month,
        &[("calls:*", dec!(10))],
        Mode::Hard,
        recorded("gemini", 100, 0, dec!(0)),
    );
    let week = state(
        budget_source(user_scope("u1"), "week"),
        Window::Week,
        &[("calls:*", dec!(10))],
        Mode::Hard,
        recorded("gemini", 100, 0, dec!(0)),
    );
    let c = call("gemini", 0, None);
    let reported = |states: &[LimitState]| {
        denied(&decide_all(states, &c).unwrap())
            .unwrap()
            .source
            .clone()
    };
    assert_eq!(reported(&[plan.clone(), month.clone()]), plan.source);
    assert_eq!(reported(&[month.clone(), plan.clone()]), month.source);
    assert_eq!(
        reported(&[week.clone(), plan.clone()]),
        plan.source,
        "the period resets after the week"
    );
    assert_eq!(
        reported(std::slice::from_ref(&week))
            .budget_id()
            .unwrap()
            .as_str(),
        "week"
    );
}

#[test]
fn no_limits_allow_and_a_negative_estimate_is_an_error() {
    let v = decide_all(&[], &call("gemini", 10, None)).unwrap();
    let h = headroom(v);
    assert!(h.remaining.0.is_empty() && h.limited_by.is_empty());
    assert_eq!(h.usage_status, UsageStatus::Active);
    assert_eq!(
        decide_all(&[], &call("gemini", 0, Some(dec!(-0.01)))),
        Err(DecisionError::NegativeEstimate)
    );
}

#[test]
fn the_usage_status_is_the_worst_hard_limit() {
    let states = [
        hard_budget(
            "a",
            Window::Day,
            &[("calls:tavily", dec!(10))],
            recorded("tavily", 10, 0, dec!(0)),
        ),
        hard_budget(
            "b",
            Window::Day,
            &[("cost_usd", dec!(10))],
            recorded("tavily", 10, 0, dec!(8)),
        ),
    ];
    // The tavily limit is reached, but a gemini call is still allowed.
    let h = headroom(decide_all(&states, &call("gemini", 0, None)).unwrap());
    assert_eq!(h.usage_status, UsageStatus::LimitReached);
    let h = headroom(decide_all(&states[1..], &call("gemini", 0, None)).unwrap());
    assert_eq!(h.usage_status, UsageStatus::Warning);
}

#[test]
fn reservation_guards_are_grouped_per_counter() {
    let user_period = |id: &str, entries: &[(&str, Decimal)], mode| {
        state(
            budget_source(user_scope("u1"), id),
            Window::Period,
            entries,
            mode,
            PeriodUsage::default(),
        )
    };
    let plan = LimitState {
        source: LimitSource::Plan {
            scope: user_scope("u1"),
            plan: PlanName::free(),
        },
        ..user_period(
            "-",
            &[
                ("calls:gemini", dec!(100)),
                ("calls:openai", dec!(0)),
                ("cost_usd", dec!(2)),
            ],
            Mode::Hard,
        )
    };
    let mine = user_period(
        "mine",
        &[("calls:*", dec!(500)), ("cost_usd", dec!(2))],
        Mode::Hard,
    );
    let weekly_soft = state(
        budget_source(user_scope("u1"), "weekly"),
        Window::Week,
        &[("cost_usd", dec!(1))],
        Mode::Soft,
        PeriodUsage::default(),
    );
    let members = LimitState {
        counter: CounterKey::Member {
            scope: org_scope("acme"),
            user: user("u1"),
            window: Window::Day,
            window_start: day(2025, 3, 14),
        },
        ..hard_budget(
            "members",
            Window::Day,
            &[("tokens:*", dec!(1000))],
            PeriodUsage::default(),
        )
    };
    let c = call("gemini", 100, Some(dec!(0.10)));
    let groups = reservation_guards(
        &[plan.clone(), weekly_soft.clone(), mine, members.clone()],
        &c,
    );
    let guard = |metric: &str, increment, limit| Guard {
        metric: m(metric),
        increment,
        limit,
        strict: false,
    };
    assert_eq!(
        groups,
        [
            CounterGuards {
                counter: plan.counter.clone(),
                period: plan.period,
                guards: vec![
                    guard("calls:gemini", dec!(1), dec!(100)),
                    guard("cost_usd", dec!(0.10), dec!(2)),
                    guard("calls:*", dec!(1), dec!(500)),
                ],
            },
            CounterGuards {
                counter: weekly_soft.counter.clone(),
                period: weekly_soft.period,
                guards: vec![],
            },
            CounterGuards {
                counter: members.counter.clone(),
                period: members.period,
                guards: vec![guard("tokens:*", dec!(100), dec!(1000))],
            },
        ],
        "one entry per counter; calls:openai does not cover gemini; the repeated cost guard once"
    );
    let calls: Vec<String> = groups[0]
        .call_guards()
        .map(|g| g.metric.to_string())
        .collect();
    assert_eq!(calls, ["calls:gemini", "calls:*"]);
    assert_eq!(groups[2].call_guards().count(), 0);
}

#[test]
fn hard_limit_reached_table() {
    // (limit, recorded cost, held cost, expected)
    let cases = [
        (dec!(5), dec!(4.99), dec!(0), false),
        (dec!(5), dec!(5), dec!(0), true),
        (dec!(5), dec!(7), dec!(0), true),
        (dec!(5), dec!(4), dec!(1), false),
        (dec!(0), dec!(1), dec!(0), false),
    ];
    for (limit, rec, held_cost, expected) in cases {
        let held = Tally {
            cost_usd: held_cost,
            ..Tally::default()
        };
        let s = hard_budget(
            "b",
            Window::Day,
            &[("cost_usd", limit), ("calls:*", dec!(100))],
            usage("gemini", 1, 0, rec, held),
        );
        let want: Vec<Metric> = if expected {
            vec![Metric::CostUsd]
        } else {
            vec![]
        };
        assert_eq!(hard_limit_reached(&s), want, "{rec}+{held_cost} of {limit}");
    }
}

#[test]
fn limited_by_is_the_source_with_its_window_in_json() {
    let l = LimitedBy {
        source: budget_source(org_scope("acme"), "daily"),
        window: Window::Day,
    };
    let json = serde_json::json!({"scope": {"kind": "org", "org_id": "acme"}, "budget_id": "daily", "window": "day"});
    assert_eq!(serde_json::to_value(&l).unwrap(), json);
    assert_eq!(serde_json::from_value::<LimitedBy>(json).unwrap(), l);
    let p = LimitedBy {
        source: LimitSource::Plan {
            scope: user_scope("u1"),
            plan: PlanName::free(),
        },
        window: Window::Period,
    };
    assert_eq!(
        serde_json::to_value(&p).unwrap(),
        serde_json::json!({"scope": {"kind": "user", "user_id": "u1"}, "plan": "free", "window": "period"})
    );
}

fn windows() -> impl Strategy<Value = Window> {
    prop::sample::select(vec![
        Window::Minute,
        Window::Hour,
        Window::Day,
        Window::Week,
        Window::Month,
    ])
}

proptest! {
    /// With calls limits on several windows, a call is allowed exactly when every hard
    /// limit has room, and a denial reports a denying limit that resets last.
    #[test]
    fn allowed_iff_every_hard_limit_allows(
        specs in prop::collection::vec((windows(), 0u64..20, 0u64..25, any::<bool>()), 0..6)
    ) {
        let states: Vec<LimitState> = specs
            .iter()
            .enumerate()
            .map(|(i, &(w, limit, used, is_hard))| {
                let mode = if is_hard { Mode::Hard } else { Mode::Soft };
                state(budget_source(org_scope("acme"), &format!("b{i}")), w, &[("calls:*", Decimal::from(limit))], mode, recorded("gemini", used, 0, dec!(0)))
            })
            .collect();
        let v = decide_all(&states, &call("gemini", 0, None)).unwrap();
        let denying: Vec<&LimitState> = states
            .iter()
            .zip(&specs)
            .filter(|(_, &(_, limit, used, is_hard))| is_hard && used >= limit)
            .map(|(s, _)| s)
            .collect();
        prop_assert_eq!(v.is_allowed(), denying.is_empty());
        if let Some(d) = denied(&v) {
            let last = denying.iter().map(|s| s.period.end).max().unwrap();
            prop_assert_eq!(d.resets_at, last);
            prop_assert!(denying.iter().any(|s| s.source == d.source));
        }
    }
}

/// [`headroom`](super::super::headroom) as first written: each hard limit's `remaining` and
/// `percentages` maps, the tightest per metric (least remaining, then the higher
/// percentage, then the first), the worst status.
fn headroom_by_maps(limits: &[LimitState]) -> Headroom {
    let mut best: BTreeMap<Metric, (Decimal, Decimal, usize)> = BTreeMap::new();
    let mut status = UsageStatus::Active;
    for (i, s) in limits
        .iter()
        .enumerate()
        .filter(|(_, s)| s.mode == Mode::Hard)
    {
        let pcts = crate::limits::percentages(&s.limits, &s.usage);
        for (metric, left) in crate::limits::remaining(&s.limits, &s.usage) {
            let pct = pcts[&metric];
            if best
                .get(&metric)
                .is_none_or(|&(l, p, _)| left < l || (left == l && pct > p))
            {
                best.insert(metric, (left, pct, i));
            }
        }
        let st = crate::limits::usage_status(&s.limits, &s.usage);
        let rank = |u: UsageStatus| u as u8;
        if rank(st) > rank(status) {
            status = st;
        }
    }
    let mut h = Headroom {
        remaining: MetricAmounts::default(),
        usage_percentages: Percentages::default(),
        limited_by: BTreeMap::new(),
        usage_status: status,
    };
    for (metric, (left, pct, i)) in best {
        h.remaining.0.insert(metric.clone(), left);
        h.usage_percentages.0.insert(metric.clone(), pct);
        let by = LimitedBy {
            source: limits[i].source.clone(),
            window: limits[i].window,
        };
        h.limited_by.insert(metric, by);
    }
    h
}

proptest! {
    /// The one-pass headroom (issue 23) answers what the per-limit maps answer: the same
    /// remaining, percentages, limiting source per metric and status, ties included.
    #[test]
    fn headroom_in_one_pass_equals_the_maps(
        specs in prop::collection::vec(
            (windows(), 0u64..12, 0u64..12, 0u64..40, 0u64..40, any::<bool>()),
            0..6,
        )
    ) {
        let states: Vec<LimitState> = specs
            .iter()
            .enumerate()
            .map(|(i, &(w, calls_limit, calls, tokens_limit, tokens, is_hard))| {
                let mode = if is_hard { Mode::Hard } else { Mode::Soft };
                let entries = [
                    ("calls:*", Decimal::from(calls_limit)),
                    ("tokens:gemini", Decimal::from(tokens_limit)),
                    ("cost_usd", Decimal::from(calls_limit) / dec!(4)),
                ];
                let cost = Decimal::from(calls) / dec!(5);
                state(budget_source(org_scope("acme"), &format!("b{i}")), w, &entries, mode, recorded("gemini", calls, tokens, cost))
            })
            .collect();
        prop_assert_eq!(super::super::headroom(&states), headroom_by_maps(&states));
    }
}
