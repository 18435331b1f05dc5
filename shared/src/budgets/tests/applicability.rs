use rust_decimal_macros::dec;

use super::*;
use crate::domain::PlanName;
use crate::limits::{default_plans, Plan};
use crate::periods::{Anchor, BillingCycle, Period, Schedule};

fn plans() -> Vec<Plan> {
    default_plans()
}

fn plan<'a>(plans: &'a [Plan], name: &str) -> &'a Plan {
    plans.iter().find(|p| p.name.as_str() == name).unwrap()
}

fn anniversary(origin: DateTime<Utc>) -> Schedule {
    Schedule::new(Anchor::Anniversary, origin, BillingCycle::Monthly)
}

fn plan_source(scope: Scope, name: &str) -> LimitSource {
    LimitSource::Plan {
        scope,
        plan: PlanName::parse(name).unwrap(),
    }
}

fn budget_source(scope: Scope, id: &str) -> LimitSource {
    LimitSource::Budget {
        scope,
        budget_id: bid(id),
    }
}

fn sources(found: &[Applicable]) -> Vec<LimitSource> {
    found.iter().map(|a| a.source.clone()).collect()
}

fn now() -> DateTime<Utc> {
    utc(2025, 3, 14, 15, 30, 0)
}

#[test]
fn which_plans_apply() {
    let plans = plans();
    let (free, basic, pro) = (
        plan(&plans, "free"),
        plan(&plans, "basic"),
        plan(&plans, "pro"),
    );
    let sub = |p| {
        Some(Subscribed {
            plan: p,
            schedule: Schedule::calendar(),
        })
    };
    let u1 = || user_scope("u1");
    let acme = || org_scope("acme");
    let cases: Vec<(&str, CallScopes, PlanInputs<'_>, Vec<LimitSource>)> = vec![
        (
            "a user alone without a subscription is on Free",
            call_scopes("u1", None, None),
            PlanInputs {
                free,
                user: None,
                org: None,
            },
            vec![plan_source(u1(), "free")],
        ),
        (
            "a subscribed user alone is on their plan",
            call_scopes("u1", None, None),
            PlanInputs {
                free,
                user: sub(basic),
                org: None,
            },
            vec![plan_source(u1(), "basic")],
        ),
        (
            "a subscribed org stands in for the Free plan",
            call_scopes("u1", Some("acme"), None),
            PlanInputs {
                free,
                user: None,
                org: sub(pro),
            },
            vec![plan_source(acme(), "pro")],
        ),
        (
            "the user's own subscription still applies beside the org's",
            call_scopes("u1", Some("acme"), Some("red")),
            PlanInputs {
                free,
                user: sub(basic),
                org: sub(pro),
            },
            vec![plan_source(u1(), "basic"), plan_source(acme(), "pro")],
        ),
        (
            "an org without a subscription leaves the user on Free",
            call_scopes("u1", Some("acme"), None),
            PlanInputs {
                free,
                user: None,
                org: None,
            },
            vec![plan_source(u1(), "free")],
        ),
        (
            "an org subscription is ignored when the call names no org",
            call_scopes("u1", None, None),
            PlanInputs {
                free,
                user: None,
                org: sub(pro),
            },
            vec![plan_source(u1(), "free")],
        ),
    ];
    for (name, call, inputs, expected) in cases {
        let found = applicable(&[], &call, &inputs, now()).unwrap();
        assert_eq!(sources(&found), expected, "{name}");
        for a in &found {
            assert_eq!((a.window, a.mode), (Window::Period, Mode::Hard), "{name}");
            assert_eq!(
                a.counter,
                CounterKey::Scope {
                    scope: a.source.scope().clone(),
                    window: Window::Period,
                    window_start: day(2025, 3, 1),
                },
                "{name}: a plan counts against its scope's period counter"
            );
        }
    }
}

#[test]
fn plans_count_over_their_subscribers_period() {
    let plans = plans();
    let inputs = PlanInputs {
        free: plan(&plans, "free"),
        user: Some(Subscribed {
            plan: plan(&plans, "basic"),
            schedule: anniversary(utc(2025, 1, 20, 8, 0, 0)),
        }),
        org: Some(Subscribed {
            plan: plan(&plans, "pro"),
            schedule: anniversary(day(2024, 12, 5)),
        }),
    };
    let found = applicable(&[], &call_scopes("u1", Some("acme"), None), &inputs, now()).unwrap();
    let periods: Vec<Period> = found.iter().map(|a| a.period).collect();
    assert_eq!(
        periods,
        [
            Period {
                start: utc(2025, 2, 20, 8, 0, 0),
                end: utc(2025, 3, 20, 8, 0, 0)
            },
            Period {
                start: day(2025, 3, 5),
                end: day(2025, 4, 5)
            },
        ]
    );
    assert_eq!(found[1].limits, plan(&plans, "pro").limits);
}

#[test]
fn a_team_without_an_org_is_refused_before_applicability() {
    assert_eq!(
        CallScopes::new(user("u1"), None, Some(team("red"))),
        Err(ScopeError::TeamWithoutOrg)
    );
}

#[test]
fn only_budgets_of_the_named_scopes_apply_in_scope_order() {
    let plans = plans();
    let inputs = PlanInputs {
        free: plan(&plans, "free"),
        user: None,
        org: None,
    };
    let cost = [("cost_usd", dec!(5))];
    let budgets = vec![
        budget("t-red", team_scope("acme", "red"), Window::Day, &cost),
        budget(
            "other-team",
            team_scope("globex", "red"),
            Window::Day,
            &cost,
        ),
        budget("blue", team_scope("acme", "blue"), Window::Day, &cost),
        budget("z-org", org_scope("acme"), Window::Day, &cost),
        budget("a-org", org_scope("acme"), Window::Month, &cost),
        budget("globex", org_scope("globex"), Window::Day, &cost),
        budget("u2", user_scope("u2"), Window::Day, &cost),
        budget("u1", user_scope("u1"), Window::Day, &cost),
    ];
    let cases = [
        (
            call_scopes("u1", Some("acme"), Some("red")),
            vec![
                plan_source(user_scope("u1"), "free"),
                budget_source(user_scope("u1"), "u1"),
                budget_source(org_scope("acme"), "a-org"),
                budget_source(org_scope("acme"), "z-org"),
                budget_source(team_scope("acme", "red"), "t-red"),
            ],
        ),
        (
            call_scopes("u1", Some("acme"), None),
            vec![
                plan_source(user_scope("u1"), "free"),
                budget_source(user_scope("u1"), "u1"),
                budget_source(org_scope("acme"), "a-org"),
                budget_source(org_scope("acme"), "z-org"),
            ],
        ),
        (
            call_scopes("u3", None, None),
            vec![plan_source(user_scope("u3"), "free")],
        ),
    ];
    for (call, expected) in cases {
        let found = applicable(&budgets, &call, &inputs, now()).unwrap();
        assert_eq!(sources(&found), expected, "{call:?}");
    }
}

#[test]
fn counters_pool_by_scope_and_window_and_split_each_member() {
    let plans = plans();
    let inputs = PlanInputs {
        free: plan(&plans, "free"),
        user: None,
        org: None,
    };
    let cost = [("cost_usd", dec!(20))];
    let mut members = budget("members", org_scope("acme"), Window::Month, &cost);
    members.applies_to = AppliesTo::EachMember;
    let mut team_members = budget(
        "team-members",
        team_scope("acme", "red"),
        Window::Day,
        &cost,
    );
    team_members.applies_to = AppliesTo::EachMember;
    let budgets = vec![
        members,
        team_members,
        budget("pooled", org_scope("acme"), Window::Month, &cost),
        budget(
            "rate",
            team_scope("acme", "red"),
            Window::Minute,
            &[("calls:*", dec!(60))],
        ),
        budget("mine", user_scope("u1"), Window::Period, &cost),
    ];
    let counters = |u: &str| -> Vec<(String, CounterKey)> {
        applicable(
            &budgets,
            &call_scopes(u, Some("acme"), Some("red")),
            &inputs,
            now(),
        )
        .unwrap()
        .into_iter()
        .map(|a| {
            let name = a
                .source
                .budget_id()
                .map_or_else(|| "plan".to_owned(), ToString::to_string);
            (name, a.counter)
        })
        .collect()
    };
    let pooled = |scope, window, start| CounterKey::Scope {
        scope,
        window,
        window_start: start,
    };
    let member = |scope, u: &str, window, start| CounterKey::Member {
        scope,
        user: user(u),
        window,
        window_start: start,
    };
    let month = day(2025, 3, 1);
    let expected = |u: &str| {
        vec![
            (
                "plan".to_owned(),
                pooled(user_scope(u), Window::Period, month),
            ),
            (
                "members".to_owned(),
                member(org_scope("acme"), u, Window::Month, month),
            ),
            (
                "pooled".to_owned(),
                pooled(org_scope("acme"), Window::Month, month),
            ),
            (
                "rate".to_owned(),
                pooled(
                    team_scope("acme", "red"),
                    Window::Minute,
                    utc(2025, 3, 14, 15, 30, 0),
                ),
            ),
            (
                "team-members".to_owned(),
                member(team_scope("acme", "red"), u, Window::Day, day(2025, 3, 14)),
            ),
        ]
    };
    let mut u1 = expected("u1");
    // u1's own `period` budget shares the counter of u1's plan.
    u1.insert(
        1,
        (
            "mine".to_owned(),
            pooled(user_scope("u1"), Window::Period, month),
        ),
    );
    assert_eq!(counters("u1"), u1);
    assert_eq!(counters("u2"), expected("u2"));
}

#[test]
fn period_budgets_follow_their_scopes_subscriber() {
    let plans = plans();
    let cost = [("cost_usd", dec!(20))];
    let budgets = vec![
        budget("mine", user_scope("u1"), Window::Period, &cost),
        budget("org", org_scope("acme"), Window::Period, &cost),
        budget("team", team_scope("acme", "red"), Window::Period, &cost),
    ];
    let call = call_scopes("u1", Some("acme"), Some("red"));
    let starts = |inputs: &PlanInputs<'_>| -> Vec<DateTime<Utc>> {
        applicable(&budgets, &call, inputs, now())
            .unwrap()
            .iter()
            .filter(|a| a.source.budget_id().is_some())
            .map(|a| a.period.start)
            .collect()
    };
    let unsubscribed = PlanInputs {
        free: plan(&plans, "free"),
        user: None,
        org: None,
    };
    assert_eq!(starts(&unsubscribed), [day(2025, 3, 1); 3]);
    let subscribed = PlanInputs {
        user: Some(Subscribed {
            plan: plan(&plans, "basic"),
            schedule: anniversary(day(2025, 1, 10)),
        }),
        org: Some(Subscribed {
            plan: plan(&plans, "pro"),
            schedule: anniversary(day(2025, 1, 12)),
        }),
        ..unsubscribed
    };
    assert_eq!(
        starts(&subscribed),
        [day(2025, 3, 10), day(2025, 3, 12), day(2025, 3, 12)]
    );
}

#[test]
fn applicable_carries_the_budgets_limits_window_and_mode() {
    let plans = plans();
    let inputs = PlanInputs {
        free: plan(&plans, "free"),
        user: None,
        org: None,
    };
    let mut soft = budget(
        "soft",
        org_scope("acme"),
        Window::Week,
        &[("tokens:*", dec!(1000))],
    );
    soft.mode = Mode::Soft;
    let found = applicable(
        std::slice::from_ref(&soft),
        &call_scopes("u1", Some("acme"), None),
        &inputs,
        now(),
    )
    .unwrap();
    let a = &found[1];
    assert_eq!((a.window, a.mode), (Window::Week, Mode::Soft));
    assert_eq!(a.limits, soft.limits);
    assert_eq!(
        a.period,
        Period {
            start: day(2025, 3, 10),
            end: day(2025, 3, 17)
        }
    );
    let state = a.clone().with_usage(recorded("gemini", 1, 10, dec!(0)));
    assert_eq!(state.counter, a.counter);
    assert_eq!(state.usage, recorded("gemini", 1, 10, dec!(0)));
}

#[test]
fn counter_keys_are_distinct_text() {
    let start = day(2025, 3, 14);
    let keys = [
        CounterKey::Scope {
            scope: org_scope("acme"),
            window: Window::Day,
            window_start: start,
        },
        CounterKey::Scope {
            scope: org_scope("acme"),
            window: Window::Week,
            window_start: start,
        },
        CounterKey::Scope {
            scope: org_scope("acme"),
            window: Window::Day,
            window_start: day(2025, 3, 15),
        },
        CounterKey::Member {
            scope: org_scope("acme"),
            user: user("u1"),
            window: Window::Day,
            window_start: start,
        },
        CounterKey::Scope {
            scope: team_scope("acme", "member"),
            window: Window::Day,
            window_start: start,
        },
        CounterKey::Scope {
            scope: user_scope("acme"),
            window: Window::Day,
            window_start: start,
        },
    ];
    let texts: std::collections::BTreeSet<String> = keys.iter().map(CounterKey::key).collect();
    assert_eq!(texts.len(), keys.len(), "{texts:?}");
    assert_eq!(keys[3].key(), "org#acme#member#u1#day#2025-03-14T00:00:00Z");
    assert_eq!(
        (keys[3].window(), keys[3].window_start(), keys[3].scope()),
        (Window::Day, start, &org_scope("acme"))
    );
}

#[test]
fn limit_sources_are_json_objects_with_plan_or_budget_id() {
    let cases = [
        (
            plan_source(user_scope("u1"), "pro"),
            serde_json::json!({"scope": {"kind": "user", "user_id": "u1"}, "plan": "pro"}),
        ),
        (
            budget_source(team_scope("acme", "red"), "rate"),
            serde_json::json!({"scope": {"kind": "team", "org_id": "acme", "team_id": "red"}, "budget_id": "rate"}),
        ),
    ];
    for (source, json) in cases {
        assert_eq!(serde_json::to_value(&source).unwrap(), json);
        assert_eq!(serde_json::from_value::<LimitSource>(json).unwrap(), source);
    }
    assert_eq!(plan_source(user_scope("u1"), "pro").budget_id(), None);
    assert_eq!(
        budget_source(user_scope("u1"), "b").plan(),
        None::<&PlanName>
    );
}
