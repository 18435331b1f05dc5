//! The wallet bodies (`http::wallets`): never a panic, a rejection is a 4xx, and what is
//! accepted is a grant request whose validation (the service's next step) answers without
//! panicking and, when it passes, keeps the documented bounds (amount `0 < a <= 10^15`
//! with at most 6 decimal places, priority 0..=1000, note at most 1024 characters).

use meter_core::credits::{GrantRequest, MAX_DECIMALS, MAX_NOTE_LEN, MAX_PRIORITY};
use meter_core::domain::GrantId;
use meter_core::http::wallets::{parse_grant, parse_settings};
use meter_core::limits::MAX_AMOUNT;
use meter_core::service::Error;
use proptest::prelude::*;
use rust_decimal::Decimal;
use serde_json::{json, Value};

use super::{client_error, fuzz, gen};

fn pick(options: &'static [&'static str]) -> impl Strategy<Value = Value> {
    proptest::sample::select(options).prop_map(|s| Value::String(s.to_owned()))
}

fn money() -> impl Strategy<Value = Value> {
    prop_oneof![
        6 => "[0-9]{1,4}(\\.[0-9]{1,6})?".prop_map(Value::String),
        1 => pick(&[
            "0", "-1", "0.000000", "1.5000000", "1.0000001", "1e3", "", ".5", "5.",
            "999999999999999.999999", "1000000000000000", "9999999999999999", "+1", "1_000",
            "٣", "00000000000000001", "1.00000000000000000000000000000000000"
        ]),
        1 => prop_oneof![Just(json!(10)), Just(json!(2.5)), Just(json!(1e300)), Just(json!(-1))],
        1 => any::<String>().prop_map(Value::String),
        1 => Just(Value::Null),
    ]
}

fn priority() -> impl Strategy<Value = Value> {
    prop_oneof![
        (-5i64..1010).prop_map(Value::from),
        Just(json!(5.0)),
        Just(json!(1.5)),
        Just(json!(1e20)),
        Just(json!(i64::MIN)),
        Just(json!(u64::MAX)),
        Just(json!("3")),
    ]
}

/// Grant-shaped bodies: every field usually present, each value usually plausible.
fn grant_body() -> impl Strategy<Value = Value> {
    let field = |s: BoxedStrategy<Value>| proptest::option::weighted(0.9, s);
    (
        field(money().boxed()),
        field(pick(&["purchase", "promo", "refund", "adjustment", "gift", ""]).boxed()),
        proptest::option::weighted(
            0.5,
            prop_oneof![
                pick(&[
                    "2099-01-01T00:00:00Z",
                    "2020-01-01T00:00:00Z",
                    "2099-01-01T00:00:00+05:30",
                    "tomorrow",
                    "2099-13-01T00:00:00Z"
                ]),
                gen::json()
            ]
            .boxed(),
        ),
        proptest::option::weighted(0.5, priority().boxed()),
        proptest::option::weighted(
            0.3,
            prop_oneof![
                "[ -~]{0,40}".prop_map(Value::String),
                Just(Value::String("n".repeat(1025)))
            ]
            .boxed(),
        ),
        proptest::option::weighted(0.1, pick(&["fuzz", "other"]).boxed()),
        proptest::option::weighted(0.1, (any::<String>(), gen::json()).boxed()),
    )
        .prop_map(|(amount, kind, expires, priority, note, grant_id, extra)| {
            let mut m = serde_json::Map::new();
            for (k, v) in [
                ("amount_usd", amount),
                ("kind", kind),
                ("expires_at", expires),
                ("priority", priority),
                ("note", note),
                ("grant_id", grant_id),
            ] {
                if let Some(v) = v {
                    m.insert(k.into(), v);
                }
            }
            if let Some((k, v)) = extra {
                m.insert(k, v);
            }
            Value::Object(m)
        })
}

/// `true` if the body was accepted.
fn grant(body: &Value) -> Result<bool, TestCaseError> {
    let id = GrantId::parse("fuzz").unwrap();
    let req: GrantRequest = match parse_grant(&id, body) {
        Ok(req) => req,
        Err(e) => {
            client_error(&e)?;
            return Ok(false);
        }
    };
    match req.validate(super::now()) {
        Ok(()) => {
            prop_assert!(req.amount_usd > Decimal::ZERO && req.amount_usd <= MAX_AMOUNT);
            prop_assert!(req.amount_usd.normalize().scale() <= MAX_DECIMALS);
            prop_assert!((0..=MAX_PRIORITY).contains(&req.priority));
            prop_assert!(req
                .note
                .as_ref()
                .is_none_or(|n| n.chars().count() <= MAX_NOTE_LEN));
        }
        Err(e) => client_error(&Error::invalid(e.field(), e.code(), e.to_string()))?,
    }
    Ok(true)
}

fn settings(body: &Value) -> Result<bool, TestCaseError> {
    match parse_settings(body) {
        Ok(low) => {
            match meter_core::credits::validate_low_balance(low) {
                Ok(()) => prop_assert!(low.is_none_or(|l| l > Decimal::ZERO && l <= MAX_AMOUNT)),
                Err(e) => client_error(&Error::invalid(e.field(), e.code(), e.to_string()))?,
            }
            Ok(true)
        }
        Err(e) => {
            client_error(&e)?;
            Ok(false)
        }
    }
}

#[test]
fn fuzz_grant_bodies_structure_aware() {
    fuzz(
        "wallets/grant_structured",
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fuzz/regressions/wallets_grant_structured.txt"
        ),
        grant_body,
        |v| grant(&v),
    );
}

#[test]
fn fuzz_grant_bodies_from_arbitrary_json() {
    fuzz(
        "wallets/grant_json",
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fuzz/regressions/wallets_grant_json.txt"
        ),
        gen::json,
        |v| grant(&v),
    );
}

#[test]
fn fuzz_wallet_settings_bodies() {
    fuzz(
        "wallets/settings",
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fuzz/regressions/wallets_settings.txt"
        ),
        || {
            prop_oneof![
                3 => money().prop_map(|m| json!({"low_balance_usd": m})),
                1 => gen::json(),
            ]
        },
        |v| settings(&v),
    );
}
