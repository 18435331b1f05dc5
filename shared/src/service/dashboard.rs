//! The dashboard reads: a period's usage, trends over real periods, the dashboard that
//! combines them with projections, alerts and recommendations, and the invoices.
//!
//! Everything shown is **recorded** usage (open holds are excluded; they count against
//! limits in a check, not on a dashboard). The views are pure functions of the usage the
//! store returns, so a user with no events gets the same shape, with zeros.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use rust_decimal::prelude::ToPrimitive as _;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::Serialize;

use super::reads::AlertView;
use super::{period_start_at, schedule_of, Caller, Error, Meter, Result};
use crate::domain::money;
use crate::domain::{
    Invoice, InvoiceStatus, PlanName, ProviderId, Subscription, SubscriptionStatus, UserId,
};
use crate::limits::amounts::percent_number;
use crate::limits::{
    self, projected_cost, recommendations, recorded_amount, Metric, MetricAmounts, Percentages,
    Plan, PlanTier, Recommendation, UsageStatus,
};
use crate::periods::{BillingCycle, Period, PeriodError};
use crate::usage::{PeriodUsage, ProviderUsage, Tally};

/// Default and largest `months` of the trends.
pub const DEFAULT_TREND_MONTHS: usize = 6;
pub const MAX_TREND_MONTHS: usize = 24;
/// Alerts shown on the dashboard.
pub const DASHBOARD_ALERTS: usize = 5;

/// `part / whole` rounded to `dp` decimals (half away from zero), as a JSON number; 0 when
/// `whole` is 0. For ratios shown to people (error rates, mean latencies), never money.
fn ratio_number(part: u64, whole: u64, dp: u32) -> f64 {
    let r = if whole == 0 {
        Decimal::ZERO
    } else {
        Decimal::from(part)
            .checked_div(Decimal::from(whole))
            .unwrap_or(Decimal::ZERO)
            .round_dp_with_strategy(dp, RoundingStrategy::MidpointAwayFromZero)
    };
    r.to_f64().unwrap_or(0.0)
}

/// A period with its name (`YYYY-MM-DD` of its start).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeriodView {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub name: String,
}

impl From<&Period> for PeriodView {
    fn from(p: &Period) -> Self {
        PeriodView {
            start: p.start,
            end: p.end,
            name: p.name(),
        }
    }
}

/// Recorded usage of one provider (or a sum of them).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProviderView {
    pub calls: u64,
    pub tokens: u64,
    #[serde(serialize_with = "money::normalized")]
    pub cost: Decimal,
    pub avg_response_time_ms: f64,
    pub error_rate: f64,
    pub error_calls: u64,
    pub unpriced_calls: u64,
    pub estimated_calls: u64,
}

impl From<&ProviderUsage> for ProviderView {
    fn from(u: &ProviderUsage) -> Self {
        ProviderView {
            calls: u.recorded.calls,
            tokens: u.recorded.tokens,
            cost: u.recorded.cost_usd,
            avg_response_time_ms: ratio_number(u.latency_ms_sum, u.latency_count, 2),
            error_rate: ratio_number(u.error_calls, u.recorded.calls, 4),
            error_calls: u.error_calls,
            unpriced_calls: u.unpriced_calls,
            estimated_calls: u.estimated_calls,
        }
    }
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

/// One period's recorded usage under a plan (GET /usage/{user}).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsageView {
    pub user_id: UserId,
    pub plan: PlanName,
    pub period: PeriodView,
    pub total_calls: u64,
    pub total_tokens: u64,
    #[serde(serialize_with = "money::normalized")]
    pub total_cost: Decimal,
    pub provider_breakdown: BTreeMap<ProviderId, ProviderView>,
    pub usage_status: UsageStatus,
    pub limits: MetricAmounts,
    pub usage_percentages: Percentages,
    pub unpriced_calls: u64,
    pub estimated_calls: u64,
    pub error_calls: u64,
    pub avg_response_time_ms: f64,
    pub error_rate: f64,
}

/// One period's recorded usage under `plan`; the breakdown lists the plan's providers
/// (zeros when unused) and every provider with usage. Pure.
pub fn usage_view(user: &UserId, plan: &Plan, period: &Period, usage: &PeriodUsage) -> UsageView {
    let usage = usage.recorded_only();
    let t = total(&usage);
    let empty = ProviderUsage::default();
    let mut providers = plan_providers(plan);
    providers.extend(usage.by_provider.keys().cloned());
    let provider_breakdown = providers
        .into_iter()
        .map(|p| {
            let view = ProviderView::from(usage.by_provider.get(&p).unwrap_or(&empty));
            (p, view)
        })
        .collect();
    UsageView {
        user_id: user.clone(),
        plan: plan.name.clone(),
        period: period.into(),
        total_calls: t.recorded.calls,
        total_tokens: t.recorded.tokens,
        total_cost: t.recorded.cost_usd,
        provider_breakdown,
        usage_status: limits::usage_status(&plan.limits, &usage),
        limits: MetricAmounts(plan.limits.0.clone()),
        usage_percentages: Percentages(limits::percentages(&plan.limits, &usage)),
        unpriced_calls: t.unpriced_calls,
        estimated_calls: t.estimated_calls,
        error_calls: t.error_calls,
        avg_response_time_ms: ratio_number(t.latency_ms_sum, t.latency_count, 2),
        error_rate: ratio_number(t.error_calls, t.recorded.calls, 4),
    }
}

/// Series of a money amount, each an exact string.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MoneySeries(pub Vec<Decimal>);

impl Serialize for MoneySeries {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|d| d.normalize().to_string()))
    }
}

/// One provider's series over the periods of a trend.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ProviderTrend {
    pub calls: Vec<u64>,
    pub cost: MoneySeries,
    pub tokens: Vec<u64>,
}

/// Per period (oldest first) totals and per-provider series.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrendsView {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
    pub months: usize,
    /// Period names (`YYYY-MM-DD` of their starts).
    pub periods: Vec<String>,
    pub total_calls: Vec<u64>,
    pub total_cost: MoneySeries,
    pub total_tokens: Vec<u64>,
    pub provider_trends: BTreeMap<ProviderId, ProviderTrend>,
}

/// Trends over `periods`, zero-filled over `always` and every provider with usage.
/// Pure; `usages[i]` is the usage of `periods[i]`.
pub fn trends_view(
    periods: &[Period],
    usages: &[PeriodUsage],
    always: &BTreeSet<ProviderId>,
) -> TrendsView {
    let empty = PeriodUsage::default();
    let usage_of = |i: usize| usages.get(i).unwrap_or(&empty);
    let mut providers: BTreeSet<&ProviderId> = always.iter().collect();
    providers.extend(usages.iter().flat_map(|u| u.by_provider.keys()));
    let mut view = TrendsView {
        user_id: None,
        months: periods.len(),
        periods: periods.iter().map(Period::name).collect(),
        total_calls: Vec::with_capacity(periods.len()),
        total_cost: MoneySeries::default(),
        total_tokens: Vec::with_capacity(periods.len()),
        provider_trends: BTreeMap::new(),
    };
    for i in 0..periods.len() {
        let t = total(usage_of(i));
        view.total_calls.push(t.recorded.calls);
        view.total_tokens.push(t.recorded.tokens);
        view.total_cost.0.push(t.recorded.cost_usd);
    }
    for p in providers {
        let mut trend = ProviderTrend::default();
        for i in 0..periods.len() {
            let tally = usage_of(i)
                .by_provider
                .get(p)
                .map(|u| u.recorded.clone())
                .unwrap_or_else(Tally::default);
            trend.calls.push(tally.calls);
            trend.cost.0.push(tally.cost_usd);
            trend.tokens.push(tally.tokens);
        }
        view.provider_trends.insert(p.clone(), trend);
    }
    view
}

/// An invoice as clients see it: exact amounts as stored (the total is rounded to cents).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InvoiceView {
    pub id: String,
    pub period: PeriodView,
    pub plan: PlanName,
    #[serde(serialize_with = "money::exact")]
    pub base_usd: Decimal,
    #[serde(serialize_with = "money::exact")]
    pub usage_usd: Decimal,
    #[serde(serialize_with = "money::exact")]
    pub overage_usd: Decimal,
    #[serde(serialize_with = "money::exact")]
    pub proration_usd: Decimal,
    #[serde(serialize_with = "money::exact")]
    pub adjustments_usd: Decimal,
    #[serde(serialize_with = "money::exact")]
    pub total_usd: Decimal,
    pub line_items: Vec<LineItemView>,
    pub status: InvoiceStatus,
    pub created_at: DateTime<Utc>,
    /// What the invoice states beside its amounts (docs/billing.md): `rounding`,
    /// `exact_total_usd`, and where they apply `unpriced_calls`, `org_id`,
    /// `credits_applied_usd`.
    pub extra: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineItemView {
    pub kind: String,
    pub description: String,
    #[serde(serialize_with = "money::exact")]
    pub amount_usd: Decimal,
}

impl From<&Invoice> for InvoiceView {
    fn from(i: &Invoice) -> Self {
        InvoiceView {
            id: i.id.clone(),
            period: (&i.period).into(),
            plan: i.plan.clone(),
            base_usd: i.base_usd,
            usage_usd: i.usage_usd,
            overage_usd: i.overage_usd,
            proration_usd: i.proration_usd,
            adjustments_usd: i.adjustments_usd,
            total_usd: i.total_usd,
            line_items: i
                .line_items
                .iter()
                .map(|l| LineItemView {
                    kind: l.kind.clone(),
                    description: l.description.clone(),
                    amount_usd: l.amount_usd,
                })
                .collect(),
            status: i.status,
            created_at: i.created_at,
            extra: i.extra.clone(),
        }
    }
}

/// GET /billing/{user}.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BillingView {
    pub user_id: UserId,
    pub invoices: Vec<InvoiceView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanLimits {
    pub plan_name: PlanName,
    pub limits: MetricAmounts,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Projections {
    #[serde(serialize_with = "money::normalized_option")]
    pub projected_monthly_cost: Option<Decimal>,
    /// Of the cost cap; `None` without a cap or before an hour of the period passed.
    pub projected_usage_percentage: Option<f64>,
    #[serde(serialize_with = "money::normalized_option")]
    pub cost_cap: Option<Decimal>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DashboardAlerts {
    pub items: Vec<AlertView>,
    pub unread_count: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub plan: PlanName,
    pub tier: PlanTier,
    pub subscription_status: SubscriptionStatus,
    pub usage_status: UsageStatus,
    pub billing_cycle: BillingCycle,
    pub period: PeriodView,
    pub days_remaining: i64,
    pub total_calls: u64,
    #[serde(serialize_with = "money::normalized")]
    pub total_cost: Decimal,
    pub pending_plan: Option<PlanName>,
}

/// GET /dashboard/{user}.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DashboardView {
    pub user_id: UserId,
    pub current_usage: UsageView,
    pub limits: PlanLimits,
    pub usage_percentages: Percentages,
    pub projections: Projections,
    pub trends: TrendsView,
    pub alerts: DashboardAlerts,
    pub summary: Summary,
    pub recommendations: Vec<Recommendation>,
    /// Issue 19: the user's prepaid wallet, in tenants that sell prepaid plans (one more
    /// read); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wallet: Option<DashboardWallet>,
}

/// The wallet on a dashboard: how the plan is paid and the credit at the dashboard's
/// instant (the full wallet is GET `/wallet/user/{id}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DashboardWallet {
    pub payment: crate::limits::Payment,
    #[serde(serialize_with = "crate::domain::money::normalized")]
    pub balance_usd: Decimal,
    #[serde(serialize_with = "crate::domain::money::normalized")]
    pub held_usd: Decimal,
    #[serde(serialize_with = "crate::domain::money::normalized")]
    pub available_usd: Decimal,
}

fn period_error(e: PeriodError) -> Error {
    Error::bad_parameter("invalid_parameter", e.to_string())
}

/// The last `n` periods of a user's schedule ending with the one containing `now`.
fn last_periods(sub: Option<&Subscription>, now: DateTime<Utc>, n: usize) -> Result<Vec<Period>> {
    schedule_of(sub).last_n(now, n).map_err(period_error)
}

impl Meter {
    /// The current period's usage, or the one `billing_period` names (`YYYY-MM` or
    /// `YYYY-MM-DD`, a period of the user's schedule). One store read.
    pub async fn usage_report(
        &self,
        caller: &Caller,
        user: &UserId,
        billing_period: Option<&str>,
    ) -> Result<UsageView> {
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

    /// The last `months` periods, oldest first, zero-filled.
    pub async fn trends(
        &self,
        caller: &Caller,
        user: &UserId,
        months: usize,
    ) -> Result<TrendsView> {
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
        view.user_id = Some(user.clone());
        view.months = months;
        Ok(view)
    }

    /// Current usage, limits, projections, trends (6 periods), the latest alerts with the
    /// unread count, a summary and recommendations.
    pub async fn dashboard(&self, caller: &Caller, user: &UserId) -> Result<DashboardView> {
        let now = self.now();
        let tenant = &caller.tenant;
        // The subscription, the periods' usage and the alerts, read together (SQLite: one
        // read transaction). A subscription whose periods cannot be computed reads none,
        // and is refused below.
        let pick = |sub: Option<&Subscription>| {
            last_periods(sub, now, DEFAULT_TREND_MONTHS)
                .map(|ps| ps.iter().map(|p| p.start).collect())
                .unwrap_or_default()
        };
        let read = self
            .store
            .dashboard_reads(tenant, user, &pick, DASHBOARD_ALERTS)
            .await?;
        let (usages, alerts, unread) = (read.usages, read.alerts, read.unread);
        let sub = read.subscription.as_ref();
        let periods = last_periods(sub, now, DEFAULT_TREND_MONTHS)?;
        let plan = self.plan_of(tenant, sub).await?;
        let plans = self.plans(tenant).await?;
        let period = periods
            .last()
            .copied()
            .ok_or_else(|| period_error(PeriodError::OutOfRange))?;
        let current = usages.last().cloned().unwrap_or_default().recorded_only();

        let cost = recorded_amount(&Metric::CostUsd, &current);
        let projected = projected_cost(cost, &period, now);
        let cap = plan.limits.get(&Metric::CostUsd);
        let projected_pct = match (projected, cap) {
            (Some(p), Some(c)) => Some(percent_number(limits::percentage(c, p))),
            _ => None,
        };
        let usage = usage_view(user, &plan, &period, &current);
        let remaining = (period.end - now).num_seconds().max(0);
        // Issue 19: the wallet, where prepaid plans are sold.
        let wallet = if self.tenant_sells_prepaid(tenant).await? {
            let credit = self
                .store
                .get_credit_state(tenant, &crate::credits::Subscriber::User(user.clone()))
                .await?;
            let money = |r: std::result::Result<Decimal, crate::credits::CreditError>| {
                r.map_err(Error::overflow)
            };
            Some(DashboardWallet {
                payment: plan.payment,
                balance_usd: money(credit.balance(now))?,
                held_usd: credit.held_usd,
                available_usd: money(credit.available(now))?,
            })
        } else {
            None
        };
        let mut trends = trends_view(&periods, &usages, &plan_providers(&plan));
        trends.months = DEFAULT_TREND_MONTHS;
        Ok(DashboardView {
            user_id: user.clone(),
            limits: PlanLimits {
                plan_name: plan.name.clone(),
                limits: MetricAmounts(plan.limits.0.clone()),
            },
            usage_percentages: Percentages(limits::percentages(&plan.limits, &current)),
            projections: Projections {
                projected_monthly_cost: projected,
                projected_usage_percentage: projected_pct,
                cost_cap: cap,
            },
            trends,
            alerts: DashboardAlerts {
                items: alerts.iter().map(AlertView::from).collect(),
                unread_count: unread,
            },
            summary: Summary {
                plan: plan.name.clone(),
                tier: plan.tier.clone(),
                subscription_status: sub.map_or(SubscriptionStatus::Active, |s| s.status),
                usage_status: limits::usage_status(&plan.limits, &current),
                billing_cycle: sub.map_or(BillingCycle::Monthly, |s| s.cycle),
                period: (&period).into(),
                days_remaining: (remaining + 86_399) / 86_400,
                total_calls: usage.total_calls,
                total_cost: usage.total_cost,
                pending_plan: sub.and_then(|s| s.pending_plan.clone()),
            },
            recommendations: recommendations(&plans, &plan, &current, projected),
            current_usage: usage,
            wallet,
        })
    }

    /// The user's invoices, newest period first.
    pub async fn billing(&self, caller: &Caller, user: &UserId) -> Result<BillingView> {
        let mut invoices = self.store.list_invoices(&caller.tenant, user).await?;
        invoices.sort_by_key(|i| std::cmp::Reverse(i.period.start));
        Ok(BillingView {
            user_id: user.clone(),
            invoices: invoices.iter().map(InvoiceView::from).collect(),
        })
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
        assert_eq!(v.total_calls, 3, "holds are not shown");
        assert_eq!(v.total_cost, dec!(0.5));
        assert_eq!(v.error_rate, 0.3333);
        assert_eq!(v.avg_response_time_ms, 100.0);
        assert_eq!(
            v.usage_percentages.0[&Metric::parse("calls:gemini").unwrap()],
            dec!(3.00)
        );
        assert_eq!(v.period.name, "2025-03-01");
        assert_eq!(
            v.provider_breakdown[&pid("stability")].calls,
            0,
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
        assert_eq!(v.periods, ["2025-01-01", "2025-02-01", "2025-03-01"]);
        assert_eq!(v.total_calls, [2, 0, 1]);
        assert_eq!(v.total_cost.0, [dec!(0.1), dec!(0), dec!(0.25)]);
        assert_eq!(v.provider_trends[&pid("gemini")].calls, [2, 0, 0]);
        assert_eq!(
            v.provider_trends[&pid("openai")].cost.0,
            [dec!(0), dec!(0), dec!(0.25)]
        );
        assert_eq!(v.provider_trends[&pid("mistral")].tokens, [0, 0, 0]);
    }
}
