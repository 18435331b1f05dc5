//! Low-balance and depleted alarms: edges, once per crossing, re-arming.

use super::test_support::*;
use super::*;

fn names(events: &[WalletEvent]) -> Vec<&'static str> {
    events.iter().map(WalletEvent::name).collect()
}

#[test]
fn crossings_table() {
    const LOW: &str = "wallet.low_balance";
    const DEPLETED: &str = "wallet.depleted";
    // (before, after, low_balance_usd, expected)
    let cases: Vec<(&str, &str, Option<&str>, Vec<&str>)> = vec![
        ("10", "6", Some("5"), vec![]),
        ("10", "4.99", Some("5"), vec![LOW]),
        ("5", "4.99", Some("5"), vec![LOW]), // at the level is not below it
        ("10", "5", Some("5"), vec![]),
        ("4", "3", Some("5"), vec![]), // already below
        ("3", "7", Some("5"), vec![]), // rising fires nothing
        ("10", "0", Some("5"), vec![LOW, DEPLETED]),
        ("10", "-2", Some("5"), vec![LOW, DEPLETED]),
        ("3", "0", Some("5"), vec![DEPLETED]),
        ("0.000001", "0", None, vec![DEPLETED]),
        ("0", "-1", None, vec![]), // already depleted
        ("-1", "-3", Some("5"), vec![]),
        ("10", "1", None, vec![]), // no level: no low-balance alarm
        ("10", "10", Some("5"), vec![]),
    ];
    for (before, after, low, expected) in cases {
        let events = crossings(d(before), d(after), low.map(d));
        assert_eq!(names(&events), expected, "{before} → {after}, low {low:?}");
    }
}

#[test]
fn events_carry_the_level_they_crossed() {
    let events = crossings(d("10"), d("-0.5"), Some(d("2")));
    assert_eq!(
        events,
        vec![
            WalletEvent::LowBalance {
                available_usd: d("-0.5"),
                low_balance_usd: d("2")
            },
            WalletEvent::Depleted {
                available_usd: d("-0.5")
            }
        ]
    );
    assert_eq!(
        serde_json::to_value(&events[0]).unwrap(),
        serde_json::json!({
            "type": "wallet.low_balance",
            "available_usd": "-0.5",
            "low_balance_usd": "2"
        })
    );
    assert_eq!(
        serde_json::to_value(&events[1]).unwrap(),
        serde_json::json!({"type": "wallet.depleted", "available_usd": "-0.5"})
    );
}

#[test]
fn alarms_fire_once_and_rearm_when_the_level_is_reached_again() {
    let low = Some(d("5"));
    let mut alarms = WalletAlarms::initial(d("10"), low);
    // (available after a change, expected)
    let steps = [
        ("6", vec![]),
        ("4", vec!["wallet.low_balance"]),
        ("3", vec![]),
        ("4.999999", vec![]), // still below: not re-armed
        ("5", vec![]),        // re-armed
        ("4", vec!["wallet.low_balance"]),
        ("0", vec!["wallet.depleted"]),
        ("-1", vec![]),
        ("0", vec![]),    // not above 0: depleted stays disarmed
        ("0.01", vec![]), // re-armed
        ("-0.01", vec!["wallet.depleted"]),
        ("20", vec![]),
        ("-5", vec!["wallet.low_balance", "wallet.depleted"]),
    ];
    for (available, expected) in steps {
        let events = alarms.observe(d(available), low);
        assert_eq!(names(&events), expected, "at {available}");
    }
}

#[test]
fn initial_state_fires_nothing_for_a_level_already_past() {
    for (available, low) in [
        ("3", Some("5")),
        ("0", Some("5")),
        ("-1", None),
        ("7", Some("5")),
    ] {
        let mut alarms = WalletAlarms::initial(d(available), low.map(d));
        assert!(alarms.observe(d(available), low.map(d)).is_empty());
    }
    assert_eq!(
        WalletAlarms::default(),
        WalletAlarms {
            low_armed: true,
            depleted_armed: false
        }
    );
}

#[test]
fn a_new_level_rearms_only_the_low_balance_alarm() {
    let fired = WalletAlarms {
        low_armed: false,
        depleted_armed: false,
    };
    let moved = fired.with_low_balance(d("3"), Some(d("2")));
    assert_eq!(
        moved,
        WalletAlarms {
            low_armed: true,
            depleted_armed: false
        }
    );
    assert!(!fired.with_low_balance(d("3"), Some(d("4"))).low_armed);
    assert!(fired.with_low_balance(d("3"), None).low_armed);
}
