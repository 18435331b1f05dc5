//! The check before a paid call, and the release of a reservation.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;

use super::holds::HoldOutcome;
use super::{period_at, Caller, Error, Meter, Result};
use crate::budgets::LimitedBy;
use crate::domain::{
    ModelId, OrgId, PlanName, ProviderId, Reservation, ReservationStatus, TeamId, UserId,
};
use crate::limits::{
    self, guards_for, CallEstimate, Decision, Metric, MetricAmounts, Percentages, Plan,
    UsageStatus, Violation,
};
use crate::periods::Period;
use crate::pricing::{LookupError, PriceOutcome, PricingError};
use crate::store::ReleaseOutcome;
use crate::usage::{PeriodUsage, Tally, UsageCounts};

/// Billable units of a call other than tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Units {
    pub requests: u64,
    pub searches: u64,
    pub images: u64,
    pub pages: u64,
}

/// "May this user make this call now?" — optionally holding its estimate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRequest {
    pub user: UserId,
    /// The org and team the call is made within (§10); a team only with its org.
    pub org_id: Option<OrgId>,
    pub team_id: Option<TeamId>,
    pub provider: Option<ProviderId>,
    pub model: Option<ModelId>,
    pub estimated_input_tokens: u64,
    pub estimated_output_tokens: u64,
    pub units: Units,
    pub reserve: bool,
    pub reservation_ttl_seconds: u64,
}

impl CheckRequest {
    /// The counts a quote of this check's estimate prices.
    pub fn estimated_counts(&self) -> UsageCounts {
        UsageCounts {
            input_tokens: self.estimated_input_tokens,
            output_tokens: self.estimated_output_tokens,
            requests: self.units.requests,
            searches: self.units.searches,
            images: self.units.images,
            pages: self.units.pages,
            ..UsageCounts::default()
        }
    }
}

/// The answer to a check.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckOutcome {
    Allowed(CheckAllowed),
    /// A limit would be exceeded: an expected answer, not an error.
    Denied(Denial),
}

/// A held reservation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hold {
    pub reservation_id: String,
    pub expires_at: DateTime<Utc>,
}

/// An allowed call: the plan, the period and what is left of each limit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckAllowed {
    pub allowed: bool,
    pub user_id: UserId,
    pub provider: ProviderId,
    pub plan: PlanName,
    pub period: Period,
    #[serde(serialize_with = "crate::domain::money::normalized_option")]
    pub estimated_cost_usd: Option<Decimal>,
    pub usage_status: UsageStatus,
    pub remaining: MetricAmounts,
    pub usage_percentages: Percentages,
    /// Per metric, the limit `remaining` comes from (scope and plan or budget, window);
    /// only when a budget applies to the call (a plan-only answer is unchanged).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limited_by: Option<BTreeMap<Metric, LimitedBy>>,
    #[serde(flatten)]
    pub reservation: Option<Hold>,
}

/// The limit a call would break, and when it resets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub metric: Metric,
    /// Usage so far (recorded + held).
    pub used: Decimal,
    pub limit: Decimal,
    /// What the call adds.
    pub requested: Decimal,
    pub period_resets_at: DateTime<Utc>,
    /// The cheapest plan that would allow the call.
    pub upgrade_to: Option<PlanName>,
    /// Seconds until the period resets (at least 1).
    pub retry_after_seconds: u64,
    /// The denying limit's scope, plan or budget, and window: only when a budget applies
    /// to the call (a plan-only denial is unchanged).
    pub limited_by: Option<LimitedBy>,
    /// Issue 19: a prepaid plan's wallet did not cover the estimate (metric
    /// `credits_usd`; `metric`, `used` = held, `limit` = balance are then the wallet's).
    pub credit: Option<super::prepaid::CreditDenial>,
}

/// What a release did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReleaseReport {
    pub reservation_id: String,
    pub status: ReservationStatus,
}

fn denial(v: &Violation, period: &Period, upgrade_to: Option<&Plan>, now: DateTime<Utc>) -> Denial {
    Denial {
        metric: v.metric.clone(),
        used: v.used,
        limit: v.limit,
        requested: v.requested,
        period_resets_at: period.end,
        upgrade_to: upgrade_to.map(|p| p.name.clone()),
        retry_after_seconds: (period.end - now).num_seconds().max(1) as u64,
        limited_by: None,
        credit: None,
    }
}

impl Meter {
    /// Prices the estimate of a check; `(provider, estimated cost or None)`.
    async fn estimate(
        &self,
        caller: &Caller,
        req: &CheckRequest,
        now: DateTime<Utc>,
    ) -> Result<(ProviderId, Option<Decimal>)> {
        let catalog = self.catalog(&caller.tenant).await?;
        let counts = req.estimated_counts();
        match catalog.price(req.provider.as_ref(), req.model.as_ref(), now, &counts) {
            Ok(PriceOutcome::Priced {
                cost_usd, provider, ..
            }) => {
                let nothing_estimated = counts == Default::default();
                Ok((provider, (!nothing_estimated).then_some(cost_usd)))
            }
            Ok(PriceOutcome::Unpriced { provider, .. }) => Ok((provider, None)),
            Err(PricingError::Lookup(LookupError::Unpriced { provider, .. })) => {
                Ok((provider, None))
            }
            Err(e @ PricingError::Lookup(_)) => {
                Err(Error::invalid("model", e.code(), e.to_string()))
            }
            Err(e) => Err(Error::invalid(
                "estimated_input_tokens",
                e.code(),
                e.to_string(),
            )),
        }
    }

    /// Decides whether the user may make the call now, optionally holding its estimate.
    #[tracing::instrument(skip_all, fields(tenant = %caller.tenant, user = %req.user, reserve = req.reserve))]
    pub async fn check(&self, caller: &Caller, req: CheckRequest) -> Result<CheckOutcome> {
        let now = self.now();
        let outcome = self.decide_check(caller, req, now).await?;
        // Issue 18 (§10): a wallet that denies with nothing available is remembered, so that
        // a top-up publishes `alert.resolved` (service::credit_resolved).
        if let CheckOutcome::Denied(d) = &outcome {
            if let Some(credit) = &d.credit {
                self.note_credit_denial(&caller.tenant, credit, now).await;
            }
        }
        Ok(outcome)
    }

    async fn decide_check(
        &self,
        caller: &Caller,
        req: CheckRequest,
        now: DateTime<Utc>,
    ) -> Result<CheckOutcome> {
        let tenant = &caller.tenant;
        // Issue 19: with the wallet figures when the tenant sells prepaid plans (one read;
        // the named org's wallet too: service::org_wallets). Issue 18: a call naming an org
        // reads its budgets with them (service::check_view).
        let (state, credit, org_credit, view) = self.check_read_scoped(tenant, &req, now).await?;
        let sub = state.subscription.as_ref();
        if let Some(s) = sub {
            if !s.status.is_active() {
                return Err(Error::SubscriptionInactive { status: s.status });
            }
        }
        let period = period_at(sub, now)?;
        let plan = self.plan_of(tenant, sub).await?;
        let (provider, estimated_cost) = self.estimate(caller, &req, now).await?;
        let estimated_tokens = req
            .estimated_input_tokens
            .checked_add(req.estimated_output_tokens)
            .ok_or_else(|| {
                Error::invalid(
                    "estimated_output_tokens",
                    "overflow",
                    "estimated tokens overflow",
                )
            })?;
        let call = CallEstimate {
            provider: provider.clone(),
            estimated_tokens,
            estimated_cost,
        };
        // Issue 19: a prepaid plan needs credit for the estimate (service::prepaid); a user
        // without a subscription naming an org may be on the org's plan, paid from the
        // org's wallet: decided with the org's plan below (service::org_wallets).
        let naming_org = sub.is_none() && req.org_id.is_some();
        let wallets = naming_org.then(|| (credit.clone(), org_credit));
        let me = crate::credits::Subscriber::User(req.user.clone());
        let mut credit = match naming_org {
            true => None,
            false => match Self::credit_gate(&plan, credit, estimated_cost, &me, &period, now)? {
                Ok(hold) => hold,
                Err(denial) => return Ok(CheckOutcome::Denied(*denial)),
            },
        };

        // Issue 18: when budgets may apply, every hard limit decides (service::enforce).
        if req.org_id.is_some() || state.user_budgets {
            let scopes = super::enforce::call_scopes(&req)?;
            let (budgets, counters) = self.limits_of_call(tenant, &scopes, sub, view, now).await?;
            if let Some(wallets) = wallets {
                credit = match self
                    .credit_gate_naming_org(
                        tenant,
                        &req.user,
                        &plan,
                        &budgets,
                        wallets,
                        estimated_cost,
                        &period,
                        now,
                    )
                    .await?
                {
                    Ok(hold) => hold,
                    Err(denial) => return Ok(CheckOutcome::Denied(*denial)),
                };
            }
            if !budgets.is_empty() {
                let pc = super::enforce::PlanCheck {
                    plan: &plan,
                    period,
                    usage: state.usage.clone(),
                    provider,
                    estimated_cost,
                    call,
                    user_subscribed: sub.is_some(),
                    credit,
                    counters,
                };
                return self.check_with_budgets(tenant, req, pc, budgets, now).await;
            }
        }

        let mut usage = state.usage;
        if let Decision::Denied(v) =
            limits::decide(&plan.limits, &usage, &call).map_err(Error::overflow)?
        {
            // Issue 18: `alert.resolved` remembers a denial at 100 % (service::alert_resolved).
            self.note_plan_denial(
                tenant, &req.user, &plan.name, &v.metric, v.used, v.limit, &period, now,
            )
            .await;
            return self
                .denied(tenant, &plan, &usage, &call, &v, &period, now)
                .await;
        }

        let mut reservation = None;
        if req.reserve {
            match self
                .hold_call(
                    tenant,
                    &req,
                    &period,
                    &call,
                    &guards_for(&plan.limits, &call),
                    &[],
                    credit.as_ref(),
                    now,
                )
                .await?
            {
                HoldOutcome::Held(hold) => {
                    super::holds::add_held(&mut usage, &provider, &super::holds::held_of(&call));
                    reservation = Some(hold);
                }
                HoldOutcome::NoCredit(d) => return Ok(CheckOutcome::Denied(*d)),
                HoldOutcome::Lost => {
                    // Lost a race for the last units: decide again on fresh counters.
                    let fresh = self
                        .store
                        .get_period_usage(tenant, &req.user, &[period.start])
                        .await?
                        .into_iter()
                        .next()
                        .unwrap_or_default();
                    let v = match limits::decide(&plan.limits, &fresh, &call)
                        .map_err(Error::overflow)?
                    {
                        Decision::Denied(v) => v,
                        Decision::Allowed => return Err(Error::Unavailable),
                    };
                    self.note_plan_denial(
                        tenant, &req.user, &plan.name, &v.metric, v.used, v.limit, &period, now,
                    )
                    .await;
                    return self
                        .denied(tenant, &plan, &fresh, &call, &v, &period, now)
                        .await;
                }
            }
        }

        Ok(CheckOutcome::Allowed(CheckAllowed {
            allowed: true,
            user_id: req.user,
            provider,
            plan: plan.name.clone(),
            period,
            estimated_cost_usd: estimated_cost,
            usage_status: limits::usage_status(&plan.limits, &usage),
            remaining: MetricAmounts(limits::remaining(&plan.limits, &usage)),
            usage_percentages: Percentages(limits::percentages(&plan.limits, &usage)),
            limited_by: None,
            reservation,
        }))
    }

    /// The denial of `call`, with the cheapest plan that would allow it.
    #[allow(clippy::too_many_arguments)]
    async fn denied(
        &self,
        tenant: &crate::domain::TenantId,
        plan: &Plan,
        usage: &PeriodUsage,
        call: &CallEstimate,
        v: &Violation,
        period: &Period,
        now: DateTime<Utc>,
    ) -> Result<CheckOutcome> {
        let plans = self.plans(tenant).await?;
        let upgrade = limits::cheapest_plan_allowing(&plans, &plan.name, usage, call);
        Ok(CheckOutcome::Denied(denial(v, period, upgrade, now)))
    }

    /// Frees a held reservation; idempotent. Another tenant's id is not found.
    #[tracing::instrument(skip_all, fields(tenant = %caller.tenant))]
    pub async fn release(&self, caller: &Caller, id: &str) -> Result<ReleaseReport> {
        let Some(user) = Reservation::user_of_id(id) else {
            return Err(Error::NotFound("reservation"));
        };
        let outcome = {
            let _gate = self.gate(&caller.tenant, &user).await;
            self.store.release_reservation(&caller.tenant, id).await?
        };
        let status = match outcome {
            ReleaseOutcome::Released => ReservationStatus::Released,
            ReleaseOutcome::AlreadyClosed(s) => s,
            ReleaseOutcome::NotFound => return Err(Error::NotFound("reservation")),
        };
        Ok(ReleaseReport {
            reservation_id: id.to_owned(),
            status,
        })
    }
}

pub(super) fn add_tally(a: &Tally, b: &Tally) -> Tally {
    Tally {
        calls: a.calls.saturating_add(b.calls),
        tokens: a.tokens.saturating_add(b.tokens),
        cost_usd: a.cost_usd.checked_add(b.cost_usd).unwrap_or(a.cost_usd),
    }
}
