//! The amounts of the admin bodies (plans and price versions), checked as openapi.yaml
//! states them before the bodies reach serde.
//!
//! Money is a decimal string of at most 15 integer and 13 fraction digits (28 digits fit a
//! `Decimal` exactly, so nothing is rounded; a sign is let through for the domain's own
//! `negative_price`/`negative_limit`). Not accepted: JSON numbers, exponents (`1e-7`),
//! `+`, `_`, `.5`, `5.`, the empty string. Integers may be written with a zero fraction
//! (`80.0`), as JSON Schema's `integer` allows; they are rewritten as integers here.

use serde_json::{Map, Number, Value};

use super::error::FieldError;
use crate::domain::ids::PriceVersionId;

/// Most integer digits of a money string.
pub const MONEY_INTEGER_DIGITS: usize = 15;
/// Most fraction digits of a money string.
pub const MONEY_FRACTION_DIGITS: usize = 13;
/// Largest limit of a plan (15 digits, as a money string's integer part).
pub const MAX_LIMIT: u64 = 999_999_999_999_999;
/// Largest long-context tier threshold: a prompt of at most 10^12 tokens.
pub const MAX_TIER_THRESHOLD: u64 = crate::usage::MAX_COUNT;
/// Longest `source` of a price version.
pub const MAX_SOURCE_LEN: usize = 1024;

const PLAN_PRICES: [&str; 3] = ["monthly_price_usd", "yearly_price_usd", "overage_rate"];
const PRICE_COMPONENTS: [&str; 9] = [
    "input_token",
    "output_token",
    "cache_read_token",
    "cache_write_token",
    "reasoning_token",
    "request",
    "search",
    "image",
    "page",
];
const TIER_RATES: [&str; 5] = ["input", "output", "cache_read", "cache_write", "reasoning"];

/// `-?D{1,15}(.D{1,13})?`
pub fn is_money(s: &str) -> bool {
    let unsigned = s.strip_prefix('-').unwrap_or(s);
    let (int, frac) = match unsigned.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (unsigned, None),
    };
    let digits = |p: &str, max: usize| {
        !p.is_empty() && p.len() <= max && p.bytes().all(|b| b.is_ascii_digit())
    };
    digits(int, MONEY_INTEGER_DIGITS) && frac.is_none_or(|f| digits(f, MONEY_FRACTION_DIGITS))
}

/// A well-formed unsigned decimal whose integer part has more than 15 digits (too large,
/// rather than malformed).
pub(super) fn too_large(s: &str) -> bool {
    let int = s.split_once('.').map_or(s, |(i, _)| i);
    int.len() > MONEY_INTEGER_DIGITS
        && s.bytes().filter(|&b| b == b'.').count() <= 1
        && s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && !s.ends_with('.')
}

const MONEY_MESSAGE: &str =
    "must be a decimal string such as \"49.00\", with at most 15 integer and 13 fraction digits";

/// `v` as an integer when it is one (a JSON integer, or a float with a zero fraction within
/// ±2^53, where floats are exact).
fn integer(v: &Value) -> Option<i128> {
    if let Some(n) = v.as_i64() {
        return Some(i128::from(n));
    }
    if let Some(n) = v.as_u64() {
        return Some(i128::from(n));
    }
    let f = v.as_f64()?;
    (f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0).then_some(f as i128)
}

/// Rewrites `v` (a whole number within `min..=max`) as a JSON integer; `false` otherwise.
fn whole(v: &mut Value, min: i128, max: i128) -> bool {
    match integer(v) {
        Some(n) if (min..=max).contains(&n) => {
            *v = match i64::try_from(n) {
                Ok(i) => Value::Number(Number::from(i)),
                Err(_) => return false,
            };
            true
        }
        _ => false,
    }
}

fn money_field(
    obj: &Map<String, Value>,
    key: &str,
    path: &str,
    code: &'static str,
) -> Option<FieldError> {
    match obj.get(key) {
        None => None,
        Some(Value::String(s)) if is_money(s) => None,
        Some(Value::String(s)) if code == "invalid_plan" && too_large(s) => Some(FieldError::new(
            path,
            "price_too_large",
            "must be less than 10^15",
        )),
        Some(_) => Some(FieldError::new(path, code, MONEY_MESSAGE)),
    }
}

/// Checks the prices, limits and thresholds of a plan body (already known to be an object
/// without nulls) and rewrites its whole numbers as integers. Errors use `invalid_plan`.
pub fn plan(obj: &Map<String, Value>) -> Result<Map<String, Value>, Vec<FieldError>> {
    let mut out = obj.clone();
    let mut errors: Vec<FieldError> = PLAN_PRICES
        .iter()
        .filter_map(|k| money_field(obj, k, k, "invalid_plan"))
        .collect();
    if let Some(Value::Object(limits)) = out.get_mut("limits") {
        for (metric, v) in limits.iter_mut() {
            let big = match v {
                Value::String(s) => too_large(s),
                Value::Number(_) => integer(v).is_some_and(|n| n > i128::from(MAX_LIMIT)),
                _ => false,
            };
            let ok = match v {
                Value::String(s) => is_money(s),
                Value::Number(_) => whole(v, -i128::from(MAX_LIMIT), i128::from(MAX_LIMIT)),
                _ => false,
            };
            let shown: String = metric.chars().take(64).collect();
            if big {
                errors.push(FieldError::new(
                    format!("limits.{shown}"),
                    "limit_too_large",
                    "must be less than 10^15",
                ));
            } else if !ok {
                errors.push(FieldError::new(
                    format!("limits.{shown}"),
                    "invalid_plan",
                    "a limit is a JSON integer or a decimal string of at most 15 integer and 13 fraction digits",
                ));
            }
        }
    }
    if let Some(Value::Array(thresholds)) = out.get_mut("alert_thresholds") {
        for t in thresholds.iter_mut() {
            // Anything else is left to serde and the plan's validation.
            let _ = whole(t, 0, i128::from(u8::MAX));
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Checks one price version of a PUT /pricing body (`at` its path, `versions[i]`): the id
/// (1–256 characters of the id charset: it is a storage key), the source (≤ 1024
/// characters) and every price (money strings; tier thresholds whole numbers ≤ 10^12,
/// rewritten as integers). Other fields are left to serde.
pub fn price_version(item: &Value, at: &str) -> Result<Value, Vec<FieldError>> {
    let Value::Object(obj) = item else {
        return Ok(item.clone());
    };
    let mut out = obj.clone();
    let mut errors = Vec::new();
    match obj.get("id") {
        Some(Value::String(id)) => {
            if let Err(e) = PriceVersionId::parse(id.as_str()) {
                errors.push(FieldError::new(
                    format!("{at}.id"),
                    "invalid_id",
                    e.to_string(),
                ));
            }
        }
        Some(_) => errors.push(FieldError::new(
            format!("{at}.id"),
            "invalid_type",
            "must be a string",
        )),
        None => {}
    }
    if let Some(Value::String(source)) = obj.get("source") {
        if source.chars().count() > MAX_SOURCE_LEN {
            errors.push(FieldError::new(
                format!("{at}.source"),
                "too_long",
                format!("must be at most {MAX_SOURCE_LEN} characters"),
            ));
        }
    }
    if let Some(Value::Object(prices)) = out.get_mut("prices") {
        for k in PRICE_COMPONENTS {
            errors.extend(money_field(
                prices,
                k,
                &format!("{at}.prices.{k}"),
                "invalid_price_version",
            ));
        }
        if let Some(Value::Array(tiers)) = prices.get_mut("tiers") {
            for (t, tier) in tiers.iter_mut().enumerate() {
                let Value::Object(tier) = tier else { continue };
                let path = format!("{at}.prices.tiers[{t}]");
                for k in TIER_RATES {
                    errors.extend(money_field(
                        tier,
                        k,
                        &format!("{path}.{k}"),
                        "invalid_price_version",
                    ));
                }
                if let Some(threshold) = tier.get_mut("threshold") {
                    if !whole(threshold, 0, i128::from(MAX_TIER_THRESHOLD)) {
                        errors.push(FieldError::new(
                            format!("{path}.threshold"),
                            "invalid_price_version",
                            format!("must be a whole number of prompt tokens from 0 to {MAX_TIER_THRESHOLD}"),
                        ));
                    }
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(Value::Object(out))
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn money_is_a_bounded_plain_decimal_string() {
        for ok in [
            "0",
            "49",
            "0.00000015",
            "-5",
            "999999999999999.9999999999999",
            "030",
        ] {
            assert!(is_money(ok), "{ok}");
        }
        for bad in [
            "",
            "-",
            ".5",
            "5.",
            "+5",
            "1e-7",
            "1E3",
            "1_000",
            " 1",
            "1 ",
            "0x10",
            "NaN",
            "1000000000000000",
            "0.00000000000001",
            "1.2.3",
            "١",
        ] {
            assert!(!is_money(bad), "{bad}");
        }
    }

    #[test]
    fn plan_amounts_are_checked_and_whole_numbers_rewritten() {
        let body = json!({"monthly_price_usd": "49", "limits": {"calls:gemini": 100.0, "cost_usd": "2.5"},
                          "alert_thresholds": [80.0, 90]});
        let out = plan(body.as_object().unwrap()).unwrap();
        assert_eq!(out["limits"]["calls:gemini"], json!(100));
        assert!(out["limits"]["calls:gemini"].is_i64());
        assert!(out["alert_thresholds"][0].is_i64());
        for (bad, field) in [
            (json!({"monthly_price_usd": 49}), "monthly_price_usd"),
            (json!({"overage_rate": ""}), "overage_rate"),
            (json!({"yearly_price_usd": "4.9e1"}), "yearly_price_usd"),
            (
                json!({"limits": {"calls:gemini": 1.5}}),
                "limits.calls:gemini",
            ),
            (json!({"limits": {"cost_usd": true}}), "limits.cost_usd"),
        ] {
            let e = plan(bad.as_object().unwrap()).unwrap_err();
            assert_eq!(
                (e[0].field.as_str(), e[0].code),
                (field, "invalid_plan"),
                "{bad}"
            );
        }
        // Well-formed but 10^15 or more: too large, not malformed.
        for (big, field, code) in [
            (
                json!({"limits": {"tokens:*": 1_000_000_000_000_000u64}}),
                "limits.tokens:*",
                "limit_too_large",
            ),
            (
                json!({"limits": {"cost_usd": "1000000000000000.5"}}),
                "limits.cost_usd",
                "limit_too_large",
            ),
            (
                json!({"monthly_price_usd": "1000000000000000"}),
                "monthly_price_usd",
                "price_too_large",
            ),
        ] {
            let e = plan(big.as_object().unwrap()).unwrap_err();
            assert_eq!((e[0].field.as_str(), e[0].code), (field, code), "{big}");
        }
        // Negative limits go on to the plan's own validation (`negative_limit`).
        assert!(plan(json!({"limits": {"calls:gemini": -1}}).as_object().unwrap()).is_ok());
    }

    #[test]
    fn price_versions_need_a_key_sized_id_and_money_prices() {
        let v = json!({"id": "acme/acme-1@2026-01-01T00:00:00Z", "source": "tenant",
                       "prices": {"input_token": "0.000001", "tiers": [{"threshold": 200000.0, "input": "0.000002"}]}});
        let out = price_version(&v, "versions[0]").unwrap();
        assert!(out["prices"]["tiers"][0]["threshold"].is_i64());
        let code = |v: Value| {
            let e = price_version(&v, "versions[0]").unwrap_err();
            (e[0].field.clone(), e[0].code)
        };
        assert_eq!(
            code(json!({"id": ""})),
            ("versions[0].id".into(), "invalid_id")
        );
        assert_eq!(
            code(json!({"id": "a b"})),
            ("versions[0].id".into(), "invalid_id")
        );
        assert_eq!(
            code(json!({"id": "x".repeat(257)})),
            ("versions[0].id".into(), "invalid_id")
        );
        assert_eq!(
            code(json!({"source": "s".repeat(1025)})),
            ("versions[0].source".into(), "too_long")
        );
        assert_eq!(
            code(json!({"prices": {"request": null}})),
            ("versions[0].prices.request".into(), "invalid_price_version")
        );
        assert_eq!(
            code(json!({"prices": {"page": "1e-3"}})),
            ("versions[0].prices.page".into(), "invalid_price_version")
        );
        assert_eq!(
            code(json!({"prices": {"tiers": [{"threshold": 1_000_000_000_001u64}]}})),
            (
                "versions[0].prices.tiers[0].threshold".into(),
                "invalid_price_version"
            )
        );
    }
}
