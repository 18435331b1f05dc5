//! The rules every set of limits and alert thresholds obeys, wherever it is written: a
//! plan ([`Plan::validate`](super::Plan::validate)) or a budget
//! (`budgets::Budget::validate`).

use rust_decimal::Decimal;

use super::{Limits, Metric, MAX_AMOUNT};

/// Why limits or alert thresholds are not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("limit {metric} must not be negative")]
    NegativeLimit { metric: Metric },
    #[error("limit {metric} must be less than 10^15")]
    LimitTooLarge { metric: Metric },
    #[error("limit {metric} counts calls or tokens and must be a whole number")]
    FractionalCount { metric: Metric },
    #[error("alert threshold {0} is outside 1..=100")]
    ThresholdOutOfRange(u8),
    #[error("alert thresholds must be in ascending order without repeats")]
    ThresholdsNotSortedUnique,
}

impl LimitError {
    /// The stable code of the error.
    pub fn code(&self) -> &'static str {
        match self {
            LimitError::NegativeLimit { .. } => "negative_limit",
            LimitError::LimitTooLarge { .. } => "limit_too_large",
            LimitError::FractionalCount { .. } => "fractional_limit",
            LimitError::ThresholdOutOfRange(_) => "threshold_out_of_range",
            LimitError::ThresholdsNotSortedUnique => "thresholds_not_ascending",
        }
    }

    /// The field of a plan or budget body the error is about: `limits` or
    /// `alert_thresholds`.
    pub fn field(&self) -> &'static str {
        match self {
            LimitError::NegativeLimit { .. }
            | LimitError::LimitTooLarge { .. }
            | LimitError::FractionalCount { .. } => "limits",
            LimitError::ThresholdOutOfRange(_) | LimitError::ThresholdsNotSortedUnique => {
                "alert_thresholds"
            }
        }
    }
}

/// Checks limit values: each in `0..10^15` ([`MAX_AMOUNT`]), whole numbers for calls and
/// tokens. The bound keeps every product the service forms with a limit (`limit × 100`,
/// a threshold level) far inside `Decimal`. The first offending metric (in metric order)
/// is reported.
pub fn validate_limits(limits: &Limits) -> Result<(), LimitError> {
    for (metric, &value) in &limits.0 {
        let metric = || metric.clone();
        if value < Decimal::ZERO {
            return Err(LimitError::NegativeLimit { metric: metric() });
        }
        if value >= MAX_AMOUNT {
            return Err(LimitError::LimitTooLarge { metric: metric() });
        }
        if metric().is_count() && !value.fract().is_zero() {
            return Err(LimitError::FractionalCount { metric: metric() });
        }
    }
    Ok(())
}

/// Checks alert thresholds: each within `1..=100`, strictly ascending (no repeats). An
/// empty list is allowed (no alerts).
pub fn validate_thresholds(thresholds: &[u8]) -> Result<(), LimitError> {
    if let Some(&t) = thresholds.iter().find(|&&t| !(1..=100).contains(&t)) {
        return Err(LimitError::ThresholdOutOfRange(t));
    }
    if thresholds.windows(2).any(|w| w[0] >= w[1]) {
        return Err(LimitError::ThresholdsNotSortedUnique);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;

    use super::*;

    fn limits(entries: &[(&str, Decimal)]) -> Limits {
        Limits(
            entries
                .iter()
                .map(|(m, v)| (Metric::parse(m).unwrap(), *v))
                .collect(),
        )
    }

    #[test]
    fn limit_values_table() {
        let gemini = || Metric::parse("calls:gemini").unwrap();
        let cases: Vec<(&str, Limits, Result<(), LimitError>)> = vec![
            ("no limits", limits(&[]), Ok(())),
            ("zero is fine", limits(&[("calls:gemini", dec!(0))]), Ok(())),
            (
                "just below 10^15 is fine",
                limits(&[("cost_usd", MAX_AMOUNT - dec!(0.01))]),
                Ok(()),
            ),
            (
                "10^15",
                limits(&[("cost_usd", MAX_AMOUNT)]),
                Err(LimitError::LimitTooLarge {
                    metric: Metric::CostUsd,
                }),
            ),
            (
                "fractional money is fine",
                limits(&[("cost_usd", dec!(0.01))]),
                Ok(()),
            ),
            (
                "trailing zeros are whole",
                limits(&[("calls:gemini", dec!(10.000))]),
                Ok(()),
            ),
            (
                "negative",
                limits(&[("calls:gemini", dec!(-1))]),
                Err(LimitError::NegativeLimit { metric: gemini() }),
            ),
            (
                "above 10^15",
                limits(&[("cost_usd", MAX_AMOUNT + dec!(0.01))]),
                Err(LimitError::LimitTooLarge {
                    metric: Metric::CostUsd,
                }),
            ),
            (
                "fractional calls",
                limits(&[("calls:gemini", dec!(0.5))]),
                Err(LimitError::FractionalCount { metric: gemini() }),
            ),
            (
                "fractional tokens",
                limits(&[("tokens:*", dec!(1.5))]),
                Err(LimitError::FractionalCount {
                    metric: Metric::Tokens(None),
                }),
            ),
        ];
        for (name, l, expected) in cases {
            assert_eq!(validate_limits(&l), expected, "{name}");
        }
    }

    #[test]
    fn thresholds_table() {
        let cases: [(&[u8], Result<(), LimitError>); 7] = [
            (&[80, 90, 100], Ok(())),
            (&[], Ok(())),
            (&[1, 100], Ok(())),
            (&[0, 50], Err(LimitError::ThresholdOutOfRange(0))),
            (&[50, 101], Err(LimitError::ThresholdOutOfRange(101))),
            (&[90, 80], Err(LimitError::ThresholdsNotSortedUnique)),
            (&[80, 80], Err(LimitError::ThresholdsNotSortedUnique)),
        ];
        for (t, expected) in cases {
            assert_eq!(validate_thresholds(t), expected, "{t:?}");
        }
    }

    #[test]
    fn codes_and_fields_are_stable() {
        let m = || Metric::CostUsd;
        let cases = [
            (
                LimitError::NegativeLimit { metric: m() },
                "negative_limit",
                "limits",
            ),
            (
                LimitError::LimitTooLarge { metric: m() },
                "limit_too_large",
                "limits",
            ),
            (
                LimitError::FractionalCount { metric: m() },
                "fractional_limit",
                "limits",
            ),
            (
                LimitError::ThresholdOutOfRange(0),
                "threshold_out_of_range",
                "alert_thresholds",
            ),
            (
                LimitError::ThresholdsNotSortedUnique,
                "thresholds_not_ascending",
                "alert_thresholds",
            ),
        ];
        for (e, code, field) in cases {
            assert_eq!((e.code(), e.field()), (code, field), "{e}");
        }
    }
}
