//! The dashboard reads: a period's usage, trends over real periods, the dashboard that
//! combines them with projections, alerts and recommendations, and the invoices.
//!
//! Everything shown is **recorded** usage (open holds are excluded; they count against
//! limits in `/check`, not on a dashboard). The views are pure functions of the usage the
//! store returns, so a user with no events gets the same shape, with zeros.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use rust_decimal::prelude::ToPrimitive as _;
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::{json, Value};

use super::check::{metric_map, percentage_map, status_name};
use super::outbox::{projected_cost, recorded_amount};
use super::reads::alert_json;
use super::{period_start_at, schedule_of, Caller, Meter};
use crate::domain::{Invoice, ProviderId, Subscription, UserId};
use crate::http::ApiError;
use crate::limits::{self, Metric, Plan};
use crate::periods::{Period, PeriodError};
use crate::usage::{PeriodUsage, ProviderUsage, Tally};

/// Default and largest `months` of `/usage/{user}/trends`.
pub const DEFAULT_TREND_MONTHS: usize = 6;
pub const MAX_TREND_MONTHS: usize = 24;
/// Alerts shown on the dashboard.
pub const DASHBOARD_ALERTS: usize = 5;

/// The usage with its holds dropped: what was recorded, for display.
pub fn recorded_only(usage: &PeriodUsage) -> PeriodUsage {
    PeriodUsage {
        by_provider: usage
            .by_provider
            .iter()
            .map(|(p, u)| {
                (
                    p.clone(),
                    ProviderUsage {
                        held: Tally::default(),
                        ..u.clone()
                    },
                )
            })
            .collect(),
    }
}

/// `part / whole` rounded to `dp` decimals (half away from zero), as a JSON number; 0 when
/// `whole` is 0. For ratios shown to people (error rates, mean latencies), never money.
fn ratio_number(part: u64, whole: u64, dp: u32) -> Value {
    let r = if whole == 0 {
        Decimal::ZERO
    } else {
        Decimal::from(part)
            .checked_div(Decimal::from(whole))
            .unwrap_or(Decimal::ZERO)
            .round_dp_with_strategy(dp, RoundingStrategy::MidpointAwayFromZero)
    };
    json!(r.to_f64().unwrap_or(0.0))
}

fn money(d: Decimal) -> Value {
    json!(d.normalize().to_string())
}

pub fn period_json(p: &Period) -> Value {
    json!({ "start": p.start, "end": p.end, "name": p.name() })
}

/// Recorded usage of one provider (or a sum of them).
fn provider_json(u: &ProviderUsage) -> Value {
    json!({
        "calls": u.recorded.calls,
        "tokens": u.recorded.tokens,
        "cost": money(u.recorded.cost_usd),
        "avg_response_time_ms": ratio_number(u.latency_ms_sum, u.latency_count, 2),
        "error_rate": ratio_number(u.error_calls, u.recorded.calls, 4),
        "error_calls": u.error_calls,
        "unpriced_calls": u.unpriced_calls,
        "estimated_calls": u.estimated_calls,
    })
}

/// Sums the providers' recorded figures (saturating counts, checked money).
fn total(usage: &PeriodUsage) -> ProviderUsage {
    let mut t = ProviderUsage::default();
    for u in usage.by_provider.values() {
        t.recorded.calls = t.recorded.calls.saturating_add(u.recorded.calls);
        t.recorded.tokens = t.recorded.tokens.saturating_add(u.recorded.tokens);
        t.recorded.cost_usd = t
            .recorded
            .cost_usd
            .checked_add(u.recorded.cost_usd)
            .unwrap_or(Decimal::MAX);
        t.unpriced_calls = t.unpriced_calls.saturating_add(u.unpriced_calls);
        t.estimated_calls = t.estimated_calls.saturating_add(u.estimated_calls);
        t.error_calls = t.error_calls.saturating_add(u.error_calls);
        t.latency_ms_sum = t.latency_ms_sum.saturating_add(u.latency_ms_sum);
        t.latency_count = t.latency_count.saturating_add(u.latency_count);
    }
    t
}

/// The providers a plan limits by name (`calls:<p>`, `tokens:<p>`): always shown, with
/// zeros when unused, so that every user of a plan sees the same shape.
pub fn plan_providers(plan: &Plan) -> BTreeSet<ProviderId> {
    plan.limits
        .0
        .keys()
        .filter_map(|m| match m {
            Metric::Calls(Some(p)) | Metric::Tokens(Some(p)) => Some(p.clone()),
            _ => None,
        })
        .collect()
}

/// GET /usage/{user}: one period's recorded usage under `plan`; the breakdown lists the
/// plan's providers (zeros when unused) and every provider with usage. Pure.
pub fn usage_view(user: &UserId, plan: &Plan, period: &Period, usage: &PeriodUsage) -> Value {
    let usage = recorded_only(usage);
    let t = total(&usage);
    let empty = ProviderUsage::default();
    let mut providers = plan_providers(plan);
    providers.extend(usage.by_provider.keys().cloned());
    let breakdown: serde_json::Map<String, Value> = providers
        .iter()
        .map(|p| {
            let u = usage.by_provider.get(p).unwrap_or(&empty);
            (p.to_string(), provider_json(u))
        })
        .collect();
    json!({
        "user_id": user,
        "plan": plan.name,
        "period": period_json(period),
        "total_calls": t.recorded.calls,
        "total_tokens": t.recorded.tokens,
        "total_cost": money(t.recorded.cost_usd),
        "provider_breakdown": breakdown,
        "usage_status": limits::usage_status(&plan.limits, &usage),
        "limits": metric_map(&plan.limits.0),
        "usage_percentages": percentage_map(&limits::percentages(&plan.limits, &usage)),
        "unpriced_calls": t.unpriced_calls,
        "estimated_calls": t.estimated_calls,
        "error_calls": t.error_calls,
        "avg_response_time_ms": ratio_number(t.latency_ms_sum, t.latency_count, 2),
        "error_rate": ratio_number(t.error_calls, t.recorded.calls, 4),
    })
}

/// GET /usage/{user}/trends: per period (oldest first) totals and per-provider series,
/// zero-filled over `always` and every provider with usage. Pure; `usages[i]` is the
/// usage of `periods[i]`.
pub fn trends_view(
    periods: &[Period],
    usages: &[PeriodUsage],
    always: &BTreeSet<ProviderId>,
) -> Value {
    let empty = PeriodUsage::default();
    let usage_of = |i: usize| usages.get(i).unwrap_or(&empty);
    let mut providers: BTreeSet<&ProviderId> = always.iter().collect();
    providers.extend(usages.iter().flat_map(|u| u.by_provider.keys()));
    let mut calls = Vec::with_capacity(periods.len());
    let mut tokens = Vec::with_capacity(periods.len());
    let mut cost = Vec::with_capacity(periods.len());
    for i in 0..periods.len() {
        let t = total(usage_of(i));
        calls.push(json!(t.recorded.calls));
        tokens.push(json!(t.recorded.tokens));
        cost.push(money(t.recorded.cost_usd));
    }
    let mut provider_trends = serde_json::Map::new();
    for p in providers {
        let series = |f: &dyn Fn(&Tally) -> Value| -> Vec<Value> {
            (0..periods.len())
                .map(|i| {
                    let tally = usage_of(i)
                        .by_provider
                        .get(p)
                        .map(|u| u.recorded.clone())
                        .unwrap_or_default();
                    f(&tally)
                })
                .collect()
        };
        provider_trends.insert(
            p.to_string(),
            json!({
                "calls": series(&|t| json!(t.calls)),
                "cost": series(&|t| money(t.cost_usd)),
                "tokens": series(&|t| json!(t.tokens)),
            }),
        );
    }
    json!({
        "periods": periods.iter().map(Period::name).collect::<Vec<_>>(),
        "total_calls": calls,
        "total_cost": cost,
        "total_tokens": tokens,
        "provider_trends": provider_trends,
    })
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
/// (recorded usage) and a projected cost past the cap. Pure.
pub fn pressures(plan: &Plan, usage: &PeriodUsage, projected: Option<Decimal>) -> Vec<Pressure> {
    let mut out = Vec::new();
    for (metric, &limit) in &plan.limits.0 {
        let used = recorded_amount(metric, usage);
        let near = if limit <= Decimal::ZERO {
            used > Decimal::ZERO
        } else {
            used * Decimal::ONE_HUNDRED >= limit * Decimal::from(80)
        };
        if near {
            out.push(Pressure::Metric {
                metric: metric.clone(),
                pct: limits::percentage(limit, used),
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
/// cap (ties by name). `None` when no plan does. Pure.
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

/// The dashboard's recommendations: empty without pressure; otherwise one entry,
/// `{kind: "upgrade", plan, reason}` naming the recommended plan, or
/// `{kind: "no_plan_fits", plan: null, reason}` when none holds the usage. Pure.
pub fn recommendations(
    plans: &[Plan],
    current: &Plan,
    usage: &PeriodUsage,
    projected: Option<Decimal>,
) -> Value {
    let usage = recorded_only(usage);
    let why = pressures(current, &usage, projected);
    if why.is_empty() {
        return json!([]);
    }
    let reason = why
        .iter()
        .map(describe_pressure)
        .collect::<Vec<_>>()
        .join("; ");
    match recommended_plan(plans, current, &usage, projected) {
        Some(p) => json!([{
            "kind": "upgrade",
            "plan": p.name,
            "reason": format!("{reason}; {} holds this usage", p.name),
        }]),
        None => json!([{ "kind": "no_plan_fits", "plan": null, "reason": reason }]),
    }
}

/// An invoice as clients see it: exact amounts as stored (the total is rounded to cents).
pub fn invoice_json(i: &Invoice) -> Value {
    let s = |d: Decimal| json!(d.to_string());
    json!({
        "id": i.id,
        "period": period_json(&i.period),
        "plan": i.plan,
        "base_usd": s(i.base_usd),
        "usage_usd": s(i.usage_usd),
        "overage_usd": s(i.overage_usd),
        "proration_usd": s(i.proration_usd),
        "adjustments_usd": s(i.adjustments_usd),
        "total_usd": s(i.total_usd),
        "line_items": i.line_items.iter().map(|l| json!({
            "kind": l.kind, "description": l.description, "amount_usd": s(l.amount_usd),
        })).collect::<Vec<_>>(),
        "status": i.status,
        "created_at": i.created_at,
    })
}

fn period_error(e: PeriodError) -> ApiError {
    ApiError::bad_request("invalid_parameter", e.to_string())
}

/// The last `n` periods of a user's schedule ending with the one containing `now`.
fn last_periods(
    sub: Option<&Subscription>,
    now: DateTime<Utc>,
    n: usize,
) -> Result<Vec<Period>, ApiError> {
    schedule_of(sub).last_n(now, n).map_err(period_error)
}

impl Meter {
    /// GET /usage/{user}: the current period, or the one `billing_period` names
    /// (`YYYY-MM` or `YYYY-MM-DD`, a period of the user's schedule). One store read.
    pub async fn usage_report(
        &self,
        caller: &Caller,
        user: &UserId,
        billing_period: Option<&str>,
    ) -> Result<Value, ApiError> {
        let now = self.now();
        if let Some(p) = billing_period {
            crate::periods::parse_period_param(p).map_err(period_error)?;
        }
        let pick = |sub: Option<&Subscription>| match billing_period {
            Some(p) => schedule_of(sub)
                .period_for_param(p)
                .map_or(now, |period| period.start),
            None => period_start_at(sub, now),
        };
        let state = self
            .store
            .get_user_usage(&caller.tenant, user, &pick)
            .await?;
        let sub = state.subscription.as_ref();
        let period = match billing_period {
            Some(p) => schedule_of(sub).period_for_param(p).map_err(period_error)?,
            None => super::period_at(sub, now)?,
        };
        let plan = self.plan_of(&caller.tenant, sub).await?;
        Ok(usage_view(user, &plan, &period, &state.usage))
    }

    /// GET /usage/{user}/trends: the last `months` periods, oldest first, zero-filled.
    pub async fn trends(
        &self,
        caller: &Caller,
        user: &UserId,
        months: usize,
    ) -> Result<Value, ApiError> {
        let now = self.now();
        let sub = self.store.get_subscription(&caller.tenant, user).await?;
        let periods = last_periods(sub.as_ref(), now, months)?;
        let starts: Vec<DateTime<Utc>> = periods.iter().map(|p| p.start).collect();
        let usages = self
            .store
            .get_period_usage(&caller.tenant, user, &starts)
            .await?;
        let plan = self.plan_of(&caller.tenant, sub.as_ref()).await?;
        let mut view = trends_view(&periods, &usages, &plan_providers(&plan));
        if let Value::Object(m) = &mut view {
            m.insert("user_id".into(), json!(user));
            m.insert("months".into(), json!(months));
        }
        Ok(view)
    }

    /// GET /dashboard/{user}: current usage, limits, projections, trends (6 periods), the
    /// latest alerts with the unread count, a summary and recommendations.
    pub async fn dashboard(&self, caller: &Caller, user: &UserId) -> Result<Value, ApiError> {
        let now = self.now();
        let tenant = &caller.tenant;
        let usage_read = async {
            let sub = self.store.get_subscription(tenant, user).await?;
            let periods = last_periods(sub.as_ref(), now, DEFAULT_TREND_MONTHS)?;
            let starts: Vec<DateTime<Utc>> = periods.iter().map(|p| p.start).collect();
            let usages = self.store.get_period_usage(tenant, user, &starts).await?;
            Ok::<_, ApiError>((sub, periods, usages))
        };
        let alerts_read = async {
            self.store
                .list_alerts(tenant, user, false, DASHBOARD_ALERTS)
                .await
                .map_err(ApiError::from)
        };
        let ((sub, periods, usages), (alerts, unread)) = tokio::try_join!(usage_read, alerts_read)?;
        let sub = sub.as_ref();
        let plan = self.plan_of(tenant, sub).await?;
        let plans = self.plans(tenant).await?;
        let period = periods
            .last()
            .copied()
            .ok_or_else(|| period_error(PeriodError::OutOfRange))?;
        let current = usages.last().cloned().unwrap_or_default();
        let current = recorded_only(&current);

        let cost = recorded_amount(&Metric::CostUsd, &current);
        let projected = projected_cost(cost, &period, now);
        let cap = plan.limits.get(&Metric::CostUsd);
        let projected_pct = match (projected, cap) {
            (Some(p), Some(c)) => Some(limits::percentage(c, p)),
            _ => None,
        };
        let usage = usage_view(user, &plan, &period, &current);
        let status = limits::usage_status(&plan.limits, &current);
        let remaining = (period.end - now).num_seconds().max(0);
        let days_remaining = (remaining + 86_399) / 86_400;
        let mut trends = trends_view(&periods, &usages, &plan_providers(&plan));
        if let Value::Object(m) = &mut trends {
            m.insert("months".into(), json!(DEFAULT_TREND_MONTHS));
        }
        Ok(json!({
            "user_id": user,
            "current_usage": usage,
            "limits": { "plan_name": plan.name, "limits": metric_map(&plan.limits.0) },
            "usage_percentages": percentage_map(&limits::percentages(&plan.limits, &current)),
            "projections": {
                "projected_monthly_cost": projected.map(money),
                "projected_usage_percentage": projected_pct.map(|p| json!(p.to_f64().unwrap_or(0.0))),
                "cost_cap": cap.map(money),
            },
            "trends": trends,
            "alerts": {
                "items": alerts.iter().map(alert_json).collect::<Vec<_>>(),
                "unread_count": unread,
            },
            "summary": {
                "plan": plan.name,
                "tier": plan.tier,
                "subscription_status": sub.map_or("active", |s| status_name(s.status)),
                "usage_status": status,
                "billing_cycle": sub.map_or(crate::periods::BillingCycle::Monthly, |s| s.cycle),
                "period": period_json(&period),
                "days_remaining": days_remaining,
                "total_calls": usage["total_calls"],
                "total_cost": usage["total_cost"],
                "pending_plan": sub.and_then(|s| s.pending_plan.clone()),
            },
            "recommendations": recommendations(&plans, &plan, &current, projected),
        }))
    }

    /// GET /billing/{user}: the user's invoices, newest period first.
    pub async fn billing(&self, caller: &Caller, user: &UserId) -> Result<Value, ApiError> {
        let mut invoices = self.store.list_invoices(&caller.tenant, user).await?;
        invoices.sort_by_key(|i| std::cmp::Reverse(i.period.start));
        Ok(json!({
            "user_id": user,
            "invoices": invoices.iter().map(invoice_json).collect::<Vec<_>>(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;

    use super::*;
    use crate::limits::default_plans;

    fn pid(s: &str) -> ProviderId {
        ProviderId::parse(s).unwrap()
    }

    fn plan(name: &str) -> Plan {
        default_plans()
            .into_iter()
            .find(|p| p.name.as_str() == name)
            .unwrap()
    }

    fn usage(provider: &str, calls: u64, cost: Decimal) -> PeriodUsage {
        let mut u = PeriodUsage::default();
        u.by_provider.insert(
            pid(provider),
            ProviderUsage {
                recorded: Tally {
                    calls,
                    tokens: calls * 10,
                    cost_usd: cost,
                },
                held: Tally {
                    calls: 7,
                    tokens: 70,
                    cost_usd: dec!(1),
                },
                error_calls: 1,
                latency_ms_sum: 300,
                latency_count: 3,
                ..ProviderUsage::default()
            },
        );
        u
    }

    #[test]
    fn display_excludes_holds_and_rates_are_exact_ratios() {
        let u = UserId::parse("u").unwrap();
        let p = Period {
            start: "2025-03-01T00:00:00Z".parse().unwrap(),
            end: "2025-04-01T00:00:00Z".parse().unwrap(),
        };
        let v = usage_view(&u, &plan("free"), &p, &usage("gemini", 3, dec!(0.5)));
        assert_eq!(v["total_calls"], 3, "holds are not shown");
        assert_eq!(v["total_cost"], "0.5");
        assert_eq!(v["error_rate"], 0.3333);
        assert_eq!(v["avg_response_time_ms"], 100.0);
        assert_eq!(v["usage_percentages"]["calls:gemini"], 3.0);
        assert_eq!(v["period"]["name"], "2025-03-01");
        assert_eq!(
            v["provider_breakdown"]["stability"]["calls"], 0,
            "the plan's providers are listed with zeros"
        );
    }

    #[test]
    fn trends_are_zero_filled_over_the_union_of_providers() {
        let periods: Vec<Period> = ["2025-01-01", "2025-02-01", "2025-03-01", "2025-04-01"]
            .windows(2)
            .map(|w| Period {
                start: format!("{}T00:00:00Z", w[0]).parse().unwrap(),
                end: format!("{}T00:00:00Z", w[1]).parse().unwrap(),
            })
            .collect();
        let usages = vec![
            usage("gemini", 2, dec!(0.1)),
            PeriodUsage::default(),
            usage("openai", 1, dec!(0.25)),
        ];
        let v = trends_view(&periods, &usages, &BTreeSet::from([pid("mistral")]));
        assert_eq!(
            v["periods"],
            json!(["2025-01-01", "2025-02-01", "2025-03-01"])
        );
        assert_eq!(v["total_calls"], json!([2, 0, 1]));
        assert_eq!(v["total_cost"], json!(["0.1", "0", "0.25"]));
        assert_eq!(v["provider_trends"]["gemini"]["calls"], json!([2, 0, 0]));
        assert_eq!(
            v["provider_trends"]["openai"]["cost"],
            json!(["0", "0", "0.25"])
        );
        assert_eq!(v["provider_trends"]["mistral"]["tokens"], json!([0, 0, 0]));
    }

    #[test]
    fn recommendation_is_the_cheapest_plan_that_holds_the_usage() {
        let plans = default_plans();
        // 85 of free's 100 gemini calls: basic (1000) holds it below 80 %.
        let u = recorded_only(&usage("gemini", 85, dec!(0.1)));
        let r = recommendations(&plans, &plan("free"), &u, None);
        assert_eq!(r[0]["kind"], "upgrade");
        assert_eq!(r[0]["plan"], "basic");
        assert!(r[0]["reason"]
            .as_str()
            .unwrap()
            .contains("calls:gemini is at 85.00%"));
        // Well below every limit: nothing to recommend.
        let small = recorded_only(&usage("gemini", 5, dec!(0.1)));
        assert_eq!(
            recommendations(&plans, &plan("free"), &small, None),
            json!([])
        );
        // A projection past free's $2 cap: basic ($50 cap) holds $30.
        let r = recommendations(&plans, &plan("free"), &small, Some(dec!(30)));
        assert_eq!(r[0]["plan"], "basic");
        // Past every cap: no plan fits.
        let r = recommendations(&plans, &plan("free"), &small, Some(dec!(10000)));
        assert_eq!(r[0]["kind"], "no_plan_fits");
        assert_eq!(r[0]["plan"], Value::Null);
    }
}
