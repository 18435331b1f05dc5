//! The budget body and list query (`http::budgets`): never a panic, a rejection is a 4xx,
//! and what is accepted is a budget whose validation (the service's next step) answers
//! without panicking and, when it passes, keeps the documented bounds.

use std::collections::BTreeMap;

use meter_core::budgets::{Budget, MAX_LIMITS_PER_BUDGET};
use meter_core::domain::BudgetId;
use meter_core::http::budgets::{parse_budget, parse_scope_query};
use meter_core::limits::MAX_AMOUNT;
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use rust_decimal::Decimal;
use serde_json::{json, Value};

use super::{client_error, fuzz, gen};

fn pick(options: &'static [&'static str]) -> impl Strategy<Value = Value> {
    proptest::sample::select(options).prop_map(|s| Value::String(s.to_owned()))
}

fn amount() -> impl Strategy<Value = Value> {
    prop_oneof![
        (0u64..2_000).prop_map(Value::from),
        Just(json!(999_999_999_999_999u64)),
        Just(json!(1_000_000_000_000_000u64)),
        Just(json!(u64::MAX)),
        Just(json!(-1)),
        Just(json!(2.5)),
        Just(json!(1e300)),
        Just(json!(60.0)),
        pick(&[
            "20",
            "20.50",
            "-0.01",
            "1e3",
            "",
            ".5",
            "5.",
            "999999999999999.9999999999999",
            "1000000000000000",
            "0.00000000000001",
            "+1",
            "1_000",
            "٣"
        ]),
        any::<String>().prop_map(Value::String),
        Just(Value::Null),
    ]
}

fn id() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => "[a-z0-9_-]{1,12}".prop_map(Value::String),
        1 => Just(Value::String("x".repeat(129))),
        1 => Just(Value::String("a#b".to_owned())),
        1 => any::<String>().prop_map(Value::String),
        1 => Just(Value::Null),
        1 => Just(json!(7)),
    ]
}

fn scope() -> impl Strategy<Value = Value> {
    let id = || "[a-z0-9_-]{1,12}";
    prop_oneof![
        3 => prop_oneof![
            id().prop_map(|u| json!({"kind": "user", "user_id": u})),
            id().prop_map(|o| json!({"kind": "org", "org_id": o})),
            (id(), id()).prop_map(|(o, t)| json!({"kind": "team", "org_id": o, "team_id": t})),
        ],
        1 => any_scope(),
    ]
}

fn any_scope() -> impl Strategy<Value = Value> {
    let kind = pick(&["user", "org", "team", "galaxy", ""]);
    (
        kind,
        proptest::option::of(id()),
        proptest::option::of(id()),
        proptest::option::of(id()),
    )
        .prop_map(|(kind, user, org, team)| {
            let mut m = serde_json::Map::new();
            m.insert("kind".into(), kind);
            for (k, v) in [("user_id", user), ("org_id", org), ("team_id", team)] {
                if let Some(v) = v {
                    m.insert(k.into(), v);
                }
            }
            Value::Object(m)
        })
}

fn limits() -> impl Strategy<Value = Value> {
    let metric = prop_oneof![
        pick(&[
            "cost_usd",
            "calls:*",
            "tokens:*",
            "calls:gemini",
            "tokens:openai",
            "calls",
            "cost",
            "calls:OpenAI",
            "tokens:a#b"
        ])
        .prop_map(|v| v.as_str().unwrap().to_owned()),
        "(calls|tokens):[a-z0-9]{1,70}",
        any::<String>(),
    ];
    let plausible = prop_oneof![
        (0u64..100_000).prop_map(Value::from),
        "[0-9]{1,4}(\\.[0-9]{1,3})?".prop_map(Value::String),
    ];
    let good_metric = pick(&[
        "cost_usd",
        "calls:*",
        "tokens:*",
        "calls:gemini",
        "tokens:openai",
    ])
    .prop_map(|v| v.as_str().unwrap().to_owned());
    prop_oneof![
        4 => btree_map(good_metric, plausible, 1..4).prop_map(|m| Value::Object(m.into_iter().collect())),
        4 => btree_map(metric, amount(), 0..40).prop_map(|m| Value::Object(m.into_iter().collect())),
        1 => gen::json(),
    ]
}

fn thresholds() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!([50, 100])),
        vec(
            prop_oneof![
                (0i64..120).prop_map(Value::from),
                Just(json!(80.0)),
                Just(json!(1e20)),
                Just(json!("80"))
            ],
            0..6
        )
        .prop_map(Value::Array),
        gen::json(),
    ]
}

/// Budget-shaped bodies: every field usually present, each value usually plausible.
fn budget_body() -> impl Strategy<Value = Value> {
    let field = |s: BoxedStrategy<Value>| proptest::option::weighted(0.95, s);
    (
        field(scope().boxed()),
        field(pick(&["scope", "each_member", "scope", "each_member", "everyone"]).boxed()),
        field(limits().boxed()),
        field(pick(&["minute", "hour", "day", "week", "month", "period", "year"]).boxed()),
        field(pick(&["hard", "soft", "hard", "soft", "strict"]).boxed()),
        proptest::option::weighted(0.5, thresholds().boxed()),
        proptest::option::weighted(0.1, pick(&["fuzz", "other"]).boxed()),
        proptest::option::weighted(0.1, (any::<String>(), gen::json()).boxed()),
    )
        .prop_map(
            |(scope, applies_to, limits, window, mode, thresholds, budget_id, extra)| {
                let mut m = serde_json::Map::new();
                for (k, v) in [
                    ("scope", scope),
                    ("applies_to", applies_to),
                    ("limits", limits),
                    ("window", window),
                    ("mode", mode),
                    ("alert_thresholds", thresholds),
                    ("budget_id", budget_id),
                ] {
                    if let Some(v) = v {
                        m.insert(k.into(), v);
                    }
                }
                if let Some((k, v)) = extra {
                    m.insert(k, v);
                }
                Value::Object(m)
            },
        )
}

/// `true` if the body was accepted.
fn budget(body: &Value) -> Result<bool, TestCaseError> {
    let id = BudgetId::parse("fuzz").unwrap();
    let input = match parse_budget(&id, body) {
        Ok(input) => input,
        Err(e) => {
            client_error(&e)?;
            return Ok(false);
        }
    };
    let budget = Budget {
        id,
        scope: input.scope,
        applies_to: input.applies_to,
        limits: input.limits,
        window: input.window,
        mode: input.mode,
        alert_thresholds: input.alert_thresholds,
        version: 0,
        updated_at: super::now(),
    };
    if budget.validate().is_ok() {
        prop_assert!((1..=MAX_LIMITS_PER_BUDGET).contains(&budget.limits.0.len()));
        for (metric, v) in &budget.limits.0 {
            prop_assert!(*v >= Decimal::ZERO && *v < MAX_AMOUNT, "{metric} = {v}");
            prop_assert!(!metric.is_count() || v.fract().is_zero(), "{metric} = {v}");
        }
        prop_assert!(budget.alert_thresholds.windows(2).all(|w| w[0] < w[1]));
    }
    Ok(true)
}

/// A list query from arbitrary parameters: a scope or a 400.
fn query(params: &BTreeMap<String, String>) -> Result<bool, TestCaseError> {
    match parse_scope_query(params) {
        Ok(_) => Ok(true),
        Err(e) => {
            prop_assert_eq!(e.status().as_u16(), 400, "{:?}", e);
            Ok(false)
        }
    }
}

#[test]
fn fuzz_budget_bodies_structure_aware() {
    fuzz(
        "budgets/structured",
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fuzz/regressions/budgets_structured.txt"
        ),
        budget_body,
        |v| budget(&v),
    );
}

#[test]
fn fuzz_budget_bodies_from_arbitrary_json() {
    fuzz(
        "budgets/json",
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fuzz/regressions/budgets_json.txt"
        ),
        gen::json,
        |v| budget(&v),
    );
}

#[test]
fn fuzz_budget_list_queries() {
    fuzz(
        "budgets/query",
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fuzz/regressions/budgets_query.txt"
        ),
        || {
            btree_map(
                proptest::sample::select(&["user_id", "org_id", "team_id"][..])
                    .prop_map(str::to_owned),
                prop_oneof!["[a-z0-9]{1,8}", any::<String>(), Just("x".repeat(129))],
                0..4,
            )
        },
        |m| query(&m),
    );
}
