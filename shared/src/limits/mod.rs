//! Plans, limit metrics and the check decision.
//!
//! A plan's limits map a [`Metric`] to a non-negative value. An absent metric is
//! unlimited; `0` means none allowed.
//!
//! - [`plans`]: the default plans and plan validation;
//! - [`decision`]: the check decision, remaining limits, percentages and usage status,
//!   and the upgrade suggestion;
//! - [`guards`]: the conditions a reservation's write passes atomically in the store;
//! - [`recommend`]: the plan to recommend, and the cost projection;
//! - [`thresholds`]: which alert thresholds a change of usage crosses;
//! - [`validation`]: the rules for limit values and alert thresholds (plans and budgets);
//! - [`amounts`]: how amounts and percentages are written in answers.

use std::collections::BTreeMap;
use std::fmt;

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::domain::{PlanName, ProviderId};

pub mod amounts;
pub mod decision;
pub mod guards;
pub mod plans;
pub mod recommend;
pub mod thresholds;
pub mod validation;

pub use amounts::{Amount, MetricAmounts, Percentages};
pub use decision::{
    cheapest_plan_allowing, decide, left_of, metric_status, percentage, percentages, remaining,
    requirement, usage_status, used, used_saturating, CallEstimate, Decision, DecisionError,
    Requirement, UsageStatus, Violation,
};
pub use guards::{guards_for, Guard};
pub use plans::{default_plans, default_thresholds, parse_plans, PlanError, MAX_AMOUNT};
pub use recommend::{
    projected_cost, recommendations, recommended_plan, recorded_amount, Recommendation,
};
pub use thresholds::{crossed_thresholds, reached, threshold_level};
pub use validation::{validate_limits, validate_thresholds, LimitError};

/// What a limit counts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    /// `calls:<provider>` or, with `None`, `calls:*` (all providers).
    Calls(Option<ProviderId>),
    /// `tokens:<provider>` or `tokens:*`: input + output tokens (cache tokens are part of input).
    Tokens(Option<ProviderId>),
    /// `cost_usd`: the monthly cost cap over all providers.
    CostUsd,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown metric `{0}`: expected calls:<provider>, tokens:<provider>, calls:*, tokens:* or cost_usd")]
pub struct MetricParseError(pub String);

impl Metric {
    pub fn parse(s: &str) -> Result<Self, MetricParseError> {
        let err = || MetricParseError(s.chars().take(80).collect());
        if s == "cost_usd" {
            return Ok(Metric::CostUsd);
        }
        let (kind, provider) = s.split_once(':').ok_or_else(err)?;
        let provider = match provider {
            "*" => None,
            p => Some(ProviderId::parse(p).map_err(|_| err())?),
        };
        match kind {
            "calls" => Ok(Metric::Calls(provider)),
            "tokens" => Ok(Metric::Tokens(provider)),
            _ => Err(err()),
        }
    }

    /// Whether the metric's value is a whole count (calls, tokens) rather than money.
    pub fn is_count(&self) -> bool {
        !matches!(self, Metric::CostUsd)
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Pieces written as they are: no string built per metric (a check's and a
        // dashboard's answers name every metric of the plan).
        let (kind, provider) = match self {
            Metric::Calls(p) => ("calls:", p),
            Metric::Tokens(p) => ("tokens:", p),
            Metric::CostUsd => return f.write_str("cost_usd"),
        };
        f.write_str(kind)?;
        f.write_str(provider.as_ref().map_or("*", |p| p.as_str()))
    }
}

impl Serialize for Metric {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Metric {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Metric::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A plan's limits: absent metric = unlimited, `0` = none allowed. Values are
/// non-negative; count metrics are whole numbers.
///
/// Serialized as a map of metric to decimal string. Deserialization also accepts JSON
/// integers (`"calls:gemini": 100`); JSON numbers with a fraction are refused, because
/// they would pass through `f64` (write `"cost_usd": "2.50"`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Limits(pub BTreeMap<Metric, Decimal>);

impl Limits {
    /// The limit of `metric`, `None` when unlimited.
    pub fn get(&self, metric: &Metric) -> Option<Decimal> {
        self.0.get(metric).copied()
    }
}

impl<'de> Deserialize<'de> for Limits {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = BTreeMap::<Metric, LimitValue>::deserialize(d)?;
        Ok(Limits(raw.into_iter().map(|(m, v)| (m, v.0)).collect()))
    }
}

/// One limit value as written in JSON: a decimal string or an integer.
struct LimitValue(Decimal);

impl<'de> Deserialize<'de> for LimitValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = LimitValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a decimal string or an integer")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<LimitValue, E> {
                Decimal::from_str_exact(s)
                    .map(LimitValue)
                    .map_err(|_| E::custom("limit is not an exact decimal number"))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<LimitValue, E> {
                Ok(LimitValue(Decimal::from(v)))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<LimitValue, E> {
                Ok(LimitValue(Decimal::from(v)))
            }
            fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<LimitValue, E> {
                Err(E::custom(
                    "write fractional limits as decimal strings, e.g. \"2.50\"",
                ))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// The tier a plan is sold as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlanTier {
    Free,
    Basic,
    Pro,
    Enterprise,
    Custom,
}

/// A subscription plan of one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub name: PlanName,
    pub tier: PlanTier,
    #[serde(with = "rust_decimal::serde::str")]
    pub monthly_price_usd: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub yearly_price_usd: Decimal,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub features: Vec<String>,
    /// Percentages of a limit at which alerts fire (default 80, 90, 100).
    #[serde(default = "plans::default_thresholds")]
    pub alert_thresholds: Vec<u8>,
    pub limits: Limits,
    /// Price per USD of usage cost past the cost cap, when the plan bills overage
    /// (`None`: usage past the cap is not billed beyond its cost).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "rust_decimal::serde::str_option"
    )]
    pub overage_rate: Option<Decimal>,
    /// Inactive plans are hidden from `/plans` and cannot be newly subscribed to.
    #[serde(default = "active_by_default")]
    pub active: bool,
    /// How usage is paid (§11): `postpaid` (default: invoiced, credits reduce the
    /// invoice) or `prepaid` (checks need credit in the subscriber's wallet).
    #[serde(default)]
    pub payment: Payment,
}

/// How a plan's usage is paid (§11, docs/credits.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Payment {
    /// Usage is invoiced after the period; wallet credit reduces the invoice.
    #[default]
    Postpaid,
    /// Usage must be covered by wallet credit: the check denies (`credits_usd`) an
    /// estimate beyond `available_usd`, reservations hold credit, events draw from grants.
    Prepaid,
}

impl Payment {
    pub fn as_str(self) -> &'static str {
        match self {
            Payment::Postpaid => "postpaid",
            Payment::Prepaid => "prepaid",
        }
    }
}

fn active_by_default() -> bool {
    true
}
