//! The default plans (data/default_plans.json) and plan validation.

use rust_decimal::Decimal;

use super::validation::{validate_limits, validate_thresholds, LimitError};
use super::Plan;

/// The default plans as shipped: Free, Basic, Pro, Enterprise.
const DEFAULT_PLANS_JSON: &str = include_str!("../../data/default_plans.json");

/// Why a plan is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// A limit or an alert threshold breaks the rules every plan and budget obeys.
    #[error(transparent)]
    Limits(#[from] LimitError),
    #[error("{field} must not be negative")]
    NegativePrice { field: &'static str },
    #[error("{field} must be less than 10^15")]
    PriceTooLarge { field: &'static str },
    #[error("the plans file is not valid: {0}")]
    Data(String),
}

impl PlanError {
    /// The stable code of a plan that fails validation.
    pub fn code(&self) -> &'static str {
        match self {
            PlanError::Limits(e) => e.code(),
            PlanError::NegativePrice { .. } => "negative_price",
            PlanError::PriceTooLarge { .. } => "price_too_large",
            PlanError::Data(_) => "invalid_plan",
        }
    }
}

/// The bound of plan limits and prices: they are less than 10^15 (a quadrillion calls,
/// tokens or dollars; at most 15 integer digits, as the API's amounts are written).
pub const MAX_AMOUNT: Decimal = Decimal::from_parts(2_764_472_320, 232_830, 0, false, 0);

/// The alert thresholds a plan gets when none are given: 80, 90 and 100 %.
pub fn default_thresholds() -> Vec<u8> {
    vec![80, 90, 100]
}

/// Parses and validates a JSON array of plans (the format of `data/default_plans.json`).
pub fn parse_plans(json: &str) -> Result<Vec<Plan>, PlanError> {
    let plans: Vec<Plan> =
        serde_json::from_str(json).map_err(|e| PlanError::Data(e.to_string()))?;
    for plan in &plans {
        plan.validate()?;
    }
    Ok(plans)
}

/// The default plans every new tenant starts with: Free ($0; OpenAI and
/// Anthropic limited to 0 = none allowed; $2 cap), Basic ($29/$290; $50 cap),
/// Pro ($79/$790; $150 cap), Enterprise ($199/$1990; no call or token limits, $500 cap).
///
/// # Panics
///
/// Never in practice: the data file is compiled in, and the test
/// `default_plans_parse_and_validate` proves it parses and validates.
#[allow(clippy::expect_used)]
pub fn default_plans() -> Vec<Plan> {
    parse_plans(DEFAULT_PLANS_JSON).expect("data/default_plans.json is checked by the tests")
}

impl Plan {
    /// Checks the plan's invariants: prices (and overage rate) in `0..10^15`
    /// ([`MAX_AMOUNT`]); limits and alert thresholds by the rules every plan and budget
    /// obeys ([`validate_limits`], [`validate_thresholds`]). The bound keeps every product
    /// the service forms with a limit (`limit × 100`, a threshold level) far inside `Decimal`.
    pub fn validate(&self) -> Result<(), PlanError> {
        let prices = [
            ("monthly_price_usd", Some(self.monthly_price_usd)),
            ("yearly_price_usd", Some(self.yearly_price_usd)),
            ("overage_rate", self.overage_rate),
        ];
        for (field, price) in prices {
            if price.is_some_and(|p| p < Decimal::ZERO) {
                return Err(PlanError::NegativePrice { field });
            }
            if price.is_some_and(|p| p >= MAX_AMOUNT) {
                return Err(PlanError::PriceTooLarge { field });
            }
        }
        validate_limits(&self.limits)?;
        validate_thresholds(&self.alert_thresholds)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;

    use super::*;
    use crate::domain::PlanName;
    use crate::limits::{Limits, Metric, PlanTier};

    #[test]
    fn the_largest_amount_is_ten_to_the_fifteen() {
        assert_eq!(MAX_AMOUNT, Decimal::from(1_000_000_000_000_000u64));
    }

    fn plan(name: &str) -> Plan {
        default_plans()
            .into_iter()
            .find(|p| p.name.as_str() == name)
            .unwrap()
    }

    fn limit(p: &Plan, metric: &str) -> Option<Decimal> {
        p.limits.0.get(&Metric::parse(metric).unwrap()).copied()
    }

    #[test]
    fn default_plans_parse_and_validate() {
        let plans = parse_plans(DEFAULT_PLANS_JSON).unwrap();
        let names: Vec<&str> = plans.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["free", "basic", "pro", "enterprise"]);
        assert!(plans
            .iter()
            .all(|p| p.active && p.alert_thresholds == default_thresholds()));
        assert!(plans
            .iter()
            .all(|p| !p.features.is_empty() && !p.description.is_empty()));
        assert_eq!(plans[0].name, PlanName::free());
    }

    #[test]
    fn default_plans_carry_the_seed_prices() {
        let cases = [
            ("free", PlanTier::Free, dec!(0), dec!(0)),
            ("basic", PlanTier::Basic, dec!(29), dec!(290)),
            ("pro", PlanTier::Pro, dec!(79), dec!(790)),
            ("enterprise", PlanTier::Enterprise, dec!(199), dec!(1990)),
        ];
        for (name, tier, monthly, yearly) in cases {
            let p = plan(name);
            assert_eq!(
                (p.tier, p.monthly_price_usd, p.yearly_price_usd),
                (tier, monthly, yearly),
                "{name}"
            );
        }
    }

    #[test]
    fn default_plans_carry_the_seed_limits() {
        // (metric, free, basic, pro); enterprise has only its cost cap.
        let table: [(&str, Option<u64>, u64, u64); 15] = [
            ("calls:gemini", Some(100), 1000, 5000),
            ("tokens:gemini", Some(100_000), 1_000_000, 5_000_000),
            ("calls:openai", Some(0), 500, 2500),
            ("tokens:openai", Some(0), 500_000, 2_500_000),
            ("calls:anthropic", Some(0), 200, 1000),
            ("tokens:anthropic", Some(0), 200_000, 1_000_000),
            ("calls:mistral", Some(50), 500, 2500),
            ("tokens:mistral", None, 500_000, 2_500_000),
            ("calls:tavily", Some(20), 200, 1000),
            ("calls:serper", Some(20), 200, 1000),
            ("calls:metaphor", Some(10), 100, 500),
            ("calls:firecrawl", Some(10), 100, 500),
            ("calls:stability", Some(5), 50, 200),
            ("calls:*", None, 0, 0),
            ("tokens:*", None, 0, 0),
        ];
        let (free, basic, pro) = (plan("free"), plan("basic"), plan("pro"));
        for (metric, f, b, p) in table {
            assert_eq!(limit(&free, metric), f.map(Decimal::from), "free {metric}");
            let expected = |v: u64| (v > 0).then(|| Decimal::from(v));
            assert_eq!(limit(&basic, metric), expected(b), "basic {metric}");
            assert_eq!(limit(&pro, metric), expected(p), "pro {metric}");
        }
        let caps: Vec<Option<Decimal>> = ["free", "basic", "pro", "enterprise"]
            .iter()
            .map(|n| limit(&plan(n), "cost_usd"))
            .collect();
        assert_eq!(
            caps,
            [
                Some(dec!(2)),
                Some(dec!(50)),
                Some(dec!(150)),
                Some(dec!(500))
            ]
        );
        assert_eq!(
            plan("enterprise").limits.0.len(),
            1,
            "enterprise: no call or token limits"
        );
    }

    #[test]
    fn validation_rejects_broken_plans() {
        let base = plan("basic");
        let with = |f: &dyn Fn(&mut Plan)| {
            let mut p = base.clone();
            f(&mut p);
            p.validate()
        };
        let gemini = Metric::parse("calls:gemini").unwrap();
        let cases: Vec<(&str, Result<(), PlanError>)> = vec![
            ("unchanged", with(&|_| {})),
            (
                "negative limit",
                with(&|p| {
                    p.limits.0.insert(gemini.clone(), dec!(-1));
                }),
            ),
            (
                "fractional calls",
                with(&|p| {
                    p.limits.0.insert(gemini.clone(), dec!(10.5));
                }),
            ),
            (
                "fractional cost cap is fine",
                with(&|p| {
                    p.limits.0.insert(Metric::CostUsd, dec!(12.34));
                }),
            ),
            (
                "trailing zeros are whole",
                with(&|p| {
                    p.limits.0.insert(gemini.clone(), dec!(10.00));
                }),
            ),
            ("threshold 0", with(&|p| p.alert_thresholds = vec![0, 80])),
            (
                "threshold 101",
                with(&|p| p.alert_thresholds = vec![80, 101]),
            ),
            (
                "unsorted thresholds",
                with(&|p| p.alert_thresholds = vec![90, 80]),
            ),
            (
                "repeated thresholds",
                with(&|p| p.alert_thresholds = vec![80, 80]),
            ),
            ("no thresholds", with(&|p| p.alert_thresholds = vec![])),
            (
                "negative price",
                with(&|p| p.yearly_price_usd = dec!(-0.01)),
            ),
            (
                "negative overage rate",
                with(&|p| p.overage_rate = Some(dec!(-1))),
            ),
        ];
        let expected: Vec<Result<(), PlanError>> = vec![
            Ok(()),
            Err(PlanError::Limits(LimitError::NegativeLimit {
                metric: gemini.clone(),
            })),
            Err(PlanError::Limits(LimitError::FractionalCount {
                metric: gemini.clone(),
            })),
            Ok(()),
            Ok(()),
            Err(LimitError::ThresholdOutOfRange(0).into()),
            Err(LimitError::ThresholdOutOfRange(101).into()),
            Err(LimitError::ThresholdsNotSortedUnique.into()),
            Err(LimitError::ThresholdsNotSortedUnique.into()),
            Ok(()),
            Err(PlanError::NegativePrice {
                field: "yearly_price_usd",
            }),
            Err(PlanError::NegativePrice {
                field: "overage_rate",
            }),
        ];
        for ((name, got), want) in cases.into_iter().zip(expected) {
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn plans_round_trip_through_json() {
        let plans = default_plans();
        let json = serde_json::to_string(&plans).unwrap();
        assert_eq!(parse_plans(&json).unwrap(), plans);
    }

    #[test]
    fn limits_accept_integers_and_strings_but_not_json_floats() {
        let l: Limits =
            serde_json::from_str(r#"{"calls:gemini": 100, "cost_usd": "2.50"}"#).unwrap();
        assert_eq!(l.0[&Metric::CostUsd], dec!(2.50));
        assert_eq!(l.0[&Metric::parse("calls:gemini").unwrap()], dec!(100));
        assert!(serde_json::from_str::<Limits>(r#"{"cost_usd": 2.5}"#).is_err());
        assert!(serde_json::from_str::<Limits>(r#"{"cost_usd": "two"}"#).is_err());
        assert!(serde_json::from_str::<Limits>(r#"{"bogus": "1"}"#).is_err());
    }

    #[test]
    fn omitted_thresholds_and_active_take_their_defaults() {
        let p: Plan = serde_json::from_str(
            r#"{"name": "team", "tier": "custom", "monthly_price_usd": "10", "yearly_price_usd": "100",
                "limits": {"cost_usd": "20"}}"#,
        )
        .unwrap();
        assert_eq!(p.alert_thresholds, [80, 90, 100]);
        assert!(p.active);
        assert!(p.features.is_empty() && p.description.is_empty());
        assert_eq!(p.validate(), Ok(()));
    }
}
