//! POST /check and reservation release.

use chrono::Duration;
use rust_decimal::Decimal;
use serde_json::{json, Value};

use super::{period_at, period_start_at, Caller, Meter};
use crate::domain::{Reservation, ReservationStatus};
use crate::http::wire::CheckInput;
use crate::http::ApiError;
use crate::limits::{self, CheckRequest, Decision, Limits, Metric, Plan, Violation};
use crate::periods::Period;
use crate::pricing::{LookupError, PriceOutcome, PricingError};
use crate::store::{Guard, ReleaseOutcome, ReserveOutcome};
use crate::usage::{PeriodUsage, Tally};

/// A JSON value for an amount of `metric`: a number for counts, an exact string for money.
pub fn amount_json(metric: &Metric, amount: Decimal) -> Value {
    if metric.is_count() {
        amount
            .normalize()
            .to_string()
            .parse::<u64>()
            .map_or_else(|_| json!(amount.to_string()), |n| json!(n))
    } else {
        json!(amount.normalize().to_string())
    }
}

/// `{metric: value}` with counts as numbers and money as strings.
pub fn metric_map(values: &std::collections::BTreeMap<Metric, Decimal>) -> Value {
    Value::Object(
        values
            .iter()
            .map(|(m, v)| (m.to_string(), amount_json(m, *v)))
            .collect(),
    )
}

/// `{metric: percentage}` as JSON numbers with two decimals.
pub fn percentage_map(values: &std::collections::BTreeMap<Metric, Decimal>) -> Value {
    use rust_decimal::prelude::ToPrimitive as _;
    Value::Object(
        values
            .iter()
            .map(|(m, v)| (m.to_string(), json!(v.round_dp(2).to_f64().unwrap_or(0.0))))
            .collect(),
    )
}

/// The guards a reservation must pass atomically: one per limited metric that applies to
/// the call, mirroring the decision rules (SPEC §5).
pub fn guards_for(limits: &Limits, req: &CheckRequest) -> Vec<Guard> {
    let tokens = Decimal::from(req.estimated_tokens);
    limits
        .0
        .iter()
        .filter_map(|(metric, limit)| {
            let (increment, strict) = match metric {
                Metric::Calls(Some(p)) | Metric::Tokens(Some(p)) if p != &req.provider => {
                    return None
                }
                Metric::Calls(_) => (Decimal::ONE, false),
                Metric::Tokens(_) => (tokens, false),
                Metric::CostUsd => match req.estimated_cost {
                    Some(c) if c > Decimal::ZERO => (c, false),
                    _ => (Decimal::ZERO, true),
                },
            };
            Some(Guard {
                metric: metric.clone(),
                increment,
                limit: *limit,
                strict,
            })
        })
        .collect()
}

fn limit_exceeded(
    v: &Violation,
    period: &Period,
    upgrade_to: Option<&Plan>,
    now: chrono::DateTime<chrono::Utc>,
) -> ApiError {
    let retry_after_seconds = (period.end - now).num_seconds().max(1) as u64;
    ApiError::LimitExceeded {
        metric: v.metric.to_string(),
        details: json!({
            "metric": v.metric.to_string(),
            "used": amount_json(&v.metric, v.used),
            "limit": amount_json(&v.metric, v.limit),
            "requested": amount_json(&v.metric, v.requested),
            "period_resets_at": period.end,
            "upgrade_to": upgrade_to.map(|p| p.name.to_string()),
        }),
        retry_after_seconds,
    }
}

impl Meter {
    /// Prices the estimate of a check; `(provider, estimated cost or None)`.
    async fn estimate(
        &self,
        caller: &Caller,
        input: &CheckInput,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(crate::domain::ProviderId, Option<Decimal>), ApiError> {
        let catalog = self.catalog(&caller.tenant).await?;
        let counts = input.estimated_counts();
        match catalog.price(input.provider.as_ref(), input.model.as_ref(), now, &counts) {
            Ok(PriceOutcome::Priced {
                cost_usd, provider, ..
            }) => {
                let nothing_estimated = counts == Default::default();
                Ok((
                    provider,
                    if nothing_estimated {
                        None
                    } else {
                        Some(cost_usd)
                    },
                ))
            }
            Ok(PriceOutcome::Unpriced { provider, .. }) => Ok((provider, None)),
            Err(PricingError::Lookup(LookupError::Unpriced { provider, .. })) => {
                Ok((provider, None))
            }
            Err(e @ PricingError::Lookup(_)) => {
                Err(ApiError::invalid("model", e.code(), e.to_string()))
            }
            Err(e) => Err(ApiError::invalid(
                "estimated_input_tokens",
                e.code(),
                e.to_string(),
            )),
        }
    }

    /// Decides whether the user may make the call now, optionally holding its estimate.
    #[tracing::instrument(skip_all, fields(tenant = %caller.tenant, user = %input.user, reserve = input.reserve))]
    pub async fn check(&self, caller: &Caller, input: CheckInput) -> Result<Value, ApiError> {
        let now = self.now();
        let tenant = &caller.tenant;
        let state = self
            .store
            .get_user_usage(tenant, &input.user, &|sub| period_start_at(sub, now))
            .await?;
        let sub = state.subscription.as_ref();
        if let Some(s) = sub {
            if !s.status.is_active() {
                return Err(ApiError::SubscriptionInactive {
                    status: status_name(s.status),
                });
            }
        }
        let period = period_at(sub, now)?;
        let plan = self.plan_of(tenant, sub).await?;
        let (provider, estimated_cost) = self.estimate(caller, &input, now).await?;
        let estimated_tokens = input
            .estimated_input_tokens
            .checked_add(input.estimated_output_tokens)
            .ok_or_else(|| {
                ApiError::invalid(
                    "estimated_output_tokens",
                    "overflow",
                    "estimated tokens overflow",
                )
            })?;
        let req = CheckRequest {
            provider: provider.clone(),
            estimated_tokens,
            estimated_cost,
        };

        let mut usage = state.usage;
        if let Decision::Denied(v) = limits::decide(&plan.limits, &usage, &req).map_err(overflow)? {
            return Err(self
                .denial(tenant, &plan, &usage, &req, &v, &period, now)
                .await?);
        }

        let mut reservation_json = json!({});
        if input.reserve {
            let held = Tally {
                calls: 1,
                tokens: estimated_tokens,
                cost_usd: estimated_cost.unwrap_or_default(),
            };
            let reservation = Reservation {
                id: Reservation::new_id(&input.user),
                tenant: tenant.clone(),
                user: input.user.clone(),
                provider: provider.clone(),
                period_start: period.start,
                held: held.clone(),
                status: ReservationStatus::Held,
                created_at: now,
                expires_at: now + Duration::seconds(input.reservation_ttl_seconds as i64),
            };
            let outcome = {
                let _gate = self.gate(tenant, &input.user).await;
                self.store
                    .reserve(&reservation, &guards_for(&plan.limits, &req))
                    .await?
            };
            match outcome {
                ReserveOutcome::Reserved => {
                    let entry = usage.by_provider.entry(provider.clone()).or_default();
                    entry.held = add_tally(&entry.held, &held);
                    reservation_json = json!({ "reservation_id": reservation.id, "expires_at": reservation.expires_at });
                }
                ReserveOutcome::Denied { .. } => {
                    // Lost a race for the last units: decide again on fresh counters.
                    let fresh = self
                        .store
                        .get_period_usage(tenant, &input.user, &[period.start])
                        .await?
                        .into_iter()
                        .next()
                        .unwrap_or_default();
                    let v = match limits::decide(&plan.limits, &fresh, &req).map_err(overflow)? {
                        Decision::Denied(v) => v,
                        Decision::Allowed => return Err(ApiError::Unavailable),
                    };
                    return Err(self
                        .denial(tenant, &plan, &fresh, &req, &v, &period, now)
                        .await?);
                }
            }
        }

        let mut body = json!({
            "allowed": true,
            "user_id": input.user,
            "provider": provider,
            "plan": plan.name,
            "period": { "start": period.start, "end": period.end },
            "estimated_cost_usd": estimated_cost.map(|c| c.normalize().to_string()),
            "usage_status": limits::usage_status(&plan.limits, &usage),
            "remaining": metric_map(&limits::remaining(&plan.limits, &usage)),
            "usage_percentages": percentage_map(&limits::percentages(&plan.limits, &usage)),
        });
        if let (Value::Object(b), Value::Object(r)) = (&mut body, reservation_json) {
            b.extend(r);
        }
        Ok(body)
    }

    #[allow(clippy::too_many_arguments)]
    async fn denial(
        &self,
        tenant: &crate::domain::TenantId,
        plan: &Plan,
        usage: &PeriodUsage,
        req: &CheckRequest,
        v: &Violation,
        period: &Period,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<ApiError, ApiError> {
        let plans = self.plans(tenant).await?;
        let upgrade = limits::cheapest_plan_allowing(&plans, &plan.name, usage, req);
        Ok(limit_exceeded(v, period, upgrade, now))
    }

    /// Frees a held reservation; idempotent. Another tenant's id answers 404.
    #[tracing::instrument(skip_all, fields(tenant = %caller.tenant))]
    pub async fn release(&self, caller: &Caller, id: &str) -> Result<Value, ApiError> {
        let Some(user) = Reservation::user_of_id(id) else {
            return Err(ApiError::NotFound("reservation"));
        };
        let outcome = {
            let _gate = self.gate(&caller.tenant, &user).await;
            self.store.release_reservation(&caller.tenant, id).await?
        };
        let status = match outcome {
            ReleaseOutcome::Released => "released",
            ReleaseOutcome::AlreadyClosed(s) => reservation_status_name(s),
            ReleaseOutcome::NotFound => return Err(ApiError::NotFound("reservation")),
        };
        Ok(json!({ "reservation_id": id, "status": status }))
    }
}

fn overflow(e: impl std::fmt::Display) -> ApiError {
    ApiError::invalid("", "overflow", e.to_string())
}

fn add_tally(a: &Tally, b: &Tally) -> Tally {
    Tally {
        calls: a.calls.saturating_add(b.calls),
        tokens: a.tokens.saturating_add(b.tokens),
        cost_usd: a.cost_usd.checked_add(b.cost_usd).unwrap_or(a.cost_usd),
    }
}

pub fn status_name(s: crate::domain::SubscriptionStatus) -> &'static str {
    use crate::domain::SubscriptionStatus::*;
    match s {
        Active => "active",
        PastDue => "past_due",
        Suspended => "suspended",
        Cancelled => "cancelled",
    }
}

pub fn reservation_status_name(s: ReservationStatus) -> &'static str {
    match s {
        ReservationStatus::Held => "held",
        ReservationStatus::Settled => "settled",
        ReservationStatus::Released => "released",
        ReservationStatus::Expired => "expired",
    }
}
