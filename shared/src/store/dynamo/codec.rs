//! Attribute values ↔ domain values: records as native DynamoDB attributes (through
//! their serde form), exact numbers and timestamps.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::layout;
use crate::store::{StoreError, StoreResult};

pub type Item = HashMap<String, AttributeValue>;

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

/// A JSON value as a DynamoDB attribute (numbers stay exact `N` text).
pub fn json_to_av(v: &serde_json::Value) -> AttributeValue {
    use serde_json::Value;
    match v {
        Value::Null => AttributeValue::Null(true),
        Value::Bool(b) => AttributeValue::Bool(*b),
        Value::Number(n) => AttributeValue::N(n.to_string()),
        Value::String(s) => AttributeValue::S(s.clone()),
        Value::Array(a) => AttributeValue::L(a.iter().map(json_to_av).collect()),
        Value::Object(o) => {
            AttributeValue::M(o.iter().map(|(k, v)| (k.clone(), json_to_av(v))).collect())
        }
    }
}

/// The JSON value of an attribute written by [`json_to_av`].
pub fn av_to_json(av: &AttributeValue) -> StoreResult<serde_json::Value> {
    use serde_json::Value;
    Ok(match av {
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::S(s) => Value::String(s.clone()),
        AttributeValue::N(n) => {
            if let Ok(u) = n.parse::<u64>() {
                Value::from(u)
            } else if let Ok(i) = n.parse::<i64>() {
                Value::from(i)
            } else {
                let f: f64 = n.parse().map_err(|_| corrupt(format!("number `{n}`")))?;
                serde_json::Number::from_f64(f)
                    .map(Value::Number)
                    .ok_or_else(|| corrupt(format!("number `{n}`")))?
            }
        }
        AttributeValue::L(l) => Value::Array(l.iter().map(av_to_json).collect::<StoreResult<_>>()?),
        AttributeValue::M(m) => Value::Object(
            m.iter()
                .map(|(k, v)| Ok((k.clone(), av_to_json(v)?)))
                .collect::<StoreResult<_>>()?,
        ),
        other => return Err(corrupt(format!("unexpected attribute type {other:?}"))),
    })
}

/// A record's fields as item attributes (to which the caller adds keys).
pub fn to_item<T: Serialize>(record: &T) -> StoreResult<Item> {
    match serde_json::to_value(record).map_err(corrupt)? {
        serde_json::Value::Object(o) => {
            Ok(o.iter().map(|(k, v)| (k.clone(), json_to_av(v))).collect())
        }
        _ => Err(corrupt("record is not an object")),
    }
}

/// The record stored in `item`, ignoring keys and bookkeeping attributes.
pub fn from_item<T: DeserializeOwned>(item: &Item) -> StoreResult<T> {
    let mut obj = serde_json::Map::new();
    for (k, v) in item {
        if layout::BOOKKEEPING.contains(&k.as_str()) {
            continue;
        }
        obj.insert(k.clone(), av_to_json(v)?);
    }
    serde_json::from_value(serde_json::Value::Object(obj)).map_err(corrupt)
}

pub fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub fn n(v: impl std::fmt::Display) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub fn get_s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

/// Parses DynamoDB number text exactly.
pub fn parse_decimal(text: &str) -> StoreResult<Decimal> {
    let parsed = if text.contains(['e', 'E']) {
        Decimal::from_scientific(text)
    } else {
        text.parse::<Decimal>()
    };
    parsed.map_err(|_| StoreError::Overflow(format!("number `{text}` does not fit a Decimal")))
}

pub fn decimal_of(av: &AttributeValue) -> StoreResult<Decimal> {
    match av {
        AttributeValue::N(t) => parse_decimal(t),
        other => Err(corrupt(format!("expected a number, found {other:?}"))),
    }
}

pub fn decimal_attr(item: &Item, name: &str) -> StoreResult<Decimal> {
    item.get(name).map_or(Ok(Decimal::ZERO), decimal_of)
}

/// A whole non-negative count.
pub fn count_of(d: Decimal, what: &str) -> StoreResult<u64> {
    if d.is_sign_negative() && !d.is_zero() || !d.fract().is_zero() {
        return Err(corrupt(format!("{what} is not a count: {d}")));
    }
    u64::try_from(d).map_err(|_| StoreError::Overflow(format!("{what} = {d}")))
}

pub fn time_of(text: &str) -> StoreResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| corrupt(format!("timestamp `{text}`")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn json_round_trips_through_attributes() {
        let v = serde_json::json!({"a": null, "b": true, "c": 12345678901234u64, "d": -3, "e": 1.5,
            "f": "0.0008125", "g": [1, "x", {"h": []}]});
        assert_eq!(av_to_json(&json_to_av(&v)).unwrap(), v);
    }

    #[test]
    fn numbers_parse_exactly_including_scientific_text() {
        assert_eq!(parse_decimal("0.0000001").unwrap(), dec!(0.0000001));
        assert_eq!(parse_decimal("-12.50").unwrap(), dec!(-12.5));
        assert_eq!(parse_decimal("1E+2").unwrap(), dec!(100));
        assert!(matches!(
            parse_decimal("1e40"),
            Err(StoreError::Overflow(_))
        ));
    }

    #[test]
    fn counts_reject_fractions_and_negatives() {
        assert_eq!(count_of(dec!(42), "x").unwrap(), 42);
        assert_eq!(count_of(dec!(-0), "x").unwrap(), 0);
        assert!(count_of(dec!(1.5), "x").is_err());
        assert!(count_of(dec!(-1), "x").is_err());
    }
}
