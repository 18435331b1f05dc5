//! Subscription changes: the rules of creating and changing a subscription, proration and
//! the re-arming of alert thresholds after an upgrade. Pure: no I/O, no clock.
//!
//! Rules of a change (docs/subscriptions.md):
//! - no subscription yet → created (period containing now, version 1);
//! - a plan with a higher price for the cycle → upgrade at once, usage of the period kept,
//!   the prorated difference recorded for the next invoice, thresholds re-armed;
//! - a lower price → downgrade scheduled (`pending_plan`) for the next period start;
//! - the same price, another plan → switched at once without proration;
//! - another billing cycle or anchor → refused `unsupported_change` (cancel and re-create).

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use crate::alerts::{PROJECTION_KEY, UNPRICED_KEY};
use crate::domain::{PlanName, Proration, Subscription, SubscriptionStatus, TenantId, UserId};
use crate::limits::{reached, recorded_amount, Metric, Plan};
use crate::periods::{Anchor, BillingCycle, Period, PeriodError, Schedule};
use crate::usage::PeriodUsage;

/// The schedule of a user's limit periods: the subscription's, or calendar months.
pub fn schedule_of(sub: Option<&Subscription>) -> Schedule {
    match sub {
        Some(s) => Schedule::new(s.anchor, s.started_at, s.cycle),
        None => Schedule::calendar(),
    }
}

/// A requested change of a subscription. Absent fields keep the subscription's values
/// (on creation: monthly, calendar, active, auto-renew).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscriptionChange {
    pub plan: Option<PlanName>,
    pub billing_cycle: Option<BillingCycle>,
    pub anchor: Option<Anchor>,
    pub status: Option<SubscriptionStatus>,
    pub auto_renew: Option<bool>,
}

/// Why a change cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    #[error("is required to create a subscription")]
    MissingPlan,
    #[error("no active plan named `{0}`")]
    UnknownPlan(PlanName),
    #[error(
        "the {what} of an existing subscription cannot be changed; cancel it and create a new one"
    )]
    Unsupported {
        field: &'static str,
        what: &'static str,
    },
    #[error("{0}")]
    OutOfRange(#[from] PeriodError),
    #[error("the proration overflows")]
    Overflow,
}

impl ChangeError {
    /// The request field the error is about.
    pub fn field(&self) -> &'static str {
        match self {
            ChangeError::MissingPlan | ChangeError::UnknownPlan(_) | ChangeError::Overflow => {
                "plan"
            }
            ChangeError::Unsupported { field, .. } => field,
            ChangeError::OutOfRange(_) => "",
        }
    }

    /// The stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            ChangeError::MissingPlan => "missing_field",
            ChangeError::UnknownPlan(_) => "unknown_plan",
            ChangeError::Unsupported { .. } => "unsupported_change",
            ChangeError::OutOfRange(_) => "out_of_range",
            ChangeError::Overflow => "overflow",
        }
    }
}

/// A plan's base price for a billing cycle.
pub fn cycle_price(plan: &Plan, cycle: BillingCycle) -> Decimal {
    match cycle {
        BillingCycle::Monthly => plan.monthly_price_usd,
        BillingCycle::Yearly => plan.yearly_price_usd,
    }
}

/// The prorated price difference of switching from `old_price` to `new_price` at `at`
/// within billing `cycle`: `(new − old) × seconds remaining ÷ cycle seconds`, exact
/// (multiplied before dividing). `None` on overflow.
pub fn proration_amount(
    old_price: Decimal,
    new_price: Decimal,
    cycle: &Period,
    at: DateTime<Utc>,
) -> Option<Decimal> {
    let total = cycle.seconds();
    if total <= 0 {
        return Some(Decimal::ZERO);
    }
    let remaining = (cycle.end - at).num_seconds().clamp(0, total);
    new_price
        .checked_sub(old_price)?
        .checked_mul(Decimal::from(remaining))?
        .checked_div(Decimal::from(total))
}

/// The once-only alert keys of a period that `plan`'s limits put back below their
/// threshold, given the period's recorded `usage` (and its cost projection): they are
/// forgotten so that they can fire again. A threshold key (`calls:gemini@80`) is re-armed
/// when the metric is unlimited under `plan` or `used × 100 < limit × threshold`; the
/// projection key when the plan has no cap or the projection no longer passes it. Other
/// keys (unpriced usage) stay. Pure.
pub fn rearm_keys(
    fired: &BTreeSet<String>,
    plan: &Plan,
    usage: &PeriodUsage,
    projected: Option<Decimal>,
) -> Vec<String> {
    let mut out = Vec::new();
    for key in fired {
        if key == UNPRICED_KEY {
            continue;
        }
        if key == PROJECTION_KEY {
            let cap = plan.limits.get(&Metric::CostUsd);
            let still_past =
                matches!((projected, cap), (Some(p), Some(c)) if c > Decimal::ZERO && p > c);
            if !still_past {
                out.push(key.clone());
            }
            continue;
        }
        let Some((metric, threshold)) = key.rsplit_once('@') else {
            continue;
        };
        let (Ok(metric), Ok(threshold)) = (Metric::parse(metric), threshold.parse::<u8>()) else {
            continue;
        };
        let below = match plan.limits.get(&metric) {
            None => true,
            Some(limit) if limit <= Decimal::ZERO => false,
            Some(limit) => !reached(recorded_amount(&metric, usage), limit, threshold),
        };
        if below {
            out.push(key.clone());
        }
    }
    out
}

/// What a PUT did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Created,
    Upgraded,
    Switched,
    DowngradeScheduled,
    /// The plan stayed (a status or auto-renew change, or nothing).
    Updated,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Created => "created",
            ChangeKind::Upgraded => "upgraded",
            ChangeKind::Switched => "switched",
            ChangeKind::DowngradeScheduled => "downgrade_scheduled",
            ChangeKind::Updated => "updated",
        }
    }

    /// Whether the plan in force changed now (limits change at once).
    pub fn changes_limits(self) -> bool {
        matches!(self, ChangeKind::Upgraded | ChangeKind::Switched)
    }
}

/// Applies a PUT to the stored subscription (`None`: none yet) at `now`. Pure: returns the
/// subscription to write (its version bumped) and what changed.
pub fn apply_change(
    tenant: &TenantId,
    user: &UserId,
    existing: Option<&Subscription>,
    input: &SubscriptionChange,
    plans: &[Plan],
    now: DateTime<Utc>,
) -> Result<(Subscription, ChangeKind), ChangeError> {
    let active_plan = |name: &PlanName| {
        plans
            .iter()
            .find(|p| &p.name == name && p.active)
            .ok_or_else(|| ChangeError::UnknownPlan(name.clone()))
    };
    let Some(old) = existing else {
        let name = input.plan.clone().ok_or(ChangeError::MissingPlan)?;
        active_plan(&name)?;
        let cycle = input.billing_cycle.unwrap_or_default();
        let anchor = input.anchor.unwrap_or_default();
        let current_period = Schedule::new(anchor, now, cycle).period_containing(now)?;
        let status = input.status.unwrap_or(SubscriptionStatus::Active);
        let sub = Subscription {
            tenant: tenant.clone(),
            user: user.clone(),
            plan: name,
            cycle,
            anchor,
            started_at: now,
            current_period,
            status,
            auto_renew: input.auto_renew.unwrap_or(true) && status != SubscriptionStatus::Cancelled,
            pending_plan: None,
            prorations: Vec::new(),
            version: 1,
            updated_at: now,
        };
        return Ok((sub, ChangeKind::Created));
    };

    if input.billing_cycle.is_some_and(|c| c != old.cycle) {
        return Err(ChangeError::Unsupported {
            field: "billing_cycle",
            what: "billing cycle",
        });
    }
    if input.anchor.is_some_and(|a| a != old.anchor) {
        return Err(ChangeError::Unsupported {
            field: "anchor",
            what: "anchor",
        });
    }
    let mut sub = old.clone();
    sub.version = old.version.saturating_add(1);
    sub.updated_at = now;
    let mut kind = ChangeKind::Updated;
    if let Some(name) = &input.plan {
        if name == &old.plan {
            // Choosing the plan in force again cancels a scheduled downgrade.
            sub.pending_plan = None;
        } else {
            let new_plan = active_plan(name)?;
            let old_price = plans
                .iter()
                .find(|p| p.name == old.plan)
                .map_or(Decimal::ZERO, |p| cycle_price(p, old.cycle));
            let new_price = cycle_price(new_plan, old.cycle);
            if new_price > old_price {
                let schedule = schedule_of(Some(old));
                let cycle = schedule.cycle_containing(now)?;
                let amount = proration_amount(old_price, new_price, &cycle, now)
                    .ok_or(ChangeError::Overflow)?;
                sub.prorations.push(Proration {
                    period_start: schedule.period_containing(now)?.start,
                    at: now,
                    from_plan: old.plan.clone(),
                    to_plan: name.clone(),
                    amount_usd: amount,
                });
                sub.plan = name.clone();
                sub.pending_plan = None;
                kind = ChangeKind::Upgraded;
            } else if new_price < old_price {
                sub.pending_plan = Some(name.clone());
                kind = ChangeKind::DowngradeScheduled;
            } else {
                sub.plan = name.clone();
                sub.pending_plan = None;
                kind = ChangeKind::Switched;
            }
        }
    }
    if let Some(status) = input.status {
        sub.status = status;
    }
    if let Some(auto_renew) = input.auto_renew {
        sub.auto_renew = auto_renew;
    }
    if sub.status == SubscriptionStatus::Cancelled {
        sub.auto_renew = false;
    }
    Ok((sub, kind))
}

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;

    use super::*;
    use crate::domain::ProviderId;
    use crate::limits::default_plans;
    use crate::usage::{ProviderUsage, Tally};

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn plan(name: &str) -> Plan {
        default_plans()
            .into_iter()
            .find(|p| p.name.as_str() == name)
            .unwrap()
    }

    fn sub(plan: &str, cycle: BillingCycle) -> Subscription {
        Subscription {
            tenant: TenantId::parse("t").unwrap(),
            user: UserId::parse("u").unwrap(),
            plan: PlanName::parse(plan).unwrap(),
            cycle,
            anchor: Anchor::Calendar,
            started_at: t("2025-01-01T00:00:00Z"),
            current_period: Period {
                start: t("2025-04-01T00:00:00Z"),
                end: t("2025-05-01T00:00:00Z"),
            },
            status: SubscriptionStatus::Active,
            auto_renew: true,
            pending_plan: None,
            prorations: Vec::new(),
            version: 4,
            updated_at: t("2025-01-01T00:00:00Z"),
        }
    }

    fn input(plan: &str) -> SubscriptionChange {
        SubscriptionChange {
            plan: Some(PlanName::parse(plan).unwrap()),
            ..SubscriptionChange::default()
        }
    }

    #[test]
    fn proration_is_the_price_difference_times_the_remaining_fraction() {
        let april = Period {
            start: t("2025-04-01T00:00:00Z"),
            end: t("2025-05-01T00:00:00Z"),
        };
        let amount =
            proration_amount(dec!(29), dec!(79), &april, t("2025-04-11T00:00:00Z")).unwrap();
        assert_eq!(amount, dec!(50) * dec!(20) / dec!(30));
        assert_eq!(
            proration_amount(dec!(29), dec!(79), &april, april.end),
            Some(Decimal::ZERO)
        );
        assert_eq!(
            proration_amount(dec!(29), dec!(79), &april, april.start),
            Some(dec!(50))
        );
    }

    #[test]
    fn upgrade_applies_at_once_with_proration_downgrade_waits() {
        let (tn, u, plans) = (
            TenantId::parse("t").unwrap(),
            UserId::parse("u").unwrap(),
            default_plans(),
        );
        let old = sub("basic", BillingCycle::Monthly);
        let now = t("2025-04-11T00:00:00Z");
        let (up, kind) = apply_change(&tn, &u, Some(&old), &input("pro"), &plans, now).unwrap();
        assert_eq!(kind, ChangeKind::Upgraded);
        assert_eq!((up.plan.as_str(), up.version), ("pro", 5));
        assert_eq!(up.prorations[0].period_start, t("2025-04-01T00:00:00Z"));
        assert_eq!(up.prorations[0].amount_usd, dec!(50) * dec!(20) / dec!(30));

        let (down, kind) = apply_change(&tn, &u, Some(&old), &input("free"), &plans, now).unwrap();
        assert_eq!(kind, ChangeKind::DowngradeScheduled);
        assert_eq!(down.plan.as_str(), "basic");
        assert_eq!(down.pending_plan, Some(PlanName::parse("free").unwrap()));
        assert!(down.prorations.is_empty());

        let mut yearly = input("pro");
        yearly.billing_cycle = Some(BillingCycle::Yearly);
        let e = apply_change(&tn, &u, Some(&old), &yearly, &plans, now).unwrap_err();
        assert_eq!(e.code(), "unsupported_change");
        let e = apply_change(&tn, &u, None, &input("nope"), &plans, now).unwrap_err();
        assert_eq!(e.code(), "unknown_plan");

        let mut cancel = input("basic");
        cancel.status = Some(SubscriptionStatus::Cancelled);
        let (c, _) = apply_change(&tn, &u, Some(&old), &cancel, &plans, now).unwrap();
        assert!(!c.auto_renew);
    }

    #[test]
    fn rearm_forgets_only_keys_the_new_limits_put_below_their_threshold() {
        let mut usage = PeriodUsage::default();
        usage.by_provider.insert(
            ProviderId::parse("gemini").unwrap(),
            ProviderUsage {
                recorded: Tally {
                    calls: 950,
                    tokens: 10,
                    cost_usd: dec!(1),
                },
                ..ProviderUsage::default()
            },
        );
        let fired: BTreeSet<String> = [
            "calls:gemini@80",
            "calls:gemini@90",
            "calls:openai@100",
            "unpriced",
            "garbage",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        // Pro: 5000 gemini calls, so 950 is below 80 % and 90 %; openai 2500, 0 used.
        let keys = rearm_keys(&fired, &plan("pro"), &usage, None);
        assert_eq!(
            keys,
            ["calls:gemini@80", "calls:gemini@90", "calls:openai@100"]
        );
        // Basic: 1000 gemini calls, 950 is still past 80 % and 90 %.
        let keys = rearm_keys(&fired, &plan("basic"), &usage, None);
        assert_eq!(keys, ["calls:openai@100"]);
    }
}
