//! The check decision and the per-metric views shown with it (remaining, percentages,
//! usage status).
//!
//! Pure functions of a plan's [`Limits`], the period's [`PeriodUsage`] and a
//! [`CallEstimate`]. "Used" is always recorded plus held (open reservations count).
//!
//! Rules, for every limited metric that applies to the request's provider:
//! - calls: deny when `used + 1 > limit`;
//! - tokens: deny when `used + estimated_tokens > limit`;
//! - cost: deny when `used_cost + estimated_cost > cap`, or `used_cost >= cap` when the
//!   request gives no cost estimate;
//! - a limit of `0` (none allowed) denies every request it applies to, whatever the
//!   estimate: a call estimated at 0 tokens or $0 still uses the provider, and "none
//!   allowed" must not depend on the client's estimate;
//! - an absent metric is unlimited.
//!
//! The first violated metric is reported, in this order: `calls:<provider>`,
//! `tokens:<provider>`, `calls:*`, `tokens:*`, `cost_usd` (most specific first, money last).

use std::collections::BTreeMap;

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

use super::{Limits, Metric, Plan};
use crate::domain::{PlanName, ProviderId};
use crate::usage::PeriodUsage;

/// What a check asks: one call to `provider`, with its estimates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallEstimate {
    pub provider: ProviderId,
    /// Estimated input + output tokens of the call (0 for non-token APIs).
    pub estimated_tokens: u64,
    /// Estimated cost of the call, when the caller could price it.
    #[serde(default, with = "rust_decimal::serde::str_option")]
    pub estimated_cost: Option<Decimal>,
}

impl CallEstimate {
    /// Refuses an estimate no decision can be made on: a cost below zero.
    pub fn validate(&self) -> Result<(), DecisionError> {
        if self
            .estimated_cost
            .is_some_and(|c| c.is_sign_negative() && !c.is_zero())
        {
            return Err(DecisionError::NegativeEstimate);
        }
        Ok(())
    }
}

/// The first limit a request would break.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    pub metric: Metric,
    /// Usage so far in the period (recorded + held).
    pub used: Decimal,
    pub limit: Decimal,
    /// What this request adds: 1 call, its estimated tokens, or its estimated cost (0 when
    /// no estimate was given).
    pub requested: Decimal,
}

/// The answer to a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    Denied(Violation),
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allowed)
    }
}

/// Why a decision could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecisionError {
    /// Usage plus the request does not fit in a `Decimal`.
    #[error("usage of {metric} overflows")]
    Overflow { metric: Metric },
    /// A cost estimate below zero.
    #[error("estimated cost must not be negative")]
    NegativeEstimate,
}

/// How close a user is to their limits, as `/usage` and `/check` report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UsageStatus {
    /// Below 80 % of every limit.
    Active,
    /// At or above 80 % of some limit.
    Warning,
    /// At or above 100 % of some limit (or any use of a metric limited to 0).
    LimitReached,
}

/// The metrics that apply to a call to `provider`, in decision order.
pub fn metrics_for(provider: &ProviderId) -> [Metric; 5] {
    [
        Metric::Calls(Some(provider.clone())),
        Metric::Tokens(Some(provider.clone())),
        Metric::Calls(None),
        Metric::Tokens(None),
        Metric::CostUsd,
    ]
}

/// Usage of `metric` in the period: recorded plus held, summed over the providers the
/// metric covers. Checked: an overflow is an error, never a wrap.
pub fn used(metric: &Metric, usage: &PeriodUsage) -> Result<Decimal, DecisionError> {
    let overflow = || DecisionError::Overflow {
        metric: metric.clone(),
    };
    let covers = |p: &ProviderId| match metric {
        Metric::Calls(Some(q)) | Metric::Tokens(Some(q)) => p == q,
        Metric::Calls(None) | Metric::Tokens(None) | Metric::CostUsd => true,
    };
    let mut total = Decimal::ZERO;
    for (_, pu) in usage.by_provider.iter().filter(|(p, _)| covers(p)) {
        for tally in [&pu.recorded, &pu.held] {
            let value = match metric {
                Metric::Calls(_) => Decimal::from(tally.calls),
                Metric::Tokens(_) => Decimal::from(tally.tokens),
                Metric::CostUsd => tally.cost_usd,
            };
            total = total.checked_add(value).ok_or_else(overflow)?;
        }
    }
    Ok(total)
}

/// Usage for display: an overflowing sum shows as `Decimal::MAX` (more than any limit).
/// What [`remaining`], [`percentages`] and [`usage_status`] see of one limited metric.
pub fn used_saturating(metric: &Metric, usage: &PeriodUsage) -> Decimal {
    used(metric, usage).unwrap_or(Decimal::MAX)
}

/// What one limited metric requires of a call: allowed iff `used + increment <= limit`
/// (`< limit` when `strict`). The one rule behind both [`decide`] and the reservation
/// guards that the store evaluates atomically ([`super::guards_for`]), so a check and its
/// reservation never disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requirement {
    pub increment: Decimal,
    pub strict: bool,
}

impl Requirement {
    /// Whether `used` leaves room for the call under `limit` (checked: an overflow
    /// leaves no room).
    pub fn allows(&self, used: Decimal, limit: Decimal) -> bool {
        match used.checked_add(self.increment) {
            Some(after) if self.strict => after < limit,
            Some(after) => after <= limit,
            None => false,
        }
    }
}

/// What `metric` (limited to `limit`) requires of `call`; `None` when the metric does not
/// cover the call's provider.
/// - calls: one more call; tokens: the estimated tokens; cost: the estimated cost;
/// - cost without an estimate: strictly below the cap;
/// - a limit of `0` or below: never (strict, so not even a call estimated at nothing).
pub fn requirement(metric: &Metric, limit: Decimal, call: &CallEstimate) -> Option<Requirement> {
    let increment = match metric {
        Metric::Calls(Some(p)) | Metric::Tokens(Some(p)) if p != &call.provider => return None,
        Metric::Calls(_) => Decimal::ONE,
        Metric::Tokens(_) => Decimal::from(call.estimated_tokens),
        Metric::CostUsd => call.estimated_cost.unwrap_or(Decimal::ZERO),
    };
    let strict =
        limit <= Decimal::ZERO || (*metric == Metric::CostUsd && call.estimated_cost.is_none());
    Some(Requirement { increment, strict })
}

/// Decides whether `request` may proceed under `limits`, given the period's `usage`.
pub fn decide(
    limits: &Limits,
    usage: &PeriodUsage,
    request: &CallEstimate,
) -> Result<Decision, DecisionError> {
    request.validate()?;
    for metric in metrics_for(&request.provider) {
        let Some(&limit) = limits.0.get(&metric) else {
            continue;
        };
        let Some(req) = requirement(&metric, limit, request) else {
            continue;
        };
        let used = used(&metric, usage)?;
        if used.checked_add(req.increment).is_none() {
            return Err(DecisionError::Overflow { metric });
        }
        if !req.allows(used, limit) {
            return Ok(Decision::Denied(Violation {
                metric,
                used,
                limit,
                requested: req.increment,
            }));
        }
    }
    Ok(Decision::Allowed)
}

/// What is left of each limit (`limit - used`, never negative).
pub fn remaining(limits: &Limits, usage: &PeriodUsage) -> BTreeMap<Metric, Decimal> {
    limits
        .0
        .iter()
        .map(|(metric, &limit)| {
            (
                metric.clone(),
                left_of(limit, used_saturating(metric, usage)),
            )
        })
        .collect()
}

/// What is left of `limit` after `used`: never below 0.
pub fn left_of(limit: Decimal, used: Decimal) -> Decimal {
    limit
        .checked_sub(used)
        .unwrap_or(Decimal::ZERO)
        .max(Decimal::ZERO)
}

/// `used / limit * 100` for `limit > 0`, rounded to 2 decimals half away from zero and
/// written with exactly two (`16.00`). May exceed 100 once usage passed the limit (usage
/// that already happened is always recorded). A limit of 0 shows 100 when anything was
/// used and 0 otherwise: "none allowed" is not a percentage, and a plan that excludes a
/// provider must not look exhausted to users who never called it.
pub fn percentage(limit: Decimal, used: Decimal) -> Decimal {
    let hundred = Decimal::ONE_HUNDRED;
    let mut pct = if limit <= Decimal::ZERO {
        if used > Decimal::ZERO {
            hundred
        } else {
            Decimal::ZERO
        }
    } else {
        used.checked_div(limit)
            .and_then(|r| r.checked_mul(hundred))
            .unwrap_or(Decimal::MAX)
            .round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
    };
    if pct.scale() < 2 {
        pct.rescale(2);
    }
    pct
}

/// [`percentage`] of every limited metric.
pub fn percentages(limits: &Limits, usage: &PeriodUsage) -> BTreeMap<Metric, Decimal> {
    limits
        .0
        .iter()
        .map(|(metric, &limit)| {
            (
                metric.clone(),
                percentage(limit, used_saturating(metric, usage)),
            )
        })
        .collect()
}

/// The user's status over every limited metric, from exact (unrounded) usage:
/// `limit_reached` when some `used >= limit` (for a 0 limit: when anything was used),
/// `warning` when some `used >= 80 % of limit`, otherwise `active`. Thresholds are the
/// same exact comparisons alerts use, so the status never disagrees with an alert.
pub fn usage_status(limits: &Limits, usage: &PeriodUsage) -> UsageStatus {
    let mut status = UsageStatus::Active;
    for (metric, &limit) in &limits.0 {
        match metric_status(limit, used_saturating(metric, usage)) {
            UsageStatus::LimitReached => return UsageStatus::LimitReached,
            UsageStatus::Warning => status = UsageStatus::Warning,
            UsageStatus::Active => {}
        }
    }
    status
}

/// [`usage_status`] of one limited metric.
pub fn metric_status(limit: Decimal, used: Decimal) -> UsageStatus {
    if limit <= Decimal::ZERO {
        return match used > Decimal::ZERO {
            true => UsageStatus::LimitReached,
            false => UsageStatus::Active,
        };
    }
    if used >= limit {
        return UsageStatus::LimitReached;
    }
    // limit * 0.8 never overflows: it is smaller than limit.
    match limit
        .checked_mul(Decimal::new(8, 1))
        .is_some_and(|w| used >= w)
    {
        true => UsageStatus::Warning,
        false => UsageStatus::Active,
    }
}

/// The plan to suggest when a request is denied: among active plans other than
/// `current` whose limits would allow `request` with this period's `usage`, the one with
/// the lowest monthly price (ties broken by name). `None` when no plan would allow it.
pub fn cheapest_plan_allowing<'a>(
    plans: &'a [Plan],
    current: &PlanName,
    usage: &PeriodUsage,
    request: &CallEstimate,
) -> Option<&'a Plan> {
    plans
        .iter()
        .filter(|p| p.active && &p.name != current)
        .filter(|p| decide(&p.limits, usage, request).is_ok_and(|d| d.is_allowed()))
        .min_by(|a, b| {
            a.monthly_price_usd
                .cmp(&b.monthly_price_usd)
                .then_with(|| a.name.cmp(&b.name))
        })
}

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;

    use super::*;
    use crate::usage::{ProviderUsage, Tally};

    fn pid(s: &str) -> ProviderId {
        ProviderId::parse(s).unwrap()
    }

    fn m(s: &str) -> Metric {
        Metric::parse(s).unwrap()
    }

    fn limits(entries: &[(&str, Decimal)]) -> Limits {
        Limits(entries.iter().map(|(k, v)| (m(k), *v)).collect())
    }

    fn tally(calls: u64, tokens: u64, cost: Decimal) -> Tally {
        Tally {
            calls,
            tokens,
            cost_usd: cost,
        }
    }

    /// Usage with `recorded` and `held` tallies per provider.
    fn usage(entries: &[(&str, Tally, Tally)]) -> PeriodUsage {
        PeriodUsage {
            by_provider: entries
                .iter()
                .map(|(p, recorded, held)| {
                    let pu = ProviderUsage {
                        recorded: recorded.clone(),
                        held: held.clone(),
                        ..ProviderUsage::default()
                    };
                    (pid(p), pu)
                })
                .collect(),
        }
    }

    fn req(provider: &str, tokens: u64, cost: Option<Decimal>) -> CallEstimate {
        CallEstimate {
            provider: pid(provider),
            estimated_tokens: tokens,
            estimated_cost: cost,
        }
    }

    fn denied_on(d: Decision) -> Option<String> {
        match d {
            Decision::Allowed => None,
            Decision::Denied(v) => Some(v.metric.to_string()),
        }
    }

    #[test]
    fn decision_table() {
        let zero = Tally::default();
        let cases: Vec<(&str, Limits, PeriodUsage, CallEstimate, Option<&str>)> = vec![
            (
                "absent limit is unlimited",
                limits(&[]),
                usage(&[("gemini", tally(1_000_000, 9, dec!(999)), zero.clone())]),
                req("gemini", 10, None),
                None,
            ),
            (
                "zero calls means none allowed",
                limits(&[("calls:openai", dec!(0))]),
                usage(&[]),
                req("openai", 0, None),
                Some("calls:openai"),
            ),
            (
                "zero tokens denies even a zero estimate",
                limits(&[("tokens:openai", dec!(0))]),
                usage(&[]),
                req("openai", 0, None),
                Some("tokens:openai"),
            ),
            (
                "used + 1 == limit is allowed",
                limits(&[("calls:gemini", dec!(100))]),
                usage(&[("gemini", tally(99, 0, dec!(0)), zero.clone())]),
                req("gemini", 0, None),
                None,
            ),
            (
                "used == limit denies the next call",
                limits(&[("calls:gemini", dec!(100))]),
                usage(&[("gemini", tally(100, 0, dec!(0)), zero.clone())]),
                req("gemini", 0, None),
                Some("calls:gemini"),
            ),
            (
                "held calls count as used",
                limits(&[("calls:gemini", dec!(100))]),
                usage(&[("gemini", tally(98, 0, dec!(0)), tally(2, 0, dec!(0)))]),
                req("gemini", 0, None),
                Some("calls:gemini"),
            ),
            (
                "tokens exactly at the limit are allowed",
                limits(&[("tokens:gemini", dec!(1000))]),
                usage(&[("gemini", tally(1, 900, dec!(0)), zero.clone())]),
                req("gemini", 100, None),
                None,
            ),
            (
                "tokens one past the limit are denied",
                limits(&[("tokens:gemini", dec!(1000))]),
                usage(&[("gemini", tally(1, 900, dec!(0)), zero.clone())]),
                req("gemini", 101, None),
                Some("tokens:gemini"),
            ),
            (
                "another provider's limit does not apply",
                limits(&[("calls:openai", dec!(0))]),
                usage(&[]),
                req("gemini", 10, None),
                None,
            ),
            (
                "calls:* sums every provider",
                limits(&[("calls:*", dec!(10))]),
                usage(&[
                    ("gemini", tally(6, 0, dec!(0)), zero.clone()),
                    ("openai", tally(4, 0, dec!(0)), zero.clone()),
                ]),
                req("tavily", 0, None),
                Some("calls:*"),
            ),
            (
                "tokens:* sums every provider",
                limits(&[("tokens:*", dec!(10))]),
                usage(&[("gemini", tally(1, 6, dec!(0)), tally(0, 3, dec!(0)))]),
                req("openai", 2, None),
                Some("tokens:*"),
            ),
            (
                "cost with estimate at the cap is allowed",
                limits(&[("cost_usd", dec!(2))]),
                usage(&[("gemini", tally(1, 0, dec!(1.5)), zero.clone())]),
                req("gemini", 0, Some(dec!(0.5))),
                None,
            ),
            (
                "cost with estimate past the cap is denied",
                limits(&[("cost_usd", dec!(2))]),
                usage(&[("gemini", tally(1, 0, dec!(1.5)), zero.clone())]),
                req("gemini", 0, Some(dec!(0.5000001))),
                Some("cost_usd"),
            ),
            (
                "cost without estimate below the cap is allowed",
                limits(&[("cost_usd", dec!(2))]),
                usage(&[("gemini", tally(1, 0, dec!(1.9999)), zero.clone())]),
                req("gemini", 0, None),
                None,
            ),
            (
                "cost without estimate at the cap is denied",
                limits(&[("cost_usd", dec!(2))]),
                usage(&[("gemini", tally(1, 0, dec!(1.5)), tally(0, 0, dec!(0.5)))]),
                req("gemini", 0, None),
                Some("cost_usd"),
            ),
            (
                "zero cost cap denies a zero estimate",
                limits(&[("cost_usd", dec!(0))]),
                usage(&[]),
                req("gemini", 0, Some(dec!(0))),
                Some("cost_usd"),
            ),
        ];
        for (name, limits, usage, request, expected) in cases {
            let got = denied_on(decide(&limits, &usage, &request).unwrap());
            assert_eq!(got.as_deref(), expected, "{name}");
        }
    }

    #[test]
    fn first_violated_metric_follows_the_documented_order() {
        let all = limits(&[
            ("cost_usd", dec!(0)),
            ("tokens:*", dec!(0)),
            ("calls:*", dec!(0)),
            ("tokens:gemini", dec!(0)),
            ("calls:gemini", dec!(0)),
        ]);
        let order = [
            "calls:gemini",
            "tokens:gemini",
            "calls:*",
            "tokens:*",
            "cost_usd",
        ];
        let mut current = all.clone();
        for expected in order {
            let got = denied_on(
                decide(&current, &PeriodUsage::default(), &req("gemini", 5, None)).unwrap(),
            );
            assert_eq!(got.as_deref(), Some(expected));
            current.0.remove(&m(expected));
        }
        assert!(
            decide(&current, &PeriodUsage::default(), &req("gemini", 5, None))
                .unwrap()
                .is_allowed()
        );
    }

    #[test]
    fn a_violation_reports_used_limit_and_requested() {
        let l = limits(&[("tokens:gemini", dec!(1000))]);
        let u = usage(&[("gemini", tally(3, 800, dec!(0)), tally(1, 150, dec!(0)))]);
        let d = decide(&l, &u, &req("gemini", 60, None)).unwrap();
        assert_eq!(
            d,
            Decision::Denied(Violation {
                metric: m("tokens:gemini"),
                used: dec!(950),
                limit: dec!(1000),
                requested: dec!(60),
            })
        );
    }

    #[test]
    fn overflowing_usage_is_an_error_not_a_panic() {
        let l = limits(&[("cost_usd", dec!(10))]);
        let u = usage(&[(
            "gemini",
            tally(0, 0, Decimal::MAX),
            tally(0, 0, Decimal::MAX),
        )]);
        assert_eq!(
            decide(&l, &u, &req("gemini", 0, None)),
            Err(DecisionError::Overflow {
                metric: Metric::CostUsd
            })
        );
        let u = usage(&[(
            "gemini",
            tally(u64::MAX, u64::MAX, dec!(0)),
            tally(u64::MAX, u64::MAX, dec!(0)),
        )]);
        let l = limits(&[("tokens:*", dec!(10))]);
        assert!(!decide(&l, &u, &req("gemini", u64::MAX, None))
            .unwrap()
            .is_allowed());
        assert_eq!(remaining(&l, &u)[&m("tokens:*")], dec!(0));
    }

    #[test]
    fn negative_cost_estimate_is_rejected() {
        assert_eq!(
            decide(
                &Limits::default(),
                &PeriodUsage::default(),
                &req("gemini", 0, Some(dec!(-0.01)))
            ),
            Err(DecisionError::NegativeEstimate)
        );
    }

    #[test]
    fn remaining_is_limit_minus_used_and_never_negative() {
        let l = limits(&[
            ("calls:gemini", dec!(100)),
            ("cost_usd", dec!(2)),
            ("calls:openai", dec!(0)),
        ]);
        let u = usage(&[
            ("gemini", tally(40, 0, dec!(2.5)), tally(2, 0, dec!(0))),
            ("openai", tally(1, 0, dec!(0)), Tally::default()),
        ]);
        let r = remaining(&l, &u);
        assert_eq!(r[&m("calls:gemini")], dec!(58));
        assert_eq!(r[&m("cost_usd")], dec!(0));
        assert_eq!(r[&m("calls:openai")], dec!(0));
        assert_eq!(r.len(), 3, "only limited metrics are listed");
    }

    #[test]
    fn percentages_round_half_away_from_zero_to_two_decimals() {
        let cases = [
            // (limit, used, expected)
            (dec!(5000), dec!(800), "16.00"),
            (dec!(3), dec!(1), "33.33"),
            (dec!(3), dec!(2), "66.67"),
            (dec!(200000), dec!(25), "0.01"), // 0.0125 -> 0.01
            (dec!(40000), dec!(5), "0.01"),   // 0.0125 -> 0.01
            (dec!(8000), dec!(1), "0.01"),    // 0.0125
            (dec!(1600), dec!(1), "0.06"),    // 0.0625 -> 0.06
            (dec!(400), dec!(1), "0.25"),
            (dec!(2000), dec!(1), "0.05"), // 0.05 exactly
            (dec!(16), dec!(1), "6.25"),
            (dec!(80), dec!(1), "1.25"),
            (dec!(3200), dec!(1), "0.03"), // 0.03125 -> 0.03
            (dec!(800), dec!(1), "0.13"),  // 0.125 -> 0.13 (banker's would give 0.12)
            (dec!(100), dec!(150), "150.00"),
            (dec!(0), dec!(0), "0.00"),
            (dec!(0), dec!(1), "100.00"),
            (dec!(2), dec!(0.5), "25.00"),
        ];
        for (limit, used, expected) in cases {
            assert_eq!(
                percentage(limit, used).to_string(),
                expected,
                "{used}/{limit}"
            );
        }
        // Absurd inputs saturate instead of panicking.
        assert_eq!(percentage(dec!(0.0000001), Decimal::MAX), Decimal::MAX);
    }

    #[test]
    fn percentages_cover_every_limited_metric() {
        let l = limits(&[("calls:gemini", dec!(5000)), ("cost_usd", dec!(150))]);
        let u = usage(&[("gemini", tally(800, 0, dec!(15.75)), Tally::default())]);
        let p = percentages(&l, &u);
        assert_eq!(p[&m("calls:gemini")], dec!(16.00));
        assert_eq!(p[&m("cost_usd")], dec!(10.50));
    }

    #[test]
    fn usage_status_table() {
        let cases = [
            // (limit, used, expected)
            (dec!(100), dec!(79), UsageStatus::Active),
            (dec!(100), dec!(79.999), UsageStatus::Active),
            (dec!(100), dec!(80), UsageStatus::Warning),
            (dec!(100), dec!(99.99), UsageStatus::Warning),
            (dec!(100), dec!(100), UsageStatus::LimitReached),
            (dec!(100), dec!(140), UsageStatus::LimitReached),
            (dec!(0), dec!(0), UsageStatus::Active),
            (dec!(0), dec!(0.01), UsageStatus::LimitReached),
        ];
        for (limit, used, expected) in cases {
            let l = limits(&[("cost_usd", limit), ("calls:gemini", dec!(1000))]);
            let u = usage(&[("gemini", tally(1, 0, used), Tally::default())]);
            assert_eq!(usage_status(&l, &u), expected, "{used}/{limit}");
        }
        assert_eq!(
            usage_status(&Limits::default(), &PeriodUsage::default()),
            UsageStatus::Active
        );
    }

    #[test]
    fn usage_status_takes_the_worst_metric() {
        let l = limits(&[
            ("calls:gemini", dec!(10)),
            ("calls:tavily", dec!(10)),
            ("cost_usd", dec!(10)),
        ]);
        let u = usage(&[
            ("gemini", tally(9, 0, dec!(0)), Tally::default()),
            ("tavily", tally(10, 0, dec!(1)), Tally::default()),
        ]);
        assert_eq!(usage_status(&l, &u), UsageStatus::LimitReached);
        assert_eq!(
            serde_json::to_string(&UsageStatus::LimitReached).unwrap(),
            "\"limit_reached\""
        );
    }

    #[test]
    fn cheapest_plan_allowing_suggests_the_cheapest_active_plan_that_fits() {
        let plans = crate::limits::default_plans();
        let name = |s: &str| PlanName::parse(s).unwrap();
        let suggest = |current: &str, u: &PeriodUsage, r: &CallEstimate, plans: &[Plan]| {
            cheapest_plan_allowing(plans, &name(current), u, r).map(|p| p.name.to_string())
        };
        let none = PeriodUsage::default();
        let gemini_calls = |n| usage(&[("gemini", tally(n, 0, dec!(0)), Tally::default())]);
        let cost = |c| usage(&[("gemini", tally(1, 0, c), Tally::default())]);
        let cases: Vec<(&str, &str, PeriodUsage, CallEstimate, Option<&str>)> = vec![
            (
                "free user calling openai",
                "free",
                none.clone(),
                req("openai", 100, None),
                Some("basic"),
            ),
            (
                "free user out of gemini calls",
                "free",
                gemini_calls(100),
                req("gemini", 0, None),
                Some("basic"),
            ),
            (
                "basic user out of gemini calls",
                "basic",
                gemini_calls(1000),
                req("gemini", 0, None),
                Some("pro"),
            ),
            (
                "pro user at the cost cap",
                "pro",
                cost(dec!(150)),
                req("gemini", 0, None),
                Some("enterprise"),
            ),
            (
                "enterprise at its cap: nothing fits",
                "enterprise",
                cost(dec!(500)),
                req("gemini", 0, None),
                None,
            ),
            (
                "a cheaper plan that fits is suggested too",
                "pro",
                none.clone(),
                req("gemini", 0, None),
                Some("free"),
            ),
        ];
        for (label, current, u, r, expected) in cases {
            assert_eq!(
                suggest(current, &u, &r, &plans).as_deref(),
                expected,
                "{label}"
            );
        }
        let mut without_basic = plans.clone();
        without_basic[1].active = false;
        assert_eq!(
            suggest("free", &none, &req("openai", 1, None), &without_basic).as_deref(),
            Some("pro"),
            "inactive plans are never suggested"
        );
        let mut twins = plans.clone();
        twins[2].monthly_price_usd = dec!(29);
        assert_eq!(
            suggest("free", &none, &req("openai", 1, None), &twins).as_deref(),
            Some("basic"),
            "ties go to the first name"
        );
    }

    proptest::proptest! {
        /// With one calls limit, a call is allowed exactly while used + 1 <= limit, and
        /// remaining is the room left.
        #[test]
        fn calls_limit_allows_exactly_up_to_the_limit(limit in 0u64..1000, recorded in 0u64..1200, held in 0u64..50) {
            let l = limits(&[("calls:gemini", Decimal::from(limit))]);
            let u = usage(&[("gemini", tally(recorded, 0, dec!(0)), tally(held, 0, dec!(0)))]);
            let used = recorded + held;
            let allowed = decide(&l, &u, &req("gemini", 0, None)).unwrap().is_allowed();
            proptest::prop_assert_eq!(allowed, used < limit);
            proptest::prop_assert_eq!(remaining(&l, &u)[&m("calls:gemini")], Decimal::from(limit.saturating_sub(used)));
        }
    }
}
