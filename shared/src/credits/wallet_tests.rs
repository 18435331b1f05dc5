//! Balances, expiry, the prepaid check, projected depletion, and wallet transitions.

use chrono::{Duration, TimeZone, Utc};
use rust_decimal::Decimal;

use super::test_support::*;
use super::*;
use crate::domain::ProviderId;
use crate::limits::{requirement, CallEstimate, Metric};

fn wallet(grants: Vec<Grant>) -> Wallet {
    let mut w = Wallet::default();
    for g in grants {
        w.add_grant(g, h(0)).unwrap();
    }
    w
}

/// The worked example: a $10 purchase and a $5 promo that expires first. The
/// promo burns first; after its expiry, the rest comes from the purchase.
#[test]
fn worked_example_promo_burns_first_then_the_purchase_after_its_expiry() {
    let purchase = GrantRequest::new(d("10"), GrantKind::Purchase)
        .into_grant(gid("purchase-1"), h(0))
        .unwrap();
    let promo = GrantRequest {
        expires_at: Some(h(24 * 7)),
        ..GrantRequest::new(d("5"), GrantKind::Promo)
    }
    .into_grant(gid("welcome-promo"), h(1))
    .unwrap();
    let mut w = Wallet::default();
    w.add_grant(purchase, h(0)).unwrap();
    w.add_grant(promo, h(1)).unwrap();
    assert_eq!(w.view(h(2)).unwrap().balance_usd, d("15"));

    // Day 1: $3 of usage, all from the promo (same priority, it expires first).
    let s = w.spend(d("3"), h(24)).unwrap();
    assert_eq!(s.draws.draws.len(), 1);
    assert_eq!(s.draws.draws[0].grant_id.as_str(), "welcome-promo");
    assert_eq!(s.draws.draws[0].amount_usd, d("3"));
    assert_eq!(w.view(h(24)).unwrap().balance_usd, d("12"));

    // Day 6: $2.50: the promo's last $2, then $0.50 from the purchase.
    let s = w.spend(d("2.50"), h(24 * 6)).unwrap();
    let got: Vec<_> = s
        .draws
        .draws
        .iter()
        .map(|x| (x.grant_id.as_str().to_owned(), x.amount_usd))
        .collect();
    assert_eq!(
        got,
        vec![
            ("welcome-promo".to_owned(), d("2")),
            ("purchase-1".to_owned(), d("0.50"))
        ]
    );
    assert_eq!(w.view(h(24 * 6)).unwrap().balance_usd, d("9.50"));

    // A second wallet where the promo is not used up: $1 of it expires at day 7.
    let mut w2 = wallet(vec![
        grant("purchase-1", "10"),
        grant("welcome-promo", "5")
            .kind(GrantKind::Promo)
            .expires(h(24 * 7))
            .created(h(1)),
    ]);
    w2.spend(d("4"), h(24)).unwrap();
    let before = h(24 * 7) - Duration::seconds(1);
    assert_eq!(w2.view(before).unwrap().balance_usd, d("11"));
    // At the expiry instant, the promo's $1 stops counting (no write needed).
    assert_eq!(w2.view(h(24 * 7)).unwrap().balance_usd, d("10"));
    let gone = expired(&w2.grants, h(24 * 7));
    assert_eq!(ids(gone.iter().copied()), ["welcome-promo"]);
    assert_eq!(gone[0].remaining_usd, d("1"));
    // After it, usage comes from the purchase.
    let s = w2.spend(d("2.5"), h(24 * 8)).unwrap();
    assert_eq!(s.draws.draws.len(), 1);
    assert_eq!(s.draws.draws[0].grant_id.as_str(), "purchase-1");
    assert_eq!(w2.view(h(24 * 8)).unwrap().balance_usd, d("7.5"));
}

#[test]
fn wallet_view_counts_only_unexpired_unvoided_grants() {
    let grants = vec![
        grant("a", "10").remaining("4"),
        grant("b", "5").expires(h(10)),
        grant("c", "7").voided(h(1)),
    ];
    // (at, overdrawn, held, grants, balance, available)
    let cases = [
        (5, "0", "0", "9", "9", "9"),
        (5, "0", "2.5", "9", "9", "6.5"),
        (10, "0", "0", "4", "4", "4"),
        (10, "1.25", "0", "4", "2.75", "2.75"),
        (10, "6", "1", "4", "-2", "-3"),
    ];
    for (at, overdrawn, held, g, balance, available) in cases {
        let v = wallet_view(&grants, d(overdrawn), d(held), h(at)).unwrap();
        assert_eq!(
            (v.grants_usd, v.balance_usd, v.available_usd),
            (d(g), d(balance), d(available)),
            "at {at}"
        );
        assert_eq!((v.overdrawn_usd, v.held_usd), (d(overdrawn), d(held)));
    }
}

#[test]
fn a_wallet_view_serializes_normalized_money() {
    let v = wallet_view(&[grant("a", "10.500")], d("0"), d("0.25"), h(1)).unwrap();
    let json = serde_json::to_value(v).unwrap();
    assert_eq!(json["balance_usd"], "10.5");
    assert_eq!(json["held_usd"], "0.25");
    assert_eq!(json["available_usd"], "10.25");
    assert_eq!(json["overdrawn_usd"], "0");
}

#[test]
fn expired_lists_what_stopped_counting_soonest_first() {
    let grants = vec![
        grant("later", "3").expires(h(8)),
        grant("sooner", "2").expires(h(4)).remaining("0.5"),
        grant("voided", "2").expires(h(2)).voided(h(1)),
        grant("future", "2").expires(h(20)),
        grant("never", "2"),
    ];
    assert!(expired(&grants, h(3)).is_empty());
    assert_eq!(ids(expired(&grants, h(4))), ["sooner"]);
    let all = expired(&grants, h(9));
    assert_eq!(ids(all.iter().copied()), ["sooner", "later"]);
    let amounts: Vec<_> = all.iter().map(|g| g.remaining_usd).collect();
    assert_eq!(amounts, [d("0.5"), d("3")]);
}

#[test]
fn prepaid_check_table() {
    // (available, estimate, allowed)
    let cases: [(&str, Option<&str>, bool); 12] = [
        ("10", Some("9.99"), true),
        ("10", Some("10"), true),
        ("10", Some("10.000001"), false),
        ("10", Some("0"), true),
        ("10", None, true),
        ("0.000001", None, true),
        ("0", None, false),
        ("0", Some("0"), false),
        ("0", Some("1"), false),
        ("-2", None, false),
        ("-2", Some("0"), false),
        ("10", Some("-1"), false),
    ];
    for (available, estimate, allowed) in cases {
        assert_eq!(
            credit_allows(d(available), estimate.map(d)),
            allowed,
            "available {available}, estimate {estimate:?}"
        );
    }
    assert_eq!(CREDITS_METRIC, "credits_usd");
}

#[test]
fn the_prepaid_check_is_the_cost_cap_rule_at_the_available_balance() {
    let amounts = ["-3", "0", "0.000001", "1", "9.99", "10", "10.5"];
    for available in amounts {
        for estimate in amounts.iter().map(|e| Some(d(e))).chain([None]) {
            if estimate.is_some_and(|e| e < Decimal::ZERO) {
                continue;
            }
            let call = CallEstimate {
                provider: ProviderId::parse("openai").unwrap(),
                estimated_tokens: 0,
                estimated_cost: estimate,
            };
            let cap = requirement(&Metric::CostUsd, d(available), &call).unwrap();
            assert_eq!(credit_requirement(d(available), estimate), cap);
            assert_eq!(
                credit_allows(d(available), estimate),
                cap.allows(Decimal::ZERO, d(available)),
                "available {available}, estimate {estimate:?}"
            );
        }
    }
}

#[test]
fn projected_depletion_table() {
    let now = Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).unwrap();
    // (available, burn over the last 7 days, expected)
    let cases: [(&str, &str, Option<Duration>); 10] = [
        ("10", "70", Some(Duration::days(1))),
        ("10", "10", Some(Duration::days(7))),
        ("1", "0.7", Some(Duration::days(10))),
        ("1", "3", Some(Duration::seconds(201_600))),
        // 604800 × 10 / 3 = 2016000 exactly; 604800 / 7 × 0.5 = 43200.
        ("10", "3", Some(Duration::seconds(2_016_000))),
        ("0.5", "7", Some(Duration::seconds(43_200))),
        // Rounded down to the second: 604800 / 7000000 = 0.0864 s.
        ("1", "7000000", Some(Duration::zero())),
        ("10", "0", None),
        ("10", "-1", None),
        ("0", "5", Some(Duration::zero())),
    ];
    for (available, burn, expected) in cases {
        assert_eq!(
            projected_depletion(d(available), d(burn), now),
            expected.map(|x| now + x),
            "{available} at {burn}/week"
        );
    }
    assert_eq!(projected_depletion(d("-4"), d("1"), now), Some(now));
    // Beyond what a date can hold: no projection rather than a wrong one.
    assert_eq!(projected_depletion(Decimal::MAX, d("0.000001"), now), None);
    assert_eq!(
        projected_depletion(d("1000000000000000"), d("0.000001"), now),
        None
    );
}

#[test]
fn spending_past_the_grants_overdraws_the_wallet_not_a_grant() {
    let mut w = wallet(vec![grant("a", "1"), grant("b", "2").priority(20)]);
    let s = w.spend(d("4.5"), h(1)).unwrap();
    assert_eq!(s.draws.drawn_usd().unwrap(), d("3"));
    assert_eq!(s.draws.shortfall_usd, d("1.5"));
    assert!(w.grants.iter().all(|g| g.remaining_usd == Decimal::ZERO));
    assert_eq!(w.overdrawn_usd, d("1.5"));
    let v = w.view(h(1)).unwrap();
    assert_eq!((v.balance_usd, v.available_usd), (d("-1.5"), d("-1.5")));
    // More usage on an empty wallet adds to the overdraft.
    w.spend(d("0.25"), h(2)).unwrap();
    assert_eq!(w.overdrawn_usd, d("1.75"));
    // A top-up is a new grant; the debt stays until an invoice bills it.
    w.add_grant(grant("top-up", "10").created(h(3)), h(3))
        .unwrap();
    assert_eq!(w.view(h(3)).unwrap().balance_usd, d("8.25"));
    w.settle_overdraft(d("1.75"), h(4)).unwrap();
    assert_eq!(w.view(h(4)).unwrap().balance_usd, d("10"));
    assert_eq!(
        w.settle_overdraft(d("0.01"), h(4)).unwrap_err().code(),
        "overflow"
    );
}

#[test]
fn reservations_hold_credit_and_settle_the_actual_cost() {
    let mut w = wallet(vec![grant("a", "10")]);
    let Admit::Held { held_usd, .. } = w.admit(Some(d("6")), h(1)).unwrap() else {
        panic!("should be admitted");
    };
    assert_eq!(held_usd, d("6"));
    assert_eq!(w.view(h(1)).unwrap().available_usd, d("4"));
    // The next estimate does not fit what is left.
    assert_eq!(
        w.admit(Some(d("4.01")), h(1)).unwrap(),
        Admit::Denied {
            available_usd: d("4")
        }
    );
    assert_eq!(w.held_usd, d("6"));
    // No estimate: admitted while anything is available, holding nothing.
    assert!(
        matches!(w.admit(None, h(1)).unwrap(), Admit::Held { held_usd, .. } if held_usd.is_zero())
    );
    // Settle: the hold goes, the actual cost is drawn.
    let s = w.settle(d("6"), d("7.25"), h(2)).unwrap();
    assert_eq!(s.draws.drawn_usd().unwrap(), d("7.25"));
    let v = w.view(h(2)).unwrap();
    assert_eq!(
        (v.held_usd, v.balance_usd, v.available_usd),
        (d("0"), d("2.75"), d("2.75"))
    );
    // Releasing more than is held is refused and changes nothing.
    let before = w.clone();
    assert_eq!(w.release(d("0.01"), h(3)).unwrap_err().code(), "overflow");
    assert_eq!(
        w.settle(d("1"), d("1"), h(3)).unwrap_err().code(),
        "overflow"
    );
    assert_eq!(w, before);
    assert_eq!(
        w.admit(Some(d("-1")), h(3)).unwrap_err().code(),
        "negative_amount"
    );
}

#[test]
fn wallet_transitions_fire_alarms_once_per_crossing() {
    let mut w = wallet(vec![grant("a", "10")]);
    w.set_low_balance(Some(d("5")), h(0)).unwrap();
    assert!(w.spend(d("4"), h(1)).unwrap().events.is_empty());
    // 6 → 4: below 5.
    let e = w.spend(d("2"), h(2)).unwrap().events;
    assert_eq!(names(&e), ["wallet.low_balance"]);
    // Still below: not again.
    assert!(w.spend(d("1"), h(3)).unwrap().events.is_empty());
    // A hold can take available to 0: depleted.
    let Admit::Held { events, .. } = w.admit(Some(d("3")), h(4)).unwrap() else {
        panic!("admitted");
    };
    assert_eq!(names(&events), ["wallet.depleted"]);
    // Releasing re-arms depleted (available 3 > 0) but not low balance (3 < 5).
    assert!(w.release(d("3"), h(5)).unwrap().is_empty());
    assert_eq!(
        w.alarms,
        WalletAlarms {
            low_armed: false,
            depleted_armed: true
        }
    );
    // A top-up re-arms both; then a void takes it all away again: both fire.
    assert!(w
        .add_grant(grant("b", "10").created(h(6)), h(6))
        .unwrap()
        .is_empty());
    let (removed, e) = w.void(&gid("b"), h(7)).unwrap();
    assert_eq!(removed, d("10"));
    assert_eq!(names(&e), ["wallet.low_balance"]);
    let (_, e) = w.void(&gid("a"), h(7)).unwrap();
    assert_eq!(names(&e), ["wallet.depleted"]);
    assert_eq!(
        w.void(&gid("zzz"), h(7)).unwrap_err().code(),
        "unknown_grant"
    );
}

#[test]
fn an_expiry_fires_when_the_wallet_is_next_observed() {
    let mut w = wallet(vec![grant("promo", "5").expires(h(10)), grant("a", "1")]);
    w.set_low_balance(Some(d("2")), h(0)).unwrap();
    assert!(w.observe(h(9)).unwrap().is_empty());
    assert_eq!(names(&w.observe(h(10)).unwrap()), ["wallet.low_balance"]);
    assert!(w.observe(h(11)).unwrap().is_empty());
}

#[test]
fn setting_a_level_is_not_a_crossing() {
    let mut w = wallet(vec![grant("a", "3")]);
    w.set_low_balance(Some(d("5")), h(1)).unwrap();
    assert!(!w.alarms.low_armed);
    assert!(w.spend(d("1"), h(2)).unwrap().events.is_empty());
    w.set_low_balance(Some(d("1")), h(3)).unwrap();
    assert!(w.alarms.low_armed);
    assert_eq!(
        names(&w.spend(d("1.5"), h(4)).unwrap().events),
        ["wallet.low_balance"]
    );
    for (bad, code) in [
        ("0", "amount_not_positive"),
        ("-1", "amount_not_positive"),
        ("0.0000001", "too_many_decimals"),
        ("1000000000000001", "amount_too_large"),
    ] {
        assert_eq!(
            w.set_low_balance(Some(d(bad)), h(5)).unwrap_err().code(),
            code
        );
    }
    assert_eq!(w.low_balance_usd, Some(d("1")));
    w.set_low_balance(None, h(5)).unwrap();
    assert!(w.spend(d("10"), h(6)).unwrap().events.len() == 1); // depleted only
}

#[test]
fn a_grant_id_can_be_added_once() {
    let mut w = wallet(vec![grant("a", "1")]);
    assert_eq!(
        w.add_grant(grant("a", "2"), h(1)).unwrap_err().code(),
        "grant_conflict"
    );
    assert_eq!(w.grants.len(), 1);
}

#[test]
fn a_wallet_round_trips_through_json() {
    let mut w = wallet(vec![grant("a", "10").expires(h(30))]);
    w.set_low_balance(Some(d("2.5")), h(0)).unwrap();
    w.spend(d("12.125"), h(1)).unwrap();
    let json = serde_json::to_value(&w).unwrap();
    assert_eq!(json["overdrawn_usd"], "2.125");
    assert_eq!(json["low_balance_usd"], "2.5");
    assert_eq!(serde_json::from_value::<Wallet>(json).unwrap(), w);
}

fn names(events: &[WalletEvent]) -> Vec<&'static str> {
    events.iter().map(WalletEvent::name).collect()
}
