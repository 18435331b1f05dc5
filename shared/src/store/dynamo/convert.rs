//! Item ↔ domain mapping: records as native DynamoDB attributes (through their serde
//! form), exact numbers, and a small expression builder.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::keys;
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
        if keys::BOOKKEEPING.contains(&k.as_str()) {
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

/// Collects `#name` / `:value` placeholders of one request's expressions.
#[derive(Debug, Default)]
pub struct Expr {
    names: HashMap<String, String>,
    by_attr: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl Expr {
    /// The placeholder of attribute `attr` (the same one each time).
    pub fn name(&mut self, attr: &str) -> String {
        if let Some(p) = self.by_attr.get(attr) {
            return p.clone();
        }
        let p = format!("#n{}", self.by_attr.len());
        self.by_attr.insert(attr.to_owned(), p.clone());
        self.names.insert(p.clone(), attr.to_owned());
        p
    }

    pub fn value(&mut self, v: AttributeValue) -> String {
        let p = format!(":v{}", self.values.len());
        self.values.insert(p.clone(), v);
        p
    }

    pub fn names(&self) -> Option<HashMap<String, String>> {
        (!self.names.is_empty()).then(|| self.names.clone())
    }

    pub fn values(&self) -> Option<HashMap<String, AttributeValue>> {
        (!self.values.is_empty()).then(|| self.values.clone())
    }
}

/// An update expression under construction.
#[derive(Debug, Default)]
pub struct Update {
    pub expr: Expr,
    sets: Vec<String>,
    adds: Vec<String>,
    deletes: Vec<String>,
    removes: Vec<String>,
    conditions: Vec<String>,
}

impl Update {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn set(&mut self, attr: &str, v: AttributeValue) -> &mut Self {
        let (n, v) = (self.expr.name(attr), self.expr.value(v));
        self.sets.push(format!("{n} = {v}"));
        self
    }

    pub fn add(&mut self, attr: &str, v: AttributeValue) -> &mut Self {
        let (n, v) = (self.expr.name(attr), self.expr.value(v));
        self.adds.push(format!("{n} {v}"));
        self
    }

    /// `DELETE attr :v`: removes the elements of the set `v` from a set attribute.
    pub fn delete(&mut self, attr: &str, v: AttributeValue) -> &mut Self {
        let (n, v) = (self.expr.name(attr), self.expr.value(v));
        self.deletes.push(format!("{n} {v}"));
        self
    }

    pub fn remove(&mut self, attr: &str) -> &mut Self {
        let n = self.expr.name(attr);
        self.removes.push(n);
        self
    }

    /// Adds a condition (all conditions are ANDed); `f` builds it from placeholders.
    pub fn condition(&mut self, f: impl FnOnce(&mut Expr) -> String) -> &mut Self {
        let c = f(&mut self.expr);
        self.conditions.push(c);
        self
    }

    pub fn update_expression(&self) -> String {
        let mut parts = Vec::new();
        if !self.sets.is_empty() {
            parts.push(format!("SET {}", self.sets.join(", ")));
        }
        if !self.adds.is_empty() {
            parts.push(format!("ADD {}", self.adds.join(", ")));
        }
        if !self.deletes.is_empty() {
            parts.push(format!("DELETE {}", self.deletes.join(", ")));
        }
        if !self.removes.is_empty() {
            parts.push(format!("REMOVE {}", self.removes.join(", ")));
        }
        parts.join(" ")
    }

    pub fn condition_expression(&self) -> Option<String> {
        (!self.conditions.is_empty()).then(|| {
            self.conditions
                .iter()
                .map(|c| format!("({c})"))
                .collect::<Vec<_>>()
                .join(" AND ")
        })
    }
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

    #[test]
    fn update_builder_reuses_names_and_joins_clauses() {
        let mut u = Update::new();
        u.add("c|x", n(1))
            .add("c|y", n(2))
            .set("s", s("v"))
            .remove("r|1");
        u.condition(|e| format!("attribute_exists({})", e.name("r|1")));
        assert_eq!(
            u.update_expression(),
            "SET #n2 = :v2 ADD #n0 :v0, #n1 :v1 REMOVE #n3"
        );
        assert_eq!(u.condition_expression().unwrap(), "(attribute_exists(#n3))");
        assert_eq!(u.expr.names().unwrap().len(), 4);
    }
}
