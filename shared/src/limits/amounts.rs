//! How limit amounts are written in answers: counts (calls, tokens) as JSON integers,
//! money as exact decimal strings, percentages as JSON numbers with two decimals.

use std::collections::BTreeMap;

use rust_decimal::prelude::ToPrimitive as _;
use rust_decimal::Decimal;
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use super::Metric;

/// One amount of a metric: a whole count, or money as an exact string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Amount {
    Count(u64),
    Money(String),
}

impl Amount {
    pub fn of(metric: &Metric, amount: Decimal) -> Self {
        if metric.is_count() {
            amount
                .normalize()
                .to_string()
                .parse::<u64>()
                .map_or_else(|_| Amount::Money(amount.to_string()), Amount::Count)
        } else {
            Amount::Money(amount.normalize().to_string())
        }
    }
}

/// `{metric: amount}`, each written as [`Amount`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricAmounts(pub BTreeMap<Metric, Decimal>);

impl Serialize for MetricAmounts {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (m, v) in &self.0 {
            map.serialize_entry(m, &Amount::of(m, *v))?;
        }
        map.end()
    }
}

/// `{metric: percentage}`, each a JSON number with two decimals (never money).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Percentages(pub BTreeMap<Metric, Decimal>);

impl Serialize for Percentages {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (m, v) in &self.0 {
            map.serialize_entry(m, &percent_number(*v))?;
        }
        map.end()
    }
}

/// A percentage as the JSON number shown to people: two decimals.
pub fn percent_number(pct: Decimal) -> f64 {
    pct.round_dp(2).to_f64().unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;

    use super::*;

    #[test]
    fn counts_are_integers_and_money_exact_strings() {
        let calls = Metric::parse("calls:gemini").unwrap();
        let v = serde_json::to_value(MetricAmounts(BTreeMap::from([
            (calls.clone(), dec!(100.00)),
            (Metric::CostUsd, dec!(1.9992000)),
        ])))
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({"calls:gemini": 100, "cost_usd": "1.9992"})
        );
        assert_eq!(
            serde_json::to_value(Percentages(BTreeMap::from([(calls, dec!(12.345))]))).unwrap(),
            serde_json::json!({"calls:gemini": 12.34})
        );
    }
}
