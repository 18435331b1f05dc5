use rust_decimal_macros::dec;
use serde_json::json;

use super::*;
use crate::limits::LimitError;

#[test]
fn scopes_round_trip_the_specs_json() {
    let cases = [
        (
            json!({"kind": "user", "user_id": "alice"}),
            user_scope("alice"),
        ),
        (json!({"kind": "org", "org_id": "acme"}), org_scope("acme")),
        (
            json!({"kind": "team", "org_id": "acme", "team_id": "research"}),
            team_scope("acme", "research"),
        ),
    ];
    for (json, scope) in cases {
        assert_eq!(
            serde_json::from_value::<Scope>(json.clone()).unwrap(),
            scope
        );
        assert_eq!(serde_json::to_value(&scope).unwrap(), json);
    }
}

#[test]
fn bad_scopes_are_refused() {
    let cases = [
        ("unknown kind", json!({"kind": "planet", "org_id": "acme"})),
        ("no kind", json!({"org_id": "acme"})),
        (
            "team without org_id",
            json!({"kind": "team", "team_id": "red"}),
        ),
        ("user without user_id", json!({"kind": "user"})),
        (
            "a field of another kind",
            json!({"kind": "user", "user_id": "u", "org_id": "acme"}),
        ),
        (
            "id outside the charset",
            json!({"kind": "org", "org_id": "a#b"}),
        ),
        ("empty id", json!({"kind": "org", "org_id": ""})),
        ("kind in capitals", json!({"kind": "User", "user_id": "u"})),
    ];
    for (name, json) in cases {
        assert!(
            serde_json::from_value::<Scope>(json).is_err(),
            "{name} should be refused"
        );
    }
}

#[test]
fn a_team_without_an_org_is_refused() {
    let e = CallScopes::new(user("u1"), None, Some(team("red"))).unwrap_err();
    assert_eq!(e, ScopeError::TeamWithoutOrg);
    assert_eq!((e.code(), e.field()), ("team_without_org", "team_id"));
}

#[test]
fn the_scopes_of_a_call_are_the_ones_named_on_it() {
    let cases = [
        (call_scopes("u1", None, None), vec![user_scope("u1")]),
        (
            call_scopes("u1", Some("acme"), None),
            vec![user_scope("u1"), org_scope("acme")],
        ),
        (
            call_scopes("u1", Some("acme"), Some("red")),
            vec![
                user_scope("u1"),
                org_scope("acme"),
                team_scope("acme", "red"),
            ],
        ),
    ];
    for (call, expected) in cases {
        assert_eq!(call.scopes(), expected, "{call:?}");
        assert!(expected.iter().all(|s| call.contains(s)));
    }
    assert_eq!(
        CallScopes::user_only(user("u1")),
        call_scopes("u1", None, None)
    );
}

#[test]
fn contains_table() {
    let full = call_scopes("u1", Some("acme"), Some("red"));
    let org_only = call_scopes("u1", Some("acme"), None);
    let cases = [
        (&full, user_scope("u1"), true),
        (&full, user_scope("u2"), false),
        (&full, org_scope("acme"), true),
        (&full, org_scope("globex"), false),
        (&full, team_scope("acme", "red"), true),
        (&full, team_scope("globex", "red"), false),
        (&full, team_scope("acme", "blue"), false),
        (&org_only, team_scope("acme", "red"), false),
        (&org_only, org_scope("acme"), true),
    ];
    for (call, scope, expected) in cases {
        assert_eq!(call.contains(&scope), expected, "{call:?} ∋ {scope}");
    }
}

#[test]
fn scope_keys_are_distinct() {
    let scopes = [
        user_scope("a"),
        org_scope("a"),
        team_scope("a", "a"),
        team_scope("a", "b"),
        team_scope("b", "a"),
    ];
    let keys: std::collections::BTreeSet<String> = scopes.iter().map(Scope::key).collect();
    assert_eq!(keys.len(), scopes.len());
    assert_eq!(team_scope("acme", "red").key(), "team#acme#red");
    assert_eq!(
        (
            user_scope("a").kind(),
            org_scope("a").kind(),
            team_scope("a", "b").kind()
        ),
        ("user", "org", "team")
    );
    assert_eq!(team_scope("acme", "red").org_id(), Some(&org("acme")));
    assert_eq!(user_scope("a").org_id(), None);
}

#[test]
fn budgets_round_trip_with_the_specs_fields_and_defaults() {
    let written = json!({
        "budget_id": "acme-members",
        "scope": {"kind": "org", "org_id": "acme"},
        "applies_to": "each_member",
        "limits": {"cost_usd": "20", "calls:*": 1000},
        "window": "month",
        "mode": "hard",
        "version": 3,
        "updated_at": "2025-03-14T10:00:00Z"
    });
    let b: Budget = serde_json::from_value(written).unwrap();
    assert_eq!(b.id, bid("acme-members"));
    assert_eq!(b.scope, org_scope("acme"));
    assert_eq!(b.applies_to, AppliesTo::EachMember);
    assert_eq!(b.limits.get(&Metric::CostUsd), Some(dec!(20)));
    assert_eq!(b.limits.get(&m("calls:*")), Some(dec!(1000)));
    assert_eq!((b.window, b.mode), (Window::Month, Mode::Hard));
    assert_eq!(b.alert_thresholds, [80, 90, 100], "default thresholds");
    assert_eq!(b.updated_at, utc(2025, 3, 14, 10, 0, 0));
    assert_eq!(b.validate(), Ok(()));
    let back = serde_json::to_value(&b).unwrap();
    assert_eq!(
        back,
        json!({
            "budget_id": "acme-members",
            "scope": {"kind": "org", "org_id": "acme"},
            "applies_to": "each_member",
            "limits": {"calls:*": "1000", "cost_usd": "20"},
            "window": "month",
            "mode": "hard",
            "alert_thresholds": [80, 90, 100],
            "version": 3,
            "updated_at": "2025-03-14T10:00:00Z"
        })
    );
    assert_eq!(serde_json::from_value::<Budget>(back).unwrap(), b);

    let minimal: Budget = serde_json::from_value(json!({
        "budget_id": "rate",
        "scope": {"kind": "team", "org_id": "acme", "team_id": "research"},
        "limits": {"calls:*": 60},
        "window": "minute",
        "mode": "soft",
        "version": 1,
        "updated_at": "2025-03-14T10:00:00Z"
    }))
    .unwrap();
    assert_eq!(minimal.applies_to, AppliesTo::Scope, "default applies_to");
    assert!(!minimal.is_hard());
}

#[test]
fn budgets_with_bad_fields_do_not_parse() {
    let base = json!({
        "budget_id": "b",
        "scope": {"kind": "user", "user_id": "u"},
        "limits": {"cost_usd": "5"},
        "window": "day",
        "mode": "hard",
        "version": 1,
        "updated_at": "2025-03-14T10:00:00Z"
    });
    assert!(serde_json::from_value::<Budget>(base.clone()).is_ok());
    let cases = [
        ("window", json!("fortnight")),
        ("mode", json!("strict")),
        ("applies_to", json!("everyone")),
        ("limits", json!({"cost_usd": 2.5})),
        ("limits", json!({"bogus": "1"})),
        ("scope", json!({"kind": "galaxy"})),
        ("budget_id", json!("has space")),
    ];
    for (field, value) in cases {
        let mut body = base.clone();
        body[field] = value.clone();
        assert!(
            serde_json::from_value::<Budget>(body).is_err(),
            "{field}: {value}"
        );
    }
}

#[test]
fn budget_validation_table() {
    let base = budget(
        "b",
        org_scope("acme"),
        Window::Day,
        &[("cost_usd", dec!(5))],
    );
    let with = |f: &dyn Fn(&mut Budget)| {
        let mut b = base.clone();
        f(&mut b);
        b.validate()
    };
    let cost = || Metric::CostUsd;
    // (case, validation, expected (code, field) of the error)
    type Case = (
        &'static str,
        Result<(), BudgetError>,
        Option<(&'static str, &'static str)>,
    );
    let cases: Vec<Case> = vec![
        ("unchanged", with(&|_| {}), None),
        (
            "each_member on an org",
            with(&|b| b.applies_to = AppliesTo::EachMember),
            None,
        ),
        (
            "each_member on a team",
            with(&|b| {
                b.applies_to = AppliesTo::EachMember;
                b.scope = team_scope("acme", "red");
            }),
            None,
        ),
        (
            "each_member on a user",
            with(&|b| {
                b.applies_to = AppliesTo::EachMember;
                b.scope = user_scope("u1");
            }),
            Some(("each_member_on_user", "applies_to")),
        ),
        (
            "no limits",
            with(&|b| b.limits = Limits::default()),
            Some(("no_limits", "limits")),
        ),
        (
            "33 limits",
            with(&|b| {
                let many: Vec<(String, Decimal)> =
                    (0..33).map(|i| (format!("calls:p{i}"), dec!(1))).collect();
                let pairs: Vec<(&str, Decimal)> =
                    many.iter().map(|(m, v)| (m.as_str(), *v)).collect();
                b.limits = limits(&pairs);
            }),
            Some(("too_many_limits", "limits")),
        ),
        (
            "zero limit (none allowed) is fine",
            with(&|b| b.limits = limits(&[("calls:openai", dec!(0))])),
            None,
        ),
        (
            "negative limit",
            with(&|b| b.limits = limits(&[("cost_usd", dec!(-0.01))])),
            Some(("negative_limit", "limits")),
        ),
        (
            "limit above 10^15",
            with(&|b| b.limits = limits(&[("cost_usd", crate::limits::MAX_AMOUNT + dec!(1))])),
            Some(("limit_too_large", "limits")),
        ),
        (
            "fractional calls",
            with(&|b| b.limits = limits(&[("calls:*", dec!(60.5))])),
            Some(("fractional_limit", "limits")),
        ),
        (
            "threshold 0",
            with(&|b| b.alert_thresholds = vec![0, 50]),
            Some(("threshold_out_of_range", "alert_thresholds")),
        ),
        (
            "threshold 101",
            with(&|b| b.alert_thresholds = vec![101]),
            Some(("threshold_out_of_range", "alert_thresholds")),
        ),
        (
            "thresholds descending",
            with(&|b| b.alert_thresholds = vec![90, 80]),
            Some(("thresholds_not_ascending", "alert_thresholds")),
        ),
        (
            "thresholds repeated",
            with(&|b| b.alert_thresholds = vec![80, 80]),
            Some(("thresholds_not_ascending", "alert_thresholds")),
        ),
        (
            "no thresholds",
            with(&|b| b.alert_thresholds = vec![]),
            None,
        ),
    ];
    for (name, got, expected) in cases {
        assert_eq!(
            got.as_ref().err().map(|e| (e.code(), e.field())),
            expected,
            "{name}"
        );
    }
    assert_eq!(
        with(&|b| b.limits = limits(&[("cost_usd", dec!(-1))])),
        Err(BudgetError::Limits(LimitError::NegativeLimit {
            metric: cost()
        }))
    );
}
