//! Subscriptions (GET/PUT), plan upserts and a tenant's own price versions.
//!
//! Rules of a change (docs/subscriptions.md):
//! - no subscription yet → created (period containing now, version 1);
//! - a plan with a higher price for the cycle → upgrade at once, usage of the period kept,
//!   the prorated difference recorded for the next invoice, thresholds re-armed;
//! - a lower price → downgrade scheduled (`pending_plan`) for the next period start;
//! - the same price, another plan → switched at once without proration;
//! - another billing cycle or anchor → 422 `unsupported_change` (cancel and re-create).

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::{json, Value};

use super::check::{metric_map, status_name};
use super::dashboard::period_json;
use super::outbox::{projected_cost, recorded_amount};
use super::reads::plan_json;
use super::{period_at, period_start_at, schedule_of, Caller, Meter};
use crate::alerts::{PROJECTION_KEY, UNPRICED_KEY};
use crate::domain::{PlanName, Proration, Subscription, SubscriptionStatus, TenantId, UserId};
use crate::http::admin::{catalog_error_code, SubscriptionInput};
use crate::http::{ApiError, FieldError};
use crate::limits::{Metric, Plan};
use crate::periods::{BillingCycle, Period};
use crate::pricing::{Catalog, PriceVersion};
use crate::store::StoreError;
use crate::usage::PeriodUsage;

/// How often a subscription write that lost a version race is re-read and re-applied.
pub const WRITE_ATTEMPTS: usize = 3;

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
            Some(limit) => {
                let used = recorded_amount(&metric, usage);
                match (
                    used.checked_mul(Decimal::ONE_HUNDRED),
                    limit.checked_mul(Decimal::from(threshold)),
                ) {
                    (Some(u), Some(l)) => u < l,
                    _ => false,
                }
            }
        };
        if below {
            out.push(key.clone());
        }
    }
    out
}

/// What a PUT did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Created,
    Upgraded,
    Switched,
    DowngradeScheduled,
    /// The plan stayed (a status or auto-renew change, or nothing).
    Updated,
}

impl ChangeKind {
    pub fn name(self) -> &'static str {
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

fn unknown_plan(name: &PlanName) -> ApiError {
    ApiError::invalid(
        "plan",
        "unknown_plan",
        format!("no active plan named `{name}`"),
    )
}

fn unsupported(field: &str, what: &str) -> ApiError {
    ApiError::invalid(
        field,
        "unsupported_change",
        format!("the {what} of an existing subscription cannot be changed; cancel it and create a new one"),
    )
}

/// Applies a PUT to the stored subscription (`None`: none yet) at `now`. Pure: returns the
/// subscription to write (its version bumped) and what changed.
pub fn apply_change(
    tenant: &TenantId,
    user: &UserId,
    existing: Option<&Subscription>,
    input: &SubscriptionInput,
    plans: &[Plan],
    now: DateTime<Utc>,
) -> Result<(Subscription, ChangeKind), ApiError> {
    let active_plan = |name: &PlanName| {
        plans
            .iter()
            .find(|p| &p.name == name && p.active)
            .ok_or_else(|| unknown_plan(name))
    };
    let Some(old) = existing else {
        let name = input.plan.clone().ok_or_else(|| {
            ApiError::invalid(
                "plan",
                "missing_field",
                "is required to create a subscription",
            )
        })?;
        active_plan(&name)?;
        let cycle = input.billing_cycle.unwrap_or_default();
        let anchor = input.anchor.unwrap_or_default();
        let schedule = crate::periods::Schedule::new(anchor, now, cycle);
        let current_period = schedule
            .period_containing(now)
            .map_err(|e| ApiError::invalid("", "out_of_range", e.to_string()))?;
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
        return Err(unsupported("billing_cycle", "billing cycle"));
    }
    if input.anchor.is_some_and(|a| a != old.anchor) {
        return Err(unsupported("anchor", "anchor"));
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
                let cycle = schedule
                    .cycle_containing(now)
                    .map_err(|e| ApiError::invalid("", "out_of_range", e.to_string()))?;
                let amount =
                    proration_amount(old_price, new_price, &cycle, now).ok_or_else(|| {
                        ApiError::invalid("plan", "overflow", "the proration overflows")
                    })?;
                sub.prorations.push(Proration {
                    period_start: period_at(Some(old), now)?.start,
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

fn proration_json(p: &Proration) -> Value {
    json!({
        "period_start": p.period_start,
        "at": p.at,
        "from_plan": p.from_plan,
        "to_plan": p.to_plan,
        "amount_usd": p.amount_usd.to_string(),
    })
}

fn subscription_json(s: &Subscription) -> Value {
    json!({
        "plan": s.plan,
        "billing_cycle": s.cycle,
        "anchor": s.anchor,
        "status": status_name(s.status),
        "auto_renew": s.auto_renew,
        "started_at": s.started_at,
        "current_period": period_json(&s.current_period),
        "pending_plan": s.pending_plan,
        "version": s.version,
        "updated_at": s.updated_at,
    })
}

impl Meter {
    fn subscription_view(
        &self,
        user: &UserId,
        sub: Option<&Subscription>,
        plan: &Plan,
        now: DateTime<Utc>,
    ) -> Result<Value, ApiError> {
        let period = period_at(sub, now)?;
        Ok(json!({
            "user_id": user,
            "subscription": sub.map(subscription_json),
            "plan": plan_json(plan),
            "limits": metric_map(&plan.limits.0),
            "status": sub.map_or("active", |s| status_name(s.status)),
            "current_period": period_json(&period),
            "pending_plan": sub.and_then(|s| s.pending_plan.clone()),
            "prorations": sub.map_or_else(Vec::new, |s| s.prorations.iter().map(proration_json).collect()),
        }))
    }

    /// GET /user/{user}/subscription: the subscription (null when none: the tenant's
    /// `free` plan on calendar months), its plan and limits.
    pub async fn get_subscription_view(
        &self,
        caller: &Caller,
        user: &UserId,
    ) -> Result<Value, ApiError> {
        let now = self.now();
        let sub = self.store.get_subscription(&caller.tenant, user).await?;
        let plan = self.plan_of(&caller.tenant, sub.as_ref()).await?;
        self.subscription_view(user, sub.as_ref(), &plan, now)
    }

    /// PUT /user/{user}/subscription: create or change (see the module docs). A write that
    /// loses a version race is re-read and re-applied, up to [`WRITE_ATTEMPTS`] times,
    /// then answers 409 `conflict`.
    pub async fn put_subscription(
        &self,
        caller: &Caller,
        user: &UserId,
        input: &SubscriptionInput,
    ) -> Result<Value, ApiError> {
        let tenant = &caller.tenant;
        let plans = self.plans(tenant).await?;
        for _ in 0..WRITE_ATTEMPTS {
            let now = self.now();
            let state = self
                .store
                .get_user_usage(tenant, user, &|s| period_start_at(s, now))
                .await?;
            let old = state.subscription.as_ref();
            let (sub, kind) = apply_change(tenant, user, old, input, &plans, now)?;
            match self
                .store
                .put_subscription(&sub, old.map(|s| s.version))
                .await
            {
                Ok(()) => {}
                Err(StoreError::VersionConflict) => continue,
                Err(e) => return Err(e.into()),
            }
            let plan = self.plan_of(tenant, Some(&sub)).await?;
            let mut rearmed = Vec::new();
            if kind.changes_limits() {
                let period = period_at(Some(&sub), now)?;
                let cost = recorded_amount(&Metric::CostUsd, &state.usage);
                let projected = projected_cost(cost, &period, now);
                rearmed = rearm_keys(&state.fired_alerts, &plan, &state.usage, projected);
                if !rearmed.is_empty() {
                    self.store
                        .rearm_alerts(tenant, user, period.start, &rearmed)
                        .await?;
                }
            }
            tracing::info!(tenant = %tenant, user = %user, change = kind.name(), plan = %sub.plan, "subscription written");
            let mut view = self.subscription_view(user, Some(&sub), &plan, now)?;
            if let Value::Object(m) = &mut view {
                m.insert("change".into(), json!(kind.name()));
                m.insert("rearmed_alerts".into(), json!(rearmed));
            }
            return Ok(view);
        }
        Err(ApiError::Conflict("the subscription"))
    }

    /// PUT /plans/{name}: inserts or replaces one of the tenant's plans.
    pub async fn put_plan(&self, caller: &Caller, plan: &Plan) -> Result<Value, ApiError> {
        let existed = self
            .store
            .get_plan(&caller.tenant, &plan.name)
            .await?
            .is_some();
        self.store.put_plan(&caller.tenant, plan).await?;
        self.forget_plans(&caller.tenant);
        Ok(json!({ "plan": plan_json(plan), "created": !existed }))
    }

    /// PUT /pricing: adds the tenant's own price versions (replacing any of the same id),
    /// after checking that they build a catalog with the tenant's other versions and merge
    /// over the shared catalog.
    pub async fn put_prices(
        &self,
        caller: &Caller,
        versions: Vec<PriceVersion>,
    ) -> Result<Value, ApiError> {
        let tenant = &caller.tenant;
        let new_ids: BTreeSet<&str> = versions.iter().map(|v| v.id.as_str()).collect();
        if new_ids.len() != versions.len() {
            return Err(ApiError::invalid(
                "versions",
                "duplicate_id",
                "a version id appears twice in this request",
            ));
        }
        let mut own: Vec<PriceVersion> = Vec::new();
        for raw in self.store.list_price_versions(Some(tenant)).await? {
            match serde_json::from_value::<PriceVersion>(raw) {
                Ok(v) if !new_ids.contains(v.id.as_str()) => own.push(v),
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %e, "skipping a stored price version that does not parse")
                }
            }
        }
        own.extend(versions.iter().cloned());
        let shared = self.stored_catalog(None).await?;
        Catalog::from_versions(own)
            .and_then(|c| c.merged_over(&shared))
            .map_err(|e| {
                ApiError::Invalid(vec![FieldError::new(
                    "versions",
                    catalog_error_code(&e),
                    e.to_string(),
                )])
            })?;
        for v in &versions {
            let json = serde_json::to_value(v).map_err(|e| {
                tracing::error!(error = %e, "a price version does not serialize");
                ApiError::Internal
            })?;
            self.store
                .put_price_version(Some(tenant), &v.id, &json)
                .await?;
        }
        self.forget_catalog(Some(tenant));
        Ok(json!({
            "added": versions.len(),
            "ids": versions.iter().map(|v| v.id.clone()).collect::<Vec<_>>(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;

    use super::*;
    use crate::domain::ProviderId;
    use crate::limits::default_plans;
    use crate::periods::Anchor;
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

    fn input(plan: &str) -> SubscriptionInput {
        SubscriptionInput {
            plan: Some(PlanName::parse(plan).unwrap()),
            billing_cycle: None,
            anchor: None,
            status: None,
            auto_renew: None,
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
