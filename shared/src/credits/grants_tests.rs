//! Grants: validation of the PUT body, idempotency by grant id, kinds, voiding.

use chrono::Duration;

use super::test_support::*;
use super::*;
use crate::domain::{OrgId, UserId};

fn req(amount: &str) -> GrantRequest {
    GrantRequest::new(d(amount), GrantKind::Purchase)
}

#[test]
fn a_grant_request_is_validated_field_by_field() {
    let now = h(100);
    let note = |n: usize, c: char| Some(std::iter::repeat_n(c, n).collect::<String>());
    // (amount, expires_at, note, expected error code)
    let cases: Vec<(&str, Option<_>, Option<String>, Option<&str>)> = vec![
        ("10", None, None, None),
        ("0.000001", None, None, None),
        ("1.5000000", None, None, None), // trailing zeros are not decimal places
        ("1000000000000000", None, None, None),
        ("0", None, None, Some("amount_not_positive")),
        ("-5", None, None, Some("amount_not_positive")),
        ("0.0000000", None, None, Some("amount_not_positive")),
        (
            "1000000000000000.000001",
            None,
            None,
            Some("amount_too_large"),
        ),
        ("0.0000001", None, None, Some("too_many_decimals")),
        ("12.3456789", None, None, Some("too_many_decimals")),
        ("10", Some(now + Duration::seconds(1)), None, None),
        ("10", Some(now), None, Some("expiry_in_the_past")),
        (
            "10",
            Some(now - Duration::days(1)),
            None,
            Some("expiry_in_the_past"),
        ),
        ("10", None, note(1024, 'x'), None),
        ("10", None, note(1024, 'é'), None), // characters, not bytes
        ("10", None, note(1025, 'x'), Some("too_long")),
        // The amount is checked first.
        ("0", Some(now), note(2000, 'x'), Some("amount_not_positive")),
    ];
    for (amount, expires_at, note, expected) in cases {
        let r = GrantRequest {
            expires_at,
            note: note.clone(),
            ..req(amount)
        };
        let got = r.validate(now).err().map(|e| e.code());
        assert_eq!(
            got,
            expected,
            "{amount} {expires_at:?} note {:?}",
            note.map(|n| n.len())
        );
    }
}

#[test]
fn errors_have_stable_codes_and_fields() {
    let cases = [
        (
            CreditError::AmountNotPositive {
                field: "amount_usd",
            },
            "amount_not_positive",
            "amount_usd",
        ),
        (
            CreditError::AmountTooLarge {
                field: "amount_usd",
            },
            "amount_too_large",
            "amount_usd",
        ),
        (
            CreditError::TooManyDecimals {
                field: "low_balance_usd",
            },
            "too_many_decimals",
            "low_balance_usd",
        ),
        (
            CreditError::ExpiryInThePast,
            "expiry_in_the_past",
            "expires_at",
        ),
        (
            CreditError::TooLong {
                field: "note",
                max: 1024,
            },
            "too_long",
            "note",
        ),
        (
            CreditError::GrantConflict("g".into()),
            "grant_conflict",
            "grant_id",
        ),
        (
            CreditError::NegativeAmount { field: "cost_usd" },
            "negative_amount",
            "cost_usd",
        ),
        (
            CreditError::UnknownGrant("g".into()),
            "unknown_grant",
            "grant_id",
        ),
        (CreditError::Overflow, "overflow", ""),
    ];
    for (err, code, field) in cases {
        assert_eq!((err.code(), err.field()), (code, field), "{err}");
    }
}

#[test]
fn a_new_grant_starts_full_at_its_creation() {
    let r = GrantRequest {
        expires_at: Some(h(48)),
        priority: 3,
        note: Some("spring promo".into()),
        ..GrantRequest::new(d("5"), GrantKind::Promo)
    };
    let PutGrant::Created(g) = put_grant(None, gid("promo-1"), r, h(1)).unwrap() else {
        panic!("expected a new grant");
    };
    assert_eq!(g.id.as_str(), "promo-1");
    assert_eq!((g.amount_usd, g.remaining_usd), (d("5"), d("5")));
    assert_eq!((g.priority, g.kind), (3, GrantKind::Promo));
    assert_eq!(
        (g.created_at, g.expires_at, g.voided_at),
        (h(1), Some(h(48)), None)
    );
    assert_eq!(g.note.as_deref(), Some("spring promo"));
}

#[test]
fn priorities_are_zero_to_a_thousand() {
    for (p, ok) in [
        (-1, false),
        (0, true),
        (10, true),
        (MAX_PRIORITY, true),
        (1001, false),
    ] {
        let r = GrantRequest {
            priority: p,
            ..req("1")
        };
        match r.validate_body() {
            Ok(()) => assert!(ok, "{p}"),
            Err(e) => {
                assert!(!ok, "{p}");
                assert_eq!((e.code(), e.field()), ("priority_out_of_range", "priority"));
            }
        }
    }
}

#[test]
fn the_default_priority_is_ten() {
    assert_eq!(req("1").priority, 10);
    assert_eq!(DEFAULT_PRIORITY, 10);
}

#[test]
fn the_same_body_again_changes_nothing_even_after_draws_and_expiry() {
    let r = GrantRequest {
        expires_at: Some(h(10)),
        ..req("10")
    };
    let PutGrant::Created(mut g) = put_grant(None, gid("g"), r.clone(), h(0)).unwrap() else {
        panic!("expected a new grant");
    };
    g.remaining_usd = d("3.25");
    // At hour 20 the expiry has passed: a replay is still the same body, not a new grant.
    let again = put_grant(Some(&g), gid("g"), r.clone(), h(20)).unwrap();
    assert_eq!(again, PutGrant::Unchanged(g.clone()));
    assert_eq!(again.grant().remaining_usd, d("3.25"));
    // The same amount written with trailing zeros is the same body.
    let padded = GrantRequest {
        amount_usd: d("10.000"),
        ..r
    };
    assert!(padded.same_as(&g));
    g.voided_at = Some(h(5));
    assert!(matches!(
        put_grant(Some(&g), gid("g"), padded, h(20)),
        Ok(PutGrant::Unchanged(_))
    ));
}

#[test]
fn another_body_under_the_same_id_is_a_conflict() {
    let base = GrantRequest {
        expires_at: Some(h(10)),
        note: Some("n".into()),
        ..req("10")
    };
    let g = base.clone().into_grant(gid("g"), h(0)).unwrap();
    let others = [
        GrantRequest {
            amount_usd: d("10.000001"),
            ..base.clone()
        },
        GrantRequest {
            expires_at: None,
            ..base.clone()
        },
        GrantRequest {
            expires_at: Some(h(11)),
            ..base.clone()
        },
        GrantRequest {
            priority: 9,
            ..base.clone()
        },
        GrantRequest {
            kind: GrantKind::Promo,
            ..base.clone()
        },
        GrantRequest {
            note: None,
            ..base.clone()
        },
        GrantRequest {
            note: Some("N".into()),
            ..base.clone()
        },
    ];
    for other in others {
        assert!(!other.same_as(&g), "{other:?}");
        let err = put_grant(Some(&g), gid("g"), other, h(1)).unwrap_err();
        assert_eq!(err, CreditError::GrantConflict("g".into()));
        assert_eq!(err.code(), "grant_conflict");
    }
}

#[test]
fn a_bad_body_is_reported_before_a_conflict() {
    let g = req("10").into_grant(gid("g"), h(0)).unwrap();
    let err = put_grant(Some(&g), gid("g"), req("0.1234567"), h(1)).unwrap_err();
    assert_eq!(err.code(), "too_many_decimals");
    // A new grant must expire after now.
    let late = GrantRequest {
        expires_at: Some(h(1)),
        ..req("1")
    };
    let err = put_grant(None, gid("h"), late, h(1)).unwrap_err();
    assert_eq!(err.code(), "expiry_in_the_past");
}

#[test]
fn kinds_are_snake_case_in_json_and_text() {
    for (kind, text) in [
        (GrantKind::Purchase, "purchase"),
        (GrantKind::Promo, "promo"),
        (GrantKind::Refund, "refund"),
        (GrantKind::Adjustment, "adjustment"),
    ] {
        assert_eq!(kind.as_str(), text);
        assert_eq!(kind.to_string(), text);
        assert_eq!(text.parse::<GrantKind>(), Ok(kind));
        assert_eq!(serde_json::to_string(&kind).unwrap(), format!("\"{text}\""));
        assert_eq!(
            serde_json::from_str::<GrantKind>(&format!("\"{text}\"")).unwrap(),
            kind
        );
    }
    assert_eq!("Promo".parse::<GrantKind>(), Err(UnknownKind));
    assert!(serde_json::from_str::<GrantKind>("\"gift\"").is_err());
}

#[test]
fn a_stored_grant_keeps_its_money_as_exact_text() {
    let g = grant("g-1", "10.50").remaining("0.0008125").expires(h(24));
    let json = serde_json::to_value(&g).unwrap();
    assert_eq!(json["amount_usd"], "10.50");
    assert_eq!(json["remaining_usd"], "0.0008125");
    assert_eq!(json["kind"], "purchase");
    assert_eq!(json["expires_at"], "2025-01-02T00:00:00Z");
    let back: Grant = serde_json::from_value(json).unwrap();
    assert_eq!(back, g);
}

#[test]
fn status_and_counting_follow_void_then_expiry() {
    let g = grant("g", "1").expires(h(10));
    assert_eq!(g.status(h(9)), GrantStatus::Active);
    assert!(g.counts(h(9)));
    // It stops counting at its instant exactly.
    assert_eq!(g.status(h(10)), GrantStatus::Expired);
    assert!(!g.counts(h(10)));
    let v = g.clone().voided(h(5));
    assert_eq!(v.status(h(6)), GrantStatus::Voided);
    assert_eq!(v.status(h(11)), GrantStatus::Voided);
    assert!(!v.counts(h(6)));
}

#[test]
fn voiding_removes_what_is_left_once() {
    let mut g = grant("g", "10").remaining("4.5");
    assert_eq!(g.void(h(3)), d("4.5"));
    assert_eq!(g.voided_at, Some(h(3)));
    // Again: nothing more is removed, and the first void stays.
    assert_eq!(g.void(h(4)), d("0"));
    assert_eq!(g.voided_at, Some(h(3)));
    // An expired grant had nothing counting left to remove.
    let mut e = grant("e", "10").expires(h(2));
    assert_eq!(e.void(h(3)), d("0"));
    assert_eq!(e.status(h(3)), GrantStatus::Voided);
    assert_eq!(e.used_usd(), d("0"));
}

#[test]
fn subscribers_name_their_wallet_path() {
    let u = Subscriber::User(UserId::parse("alice@example.com").unwrap());
    let o = Subscriber::Org(OrgId::parse("acme").unwrap());
    assert_eq!(u.to_string(), "user/alice@example.com");
    assert_eq!(o.to_string(), "org/acme");
    assert_eq!((u.kind(), u.id()), ("user", "alice@example.com"));
    assert_eq!(
        serde_json::to_value(&o).unwrap(),
        serde_json::json!({"kind": "org", "id": "acme"})
    );
    let back: Subscriber =
        serde_json::from_str(r#"{"kind":"user","id":"alice@example.com"}"#).unwrap();
    assert_eq!(back, u);
    assert!(serde_json::from_str::<Subscriber>(r#"{"kind":"org","id":"a#b"}"#).is_err());
}
