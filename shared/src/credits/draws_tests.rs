//! Draw order (priority, expiry, age, id; expired and voided skipped) and draws.

use chrono::Duration;
use rust_decimal::Decimal;

use super::test_support::*;
use super::*;

#[test]
fn draw_order_table() {
    let at = h(10);
    // (case, grants, expected order of ids)
    let cases: Vec<(&str, Vec<Grant>, Vec<&str>)> = vec![
        (
            "lower priority burns first, whatever the expiry or age",
            vec![
                grant("a", "1").priority(10).expires(h(11)).created(h(0)),
                grant("b", "1").priority(1).created(h(5)),
                grant("c", "1").priority(-3).created(h(9)),
            ],
            vec!["c", "b", "a"],
        ),
        (
            "same priority: soonest expiry first, no expiry last",
            vec![
                grant("never", "1").created(h(0)),
                grant("late", "1").expires(h(100)).created(h(1)),
                grant("soon", "1").expires(h(20)).created(h(2)),
            ],
            vec!["soon", "late", "never"],
        ),
        (
            "same priority and expiry: oldest first",
            vec![
                grant("new", "1").expires(h(50)).created(h(3)),
                grant("old", "1").expires(h(50)).created(h(1)),
                grant("mid", "1").expires(h(50)).created(h(2)),
            ],
            vec!["old", "mid", "new"],
        ),
        (
            "no expiry, same priority: oldest first",
            vec![
                grant("new", "1").created(h(3)),
                grant("old", "1").created(h(1)),
            ],
            vec!["old", "new"],
        ),
        (
            "full tie: by grant id",
            vec![grant("b", "1"), grant("a", "1"), grant("c", "1")],
            vec!["a", "b", "c"],
        ),
        (
            "expired (at its instant) and voided grants are skipped",
            vec![
                grant("expired-before", "1").priority(0).expires(h(9)),
                grant("expires-now", "1").priority(0).expires(at),
                grant("expires-just-after", "1")
                    .priority(0)
                    .expires(at + Duration::nanoseconds(1)),
                grant("voided", "1").priority(0).voided(h(1)),
                grant("kept", "1"),
            ],
            vec!["expires-just-after", "kept"],
        ),
        (
            "a grant voided later than `at` is still voided",
            vec![grant("voided-later", "1").voided(h(20)), grant("kept", "1")],
            vec!["kept"],
        ),
        (
            "grants with nothing left stay in the order (draws skip them)",
            vec![
                grant("empty", "1").remaining("0").priority(0),
                grant("full", "1"),
            ],
            vec!["empty", "full"],
        ),
    ];
    for (case, grants, expected) in cases {
        assert_eq!(ids(draw_order(&grants, at)), expected, "{case}");
    }
}

fn drawn(draws: &Draws) -> Vec<(String, Decimal)> {
    draws
        .draws
        .iter()
        .map(|x| (x.grant_id.to_string(), x.amount_usd))
        .collect()
}

#[test]
fn draws_table() {
    let grants = vec![
        grant("purchase", "10").created(h(0)),
        grant("promo", "5").expires(h(24)).created(h(1)),
        grant("bonus", "2").priority(1).created(h(2)),
        grant("dead", "100").priority(0).expires(h(3)),
    ];
    // (cost, at, expected draws, expected shortfall)
    type Case = (
        &'static str,
        i64,
        Vec<(&'static str, &'static str)>,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        ("0", 5, vec![], "0"),
        ("1.5", 5, vec![("bonus", "1.5")], "0"),
        ("2", 5, vec![("bonus", "2")], "0"),
        (
            "2.0000001",
            5,
            vec![("bonus", "2"), ("promo", "0.0000001")],
            "0",
        ),
        (
            "8",
            5,
            vec![("bonus", "2"), ("promo", "5"), ("purchase", "1")],
            "0",
        ),
        (
            "17",
            5,
            vec![("bonus", "2"), ("promo", "5"), ("purchase", "10")],
            "0",
        ),
        (
            "20.25",
            5,
            vec![("bonus", "2"), ("promo", "5"), ("purchase", "10")],
            "3.25",
        ),
        // The dead grant (priority 0) still counts before its expiry at hour 3.
        ("1", 2, vec![("dead", "1")], "0"),
        // After the promo's expiry, the purchase pays.
        ("8", 24, vec![("bonus", "2"), ("purchase", "6")], "0"),
    ];
    for (cost, at, expected, shortfall) in cases {
        let draws = draw(&grants, d(cost), h(at)).unwrap();
        let expected: Vec<(String, Decimal)> = expected
            .into_iter()
            .map(|(g, a)| (g.to_owned(), d(a)))
            .collect();
        assert_eq!(drawn(&draws), expected, "cost {cost} at {at}");
        assert_eq!(draws.shortfall_usd, d(shortfall), "cost {cost} at {at}");
        assert_eq!(draws.total_usd().unwrap(), d(cost));
    }
}

#[test]
fn a_wallet_without_counting_grants_leaves_the_whole_cost_short() {
    let grants = vec![
        grant("expired", "5").expires(h(1)),
        grant("voided", "5").voided(h(1)),
        grant("empty", "5").remaining("0"),
    ];
    let draws = draw(&grants, d("0.75"), h(2)).unwrap();
    assert!(draws.draws.is_empty());
    assert_eq!(draws.shortfall_usd, d("0.75"));
    let none = draw(&[], d("3"), h(2)).unwrap();
    assert_eq!((none.draws.len(), none.shortfall_usd), (0, d("3")));
}

#[test]
fn a_negative_cost_is_refused() {
    let grants = vec![grant("g", "5")];
    assert_eq!(
        draw(&grants, d("-0.01"), h(1)).unwrap_err().code(),
        "negative_amount"
    );
}

#[test]
fn applying_draws_takes_exactly_each_draw_off_its_grant() {
    let mut grants = vec![
        grant("a", "0.000001").priority(0),
        grant("b", "10"),
        grant("untouched", "3").priority(20),
    ];
    let draws = draw(&grants, d("0.0008125"), h(1)).unwrap();
    draws.apply(&mut grants).unwrap();
    assert_eq!(grants[0].remaining_usd, d("0"));
    assert_eq!(grants[1].remaining_usd, d("9.9991885"));
    assert_eq!(grants[2].remaining_usd, d("3"));
    let used: Decimal = grants.iter().map(|g| g.used_usd()).sum();
    assert_eq!(used, d("0.0008125"));
}

#[test]
fn draws_that_do_not_fit_the_grants_change_nothing() {
    let grants = vec![grant("a", "1"), grant("b", "1")];
    let one = |id: &str, amount: &str| Draw {
        grant_id: gid(id),
        amount_usd: d(amount),
    };
    let bad = [
        (
            "unknown grant",
            vec![one("a", "0.5"), one("zzz", "0.1")],
            "unknown_grant",
        ),
        (
            "more than remaining",
            vec![one("a", "0.5"), one("b", "1.01")],
            "overflow",
        ),
        (
            "same grant twice",
            vec![one("a", "0.5"), one("a", "0.5")],
            "overflow",
        ),
        ("zero draw", vec![one("a", "0")], "overflow"),
        ("negative draw", vec![one("b", "-1")], "overflow"),
    ];
    for (case, list, code) in bad {
        let mut g = grants.clone();
        let draws = Draws {
            draws: list,
            shortfall_usd: Decimal::ZERO,
        };
        assert_eq!(draws.apply(&mut g).unwrap_err().code(), code, "{case}");
        assert_eq!(g, grants, "{case}: nothing changed");
    }
}

#[test]
fn a_cost_that_cannot_be_drawn_exactly_is_refused() {
    // 10^15 minus 28 decimal places needs more than 28 significant digits.
    let grants = vec![grant("big", "1000000000000000")];
    let tiny = Decimal::new(1, 28);
    assert_eq!(draw(&grants, tiny, h(1)).unwrap_err().code(), "overflow");
    // Realistic precision is exact: 10^15 minus 12 decimal places.
    let draws = draw(&grants, d("0.000000000001"), h(1)).unwrap();
    let mut g = grants.clone();
    draws.apply(&mut g).unwrap();
    assert_eq!(g[0].remaining_usd, d("999999999999999.999999999999"));
}

#[test]
fn draws_serialize_money_as_exact_text() {
    let draws = Draws {
        draws: vec![Draw {
            grant_id: gid("promo"),
            amount_usd: d("0.0008125"),
        }],
        shortfall_usd: d("0"),
    };
    let json = serde_json::to_value(&draws).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "draws": [{"grant_id": "promo", "amount_usd": "0.0008125"}],
            "shortfall_usd": "0"
        })
    );
    assert_eq!(serde_json::from_value::<Draws>(json).unwrap(), draws);
}

#[test]
fn exact_arithmetic_refuses_what_decimal_would_round() {
    // (a, b, a + b or None when it cannot be held exactly)
    let cases = [
        ("10", "0.00", Some("10.00")),
        ("1.10", "-0.10", Some("1.00")),
        ("0", "-1.5", Some("-1.5")),
        (
            "1000000000000000",
            "0.000000000001",
            Some("1000000000000000.000000000001"),
        ),
        ("1000000000000000", "0.0000000000000000000000000001", None),
        ("79228162514264337593543950335", "1", None),
        (
            "79228162514264337593543950335",
            "-1",
            Some("79228162514264337593543950334"),
        ),
        (
            "7.9228162514264337593543950335",
            "0.0000000000000000000000000001",
            None,
        ),
        ("-79228162514264337593543950335", "-1", None),
    ];
    for (a, b, sum) in cases {
        let got = exact_add(d(a), d(b)).ok();
        assert_eq!(got, sum.map(d), "{a} + {b}");
        if let Some(s) = got {
            assert_eq!(s.to_string(), sum.unwrap(), "{a} + {b} keeps its scale");
        }
    }
    assert_eq!(exact_sub(d("1.75"), d("1.75")).unwrap(), Decimal::ZERO);
    assert_eq!(exact_sum([d("0.1"), d("0.2"), d("0.3")]).unwrap(), d("0.6"));
}
