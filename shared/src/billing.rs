//! Invoices: what closing one period bills. Pure: no I/O, no clock.
//!
//! An invoice bills, for one user and one limit period:
//! - **base**: the plan's price for the billing cycle, in the period that starts the cycle
//!   (every period when monthly; the period that starts each subscription year when
//!   yearly), times the first cycle's fraction when the subscription started inside it
//!   with a calendar anchor; nothing for a subscription cancelled at the period's start or
//!   a user without one (the free plan's price is 0 anyway). The plan and status are the
//!   ones in force when the period started (the caller passes the subscription with those
//!   terms): an upgrade during the period is charged by its proration line.
//! - **usage**: the exact recorded cost of the period, one line per provider (usage is
//!   billed at cost on top of the base price; unpriced events are counted, not billed,
//!   until re-pricing adds them as an adjustment).
//! - **overage**: when the plan has an `overage_rate` and a `cost_usd` cap, the usage cost
//!   past the cap times the rate.
//! - **proration**: the prorated differences of upgrades made in the period, and the
//!   prorated base of a reactivation.
//! - **adjustments**: usage recorded or re-priced after earlier periods were invoiced.
//!
//! Every amount is exact; only `total_usd` is rounded, to cents, half away from zero.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rust_decimal::{Decimal, RoundingStrategy};

use crate::domain::{
    Adjustment, Invoice, InvoiceStatus, LineItem, Proration, Subscription, SubscriptionStatus,
    TenantId, UserId,
};
use crate::limits::{Metric, Plan};
use crate::periods::{BillingCycle, Period, PeriodError, Schedule};
use crate::usage::PeriodUsage;

/// How invoice totals are rounded (stated on every invoice).
pub const ROUNDING: &str = "total rounded to cents, half away from zero";

#[derive(Debug, thiserror::Error)]
pub enum BillingError {
    #[error("period arithmetic: {0}")]
    Period(#[from] PeriodError),
    #[error("an invoice amount overflows")]
    Overflow,
}

/// Everything one invoice is computed from.
pub struct InvoiceInput<'a> {
    pub tenant: &'a TenantId,
    pub user: &'a UserId,
    pub period: Period,
    /// `None`: a user without a subscription (free plan, calendar months, no base price).
    pub subscription: Option<&'a Subscription>,
    /// The plan in force when the period started.
    pub plan: &'a Plan,
    pub usage: &'a PeriodUsage,
    pub adjustments: &'a BTreeMap<DateTime<Utc>, Adjustment>,
    pub created_at: DateTime<Utc>,
}

/// The prorations a period's invoice carries.
pub fn prorations_of<'a>(sub: &'a Subscription, period: &Period) -> Vec<&'a Proration> {
    sub.prorations
        .iter()
        .filter(|p| p.period_start == period.start)
        .collect()
}

fn add(a: Decimal, b: Decimal) -> Result<Decimal, BillingError> {
    a.checked_add(b).ok_or(BillingError::Overflow)
}

/// The base price `sub` pays in `period` on `plan`.
pub fn base_price(
    sub: Option<&Subscription>,
    plan: &Plan,
    period: &Period,
) -> Result<Decimal, BillingError> {
    let Some(sub) = sub else {
        return Ok(Decimal::ZERO);
    };
    if sub.status == SubscriptionStatus::Cancelled {
        return Ok(Decimal::ZERO);
    }
    let schedule = Schedule::new(sub.anchor, sub.started_at, sub.cycle);
    if !schedule.starts_cycle(period)? || period.end <= sub.started_at {
        return Ok(Decimal::ZERO);
    }
    let price = match sub.cycle {
        BillingCycle::Monthly => plan.monthly_price_usd,
        BillingCycle::Yearly => plan.yearly_price_usd,
    };
    let first_cycle = schedule.cycle_containing(sub.started_at)?;
    if first_cycle.contains(period.start) {
        price
            .checked_mul(schedule.first_period_fraction()?)
            .ok_or(BillingError::Overflow)
    } else {
        Ok(price)
    }
}

fn money_text(d: Decimal) -> String {
    d.normalize().to_string()
}

/// The invoice of one period (id left to the caller).
pub fn build_invoice(input: &InvoiceInput<'_>, id: String) -> Result<Invoice, BillingError> {
    let mut lines = Vec::new();

    let base = base_price(input.subscription, input.plan, &input.period)?;
    if input.subscription.is_some() {
        let cycle = match input.subscription.map(|s| s.cycle) {
            Some(BillingCycle::Yearly) => "yearly",
            _ => "monthly",
        };
        lines.push(LineItem {
            kind: "base".into(),
            description: format!("{} plan, {cycle} base price", input.plan.name),
            amount_usd: base,
        });
    }

    let mut usage = Decimal::ZERO;
    let mut unpriced = 0u64;
    for (provider, u) in &input.usage.by_provider {
        // No line without usage; a cost without calls is billed (a call another invoice
        // billed whose re-priced cost falls to this one: docs/billing.md "One payer per call").
        if u.recorded.calls == 0 && u.recorded.cost_usd.is_zero() {
            continue;
        }
        usage = add(usage, u.recorded.cost_usd)?;
        unpriced = unpriced.saturating_add(u.unpriced_calls);
        let mut description = format!(
            "{provider}: {} calls, {} tokens",
            u.recorded.calls, u.recorded.tokens
        );
        if u.unpriced_calls > 0 {
            description.push_str(&format!(
                " ({} unpriced, billed once priced)",
                u.unpriced_calls
            ));
        }
        lines.push(LineItem {
            kind: "usage".into(),
            description,
            amount_usd: u.recorded.cost_usd,
        });
    }

    let mut overage = Decimal::ZERO;
    if let (Some(rate), Some(cap)) = (
        input.plan.overage_rate,
        input.plan.limits.get(&Metric::CostUsd),
    ) {
        let past = usage - cap;
        if past > Decimal::ZERO {
            overage = past.checked_mul(rate).ok_or(BillingError::Overflow)?;
            lines.push(LineItem {
                kind: "overage".into(),
                description: format!(
                    "usage past the ${} cap at {} per USD",
                    money_text(cap),
                    money_text(rate)
                ),
                amount_usd: overage,
            });
        }
    }

    let mut proration = Decimal::ZERO;
    if let Some(sub) = input.subscription {
        for p in prorations_of(sub, &input.period) {
            proration = add(proration, p.amount_usd)?;
            let on = p.at.format("%Y-%m-%d %H:%M UTC");
            let description = if p.from_plan == p.to_plan {
                format!("{} plan reactivated on {on}: prorated base", p.to_plan)
            } else {
                format!(
                    "upgrade from {} to {} on {on}: prorated difference",
                    p.from_plan, p.to_plan
                )
            };
            lines.push(LineItem {
                kind: "proration".into(),
                description,
                amount_usd: p.amount_usd,
            });
        }
    }

    let mut adjustments = Decimal::ZERO;
    for (start, a) in input.adjustments {
        adjustments = add(adjustments, a.cost_usd)?;
        lines.push(LineItem {
            kind: "adjustment".into(),
            description: format!(
                "usage of the period {} recorded or priced after its invoice ({} events)",
                start.date_naive(),
                a.events
            ),
            amount_usd: a.cost_usd,
        });
    }

    let exact = [base, usage, overage, proration, adjustments]
        .into_iter()
        .try_fold(Decimal::ZERO, add)?;
    let total = exact.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);

    let mut extra = BTreeMap::new();
    extra.insert("rounding".to_owned(), ROUNDING.to_owned());
    extra.insert("exact_total_usd".to_owned(), money_text(exact));
    if unpriced > 0 {
        extra.insert("unpriced_calls".to_owned(), unpriced.to_string());
    }
    Ok(Invoice {
        id,
        tenant: input.tenant.clone(),
        user: input.user.to_string(),
        period: input.period,
        plan: input.plan.name.clone(),
        base_usd: base,
        usage_usd: usage,
        overage_usd: overage,
        proration_usd: proration,
        adjustments_usd: adjustments,
        total_usd: total,
        line_items: lines,
        status: InvoiceStatus::Pending,
        created_at: input.created_at,
        published: false,
        extra,
    })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use rust_decimal_macros::dec;

    use super::*;
    use crate::domain::{PlanName, ProviderId};
    use crate::limits::default_plans;
    use crate::periods::Anchor;
    use crate::usage::{ProviderUsage, Tally};

    fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).unwrap()
    }

    fn plan(name: &str) -> Plan {
        default_plans()
            .into_iter()
            .find(|p| p.name.as_str() == name)
            .unwrap()
    }

    fn sub(plan: &str, cycle: BillingCycle, started: DateTime<Utc>) -> Subscription {
        let schedule = Schedule::new(Anchor::Calendar, started, cycle);
        Subscription {
            tenant: TenantId::parse("t").unwrap(),
            user: UserId::parse("u").unwrap(),
            plan: PlanName::parse(plan).unwrap(),
            cycle,
            anchor: Anchor::Calendar,
            started_at: started,
            current_period: schedule.period_containing(started).unwrap(),
            status: SubscriptionStatus::Active,
            auto_renew: true,
            pending_plan: None,
            prorations: Vec::new(),
            history: Vec::new(),
            version: 1,
            updated_at: started,
        }
    }

    fn usage(costs: &[(&str, &str)]) -> PeriodUsage {
        let mut u = PeriodUsage::default();
        for (p, c) in costs {
            u.by_provider.insert(
                ProviderId::parse(*p).unwrap(),
                ProviderUsage {
                    recorded: Tally {
                        calls: 3,
                        tokens: 100,
                        cost_usd: c.parse().unwrap(),
                    },
                    ..ProviderUsage::default()
                },
            );
        }
        u
    }

    fn invoice(
        sub: Option<&Subscription>,
        plan: &Plan,
        period: Period,
        u: &PeriodUsage,
    ) -> Invoice {
        let (t, us) = (TenantId::parse("t").unwrap(), UserId::parse("u").unwrap());
        let adjustments = BTreeMap::new();
        build_invoice(
            &InvoiceInput {
                tenant: &t,
                user: &us,
                period,
                subscription: sub,
                plan,
                usage: u,
                adjustments: &adjustments,
                created_at: period.end,
            },
            "inv".into(),
        )
        .unwrap()
    }

    fn april() -> Period {
        Period {
            start: at(2025, 4, 1),
            end: at(2025, 5, 1),
        }
    }

    #[test]
    fn monthly_invoice_bills_base_plus_exact_usage_rounded_once() {
        let s = sub("basic", BillingCycle::Monthly, at(2025, 1, 1));
        let u = usage(&[("gemini", "0.0000001"), ("openai", "1.2349")]);
        let inv = invoice(Some(&s), &plan("basic"), april(), &u);
        assert_eq!(inv.base_usd, dec!(29));
        assert_eq!(inv.usage_usd, dec!(1.2349001));
        assert_eq!(inv.total_usd, dec!(30.23));
        assert_eq!(inv.extra["exact_total_usd"], "30.2349001");
        let kinds: Vec<_> = inv.line_items.iter().map(|l| l.kind.as_str()).collect();
        assert_eq!(kinds, ["base", "usage", "usage"]);
        let line_sum: Decimal = inv.line_items.iter().map(|l| l.amount_usd).sum();
        assert_eq!(line_sum, dec!(30.2349001));
    }

    #[test]
    fn half_cents_round_away_from_zero() {
        let s = sub("free", BillingCycle::Monthly, at(2025, 1, 1));
        for (cost, total) in [
            ("0.005", "0.01"),
            ("0.015", "0.02"),
            ("0.0049", "0.00"),
            ("0.025", "0.03"),
        ] {
            let inv = invoice(
                Some(&s),
                &plan("free"),
                april(),
                &usage(&[("gemini", cost)]),
            );
            assert_eq!(inv.total_usd.to_string(), total, "{cost}");
        }
    }

    #[test]
    fn first_partial_month_prorates_the_base_by_time() {
        // Started 2025-04-16 00:00 (calendar anchor): 15 of April's 30 days are billed.
        let s = sub("pro", BillingCycle::Monthly, at(2025, 4, 16));
        let inv = invoice(Some(&s), &plan("pro"), april(), &PeriodUsage::default());
        assert_eq!(inv.base_usd, dec!(39.5));
        // The next month pays the full price.
        let may = Period {
            start: at(2025, 5, 1),
            end: at(2025, 6, 1),
        };
        assert_eq!(
            invoice(Some(&s), &plan("pro"), may, &PeriodUsage::default()).base_usd,
            dec!(79)
        );
    }

    #[test]
    fn yearly_cycle_bills_its_price_in_the_period_that_starts_the_year() {
        let s = sub("basic", BillingCycle::Yearly, at(2025, 1, 1));
        let jan = Period {
            start: at(2026, 1, 1),
            end: at(2026, 2, 1),
        };
        assert_eq!(
            invoice(Some(&s), &plan("basic"), jan, &PeriodUsage::default()).base_usd,
            dec!(290)
        );
        assert_eq!(
            invoice(Some(&s), &plan("basic"), april(), &PeriodUsage::default()).base_usd,
            dec!(0)
        );
    }

    #[test]
    fn overage_applies_past_the_cap_only_when_the_plan_bills_it() {
        let s = sub("free", BillingCycle::Monthly, at(2025, 1, 1));
        let mut p = plan("free");
        let u = usage(&[("gemini", "2.5")]);
        assert_eq!(invoice(Some(&s), &p, april(), &u).overage_usd, dec!(0));
        p.overage_rate = Some(dec!(0.2));
        let inv = invoice(Some(&s), &p, april(), &u);
        assert_eq!(inv.overage_usd, dec!(0.1));
        assert_eq!(inv.total_usd, dec!(2.60));
    }

    #[test]
    fn prorations_and_adjustments_are_labelled_lines() {
        let mut s = sub("pro", BillingCycle::Monthly, at(2025, 1, 1));
        s.prorations.push(Proration {
            period_start: april().start,
            at: at(2025, 4, 11),
            from_plan: PlanName::parse("basic").unwrap(),
            to_plan: PlanName::parse("pro").unwrap(),
            amount_usd: dec!(33.333333333333333333333333333),
        });
        s.prorations.push(Proration {
            period_start: at(2025, 3, 1),
            ..s.prorations[0].clone()
        });
        let (t, u) = (TenantId::parse("t").unwrap(), UserId::parse("u").unwrap());
        let mut adjustments = BTreeMap::new();
        adjustments.insert(
            at(2025, 3, 1),
            Adjustment {
                events: 2,
                cost_usd: dec!(0.5),
            },
        );
        let empty = PeriodUsage::default();
        let inv = build_invoice(
            &InvoiceInput {
                tenant: &t,
                user: &u,
                period: april(),
                subscription: Some(&s),
                plan: &plan("basic"),
                usage: &empty,
                adjustments: &adjustments,
                created_at: april().end,
            },
            "inv".into(),
        )
        .unwrap();
        assert_eq!(inv.base_usd, dec!(29));
        assert_eq!(inv.proration_usd, dec!(33.333333333333333333333333333));
        assert_eq!(inv.adjustments_usd, dec!(0.5));
        assert_eq!(inv.total_usd, dec!(62.83));
        assert!(inv
            .line_items
            .iter()
            .any(|l| l.kind == "adjustment" && l.description.contains("2025-03-01")));
        assert_eq!(
            inv.line_items
                .iter()
                .filter(|l| l.kind == "proration")
                .count(),
            1
        );
    }

    #[test]
    fn users_without_a_subscription_pay_usage_only() {
        let inv = invoice(None, &plan("free"), april(), &usage(&[("tavily", "0.016")]));
        assert_eq!((inv.base_usd, inv.total_usd), (dec!(0), dec!(0.02)));
        assert!(inv.line_items.iter().all(|l| l.kind != "base"));
    }
}
