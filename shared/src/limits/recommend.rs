//! Which plan to recommend when usage presses against the current one, and the cost
//! projection it (and the projected-cost alert) rests on. Pure.
//!
//! Everything here reads **recorded** usage: open holds count against limits in a check,
//! not in a recommendation.

use chrono::{DateTime, Utc};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::Serialize;

use super::{percentage, reached, Metric, Plan};
use crate::domain::PlanName;
use crate::periods::Period;
use crate::usage::PeriodUsage;

/// Recorded usage (holds excluded) of `metric`.
pub fn recorded_amount(metric: &Metric, usage: &PeriodUsage) -> Decimal {
    let mut total = Decimal::ZERO;
    for (p, u) in &usage.by_provider {
        let v = match metric {
            Metric::Calls(Some(q)) if q != p => continue,
            Metric::Tokens(Some(q)) if q != p => continue,
            Metric::Calls(_) => Decimal::from(u.recorded.calls),
            Metric::Tokens(_) => Decimal::from(u.recorded.tokens),
            Metric::CostUsd => u.recorded.cost_usd,
        };
        total = total.checked_add(v).unwrap_or(total);
    }
    total
}

/// The projection of a period's cost from its elapsed fraction (in seconds), once at
/// least an hour has passed; `None` before.
pub fn projected_cost(cost: Decimal, period: &Period, now: DateTime<Utc>) -> Option<Decimal> {
    let elapsed = (now.min(period.end) - period.start).num_seconds();
    let total = (period.end - period.start).num_seconds();
    if elapsed < 3600 || total <= 0 {
        return None;
    }
    cost.checked_mul(Decimal::from(total))?
        .checked_div(Decimal::from(elapsed))
}

/// Why a dashboard recommends another plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pressure {
    /// A limited metric at `pct` % (≥ 80) of its limit.
    Metric { metric: Metric, pct: Decimal },
    /// The projected cost of the period passes the cost cap.
    Projection { projected: Decimal, cap: Decimal },
}

/// What pushes the user towards another plan: metrics at ≥ 80 % of their limit
/// (recorded usage) and a projected cost past the cap.
pub fn pressures(plan: &Plan, usage: &PeriodUsage, projected: Option<Decimal>) -> Vec<Pressure> {
    let mut out = Vec::new();
    for (metric, &limit) in &plan.limits.0 {
        let used = recorded_amount(metric, usage);
        let near = if limit <= Decimal::ZERO {
            used > Decimal::ZERO
        } else {
            reached(used, limit, 80)
        };
        if near {
            out.push(Pressure::Metric {
                metric: metric.clone(),
                pct: percentage(limit, used),
            });
        }
    }
    if let (Some(projected), Some(cap)) = (projected, plan.limits.get(&Metric::CostUsd)) {
        if projected > cap {
            out.push(Pressure::Projection { projected, cap });
        }
    }
    out
}

/// Whether `plan` holds this usage comfortably: below 80 % of every limit, and the
/// projection (when known) within its cost cap.
fn fits(plan: &Plan, usage: &PeriodUsage, projected: Option<Decimal>) -> bool {
    pressures(plan, usage, projected).is_empty()
}

/// The plan to recommend under pressure: the cheapest active plan other than `current`
/// that holds the current usage below 80 % of every limit and the projection within its
/// cap (ties by name). `None` when no plan does.
pub fn recommended_plan<'a>(
    plans: &'a [Plan],
    current: &Plan,
    usage: &PeriodUsage,
    projected: Option<Decimal>,
) -> Option<&'a Plan> {
    plans
        .iter()
        .filter(|p| p.active && p.name != current.name)
        .filter(|p| fits(p, usage, projected))
        .min_by(|a, b| {
            a.monthly_price_usd
                .cmp(&b.monthly_price_usd)
                .then_with(|| a.name.cmp(&b.name))
        })
}

fn describe_pressure(p: &Pressure) -> String {
    match p {
        Pressure::Metric { metric, pct } => format!("{metric} is at {pct}% of its limit"),
        Pressure::Projection { projected, cap } => format!(
            "the projected cost ${} passes the ${} cap",
            projected.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero),
            cap.normalize()
        ),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecommendationKind {
    /// `plan` holds the usage.
    Upgrade,
    /// Under pressure, and no plan holds the usage.
    NoPlanFits,
}

/// One recommendation of the dashboard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recommendation {
    pub kind: RecommendationKind,
    pub plan: Option<PlanName>,
    pub reason: String,
}

/// The dashboard's recommendations from recorded `usage`: none without pressure;
/// otherwise one, naming the recommended plan, or saying that no plan fits.
pub fn recommendations(
    plans: &[Plan],
    current: &Plan,
    usage: &PeriodUsage,
    projected: Option<Decimal>,
) -> Vec<Recommendation> {
    let why = pressures(current, usage, projected);
    if why.is_empty() {
        return Vec::new();
    }
    let reason = why
        .iter()
        .map(describe_pressure)
        .collect::<Vec<_>>()
        .join("; ");
    vec![match recommended_plan(plans, current, usage, projected) {
        Some(p) => Recommendation {
            kind: RecommendationKind::Upgrade,
            plan: Some(p.name.clone()),
            reason: format!("{reason}; {} holds this usage", p.name),
        },
        None => Recommendation {
            kind: RecommendationKind::NoPlanFits,
            plan: None,
            reason,
        },
    }]
}

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;

    use super::*;
    use crate::domain::ProviderId;
    use crate::limits::default_plans;
    use crate::usage::{ProviderUsage, Tally};

    fn plan(name: &str) -> Plan {
        default_plans()
            .into_iter()
            .find(|p| p.name.as_str() == name)
            .unwrap()
    }

    fn gemini(calls: u64, cost: Decimal) -> PeriodUsage {
        let mut u = PeriodUsage::default();
        u.by_provider.insert(
            ProviderId::parse("gemini").unwrap(),
            ProviderUsage {
                recorded: Tally {
                    calls,
                    tokens: calls * 10,
                    cost_usd: cost,
                },
                ..ProviderUsage::default()
            },
        );
        u
    }

    #[test]
    fn recommendation_is_the_cheapest_plan_that_holds_the_usage() {
        let plans = default_plans();
        // 85 of free's 100 gemini calls: basic (1000) holds it below 80 %.
        let r = recommendations(&plans, &plan("free"), &gemini(85, dec!(0.1)), None);
        assert_eq!(r[0].kind, RecommendationKind::Upgrade);
        assert_eq!(r[0].plan.as_ref().map(PlanName::as_str), Some("basic"));
        assert!(r[0].reason.contains("calls:gemini is at 85.00%"));
        // Well below every limit: nothing to recommend.
        let small = gemini(5, dec!(0.1));
        assert_eq!(recommendations(&plans, &plan("free"), &small, None), []);
        // A projection past free's $2 cap: basic ($50 cap) holds $30.
        let r = recommendations(&plans, &plan("free"), &small, Some(dec!(30)));
        assert_eq!(r[0].plan.as_ref().map(PlanName::as_str), Some("basic"));
        // Past every cap: no plan fits.
        let r = recommendations(&plans, &plan("free"), &small, Some(dec!(10000)));
        assert_eq!(r[0].kind, RecommendationKind::NoPlanFits);
        assert_eq!(r[0].plan, None);
    }

    #[test]
    fn projection_waits_an_hour_and_scales_by_elapsed_seconds() {
        let p = Period {
            start: "2025-04-01T00:00:00Z".parse().unwrap(),
            end: "2025-05-01T00:00:00Z".parse().unwrap(),
        };
        let early = "2025-04-01T00:59:59Z".parse().unwrap();
        assert_eq!(projected_cost(dec!(1), &p, early), None);
        let day3 = "2025-04-04T00:00:00Z".parse().unwrap();
        assert_eq!(projected_cost(dec!(3), &p, day3), Some(dec!(30)));
    }
}
