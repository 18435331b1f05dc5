//! Enforcing hard budgets (§10): the check over the user's plan and every hard budget of
//! the scopes a call names, and what ingest adds to budget counters.
//!
//! The check goes through here only when a budget may apply (the call names an org, or
//! the user's own scope holds budgets); otherwise the plan alone decides, as before, and
//! its answer is unchanged. Rate-limit windows (`minute`, `hour`) count an allowed
//! check's call at once, with a guarded write of every such counter (all or none); an
//! event does not count its call there again.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};

use super::check::{add_tally, CheckAllowed, CheckOutcome, CheckRequest, Denial, Hold};
use super::{Error, Meter, Result};
use crate::budgets::{
    budget_limits, check_call_writes, decide_all, event_writes, Applicable, Budget, CallScopes,
    CounterKey, CounterWrite, LimitSource, LimitState, LimitedBy, Mode, Scope, Verdict, Window,
};
use crate::domain::{
    ProviderId, Reservation, ReservationStatus, Subscription, TenantId, UsageEvent,
};
use crate::limits::{self, guards_for, CallEstimate, MetricAmounts, Percentages, Plan};
use crate::periods::{Period, Schedule};
use crate::store::ReserveOutcome;
use crate::subscriptions::schedule_of;
use crate::usage::{PeriodUsage, Tally};

/// How often a check retries when racing checks took a rate limit's last calls between
/// its read and its write.
const MAX_RACES: usize = 4;

/// The scopes named on a check (validated at the edge: a team comes with its org).
pub(super) fn call_scopes(req: &CheckRequest) -> Result<CallScopes> {
    CallScopes::new(req.user.clone(), req.org_id.clone(), req.team_id.clone())
        .map_err(|e| Error::invalid(e.field(), e.code(), e.to_string()))
}

/// What the plan-only check computed, handed over when budgets apply.
pub(super) struct PlanCheck<'a> {
    pub plan: &'a Plan,
    pub period: Period,
    pub usage: PeriodUsage,
    pub provider: ProviderId,
    pub estimated_cost: Option<rust_decimal::Decimal>,
    pub call: CallEstimate,
    /// Issue 19: the credit a reservation holds on a prepaid plan (service::prepaid).
    pub credit: Option<crate::store::CreditHold>,
}

impl Meter {
    /// The budgets on the scopes `call` names, each in its window at `at` (the user's own
    /// scope only when `user_budgets`). `period` windows follow the user's schedule on a
    /// user scope, calendar months on org and team scopes (org subscriptions are not
    /// supported yet).
    pub(super) async fn budgets_of_call(
        &self,
        tenant: &TenantId,
        call: &CallScopes,
        sub: Option<&Subscription>,
        user_budgets: bool,
        at: DateTime<Utc>,
    ) -> Result<Vec<Applicable>> {
        let mut budgets: Vec<Budget> = Vec::new();
        for scope in call.scopes() {
            if matches!(scope, Scope::User { .. }) && !user_budgets {
                continue;
            }
            budgets.extend(self.store.list_budgets(tenant, &scope).await?);
        }
        if budgets.is_empty() {
            return Ok(Vec::new());
        }
        budget_limits(&budgets, call, &schedule_of(sub), &Schedule::calendar(), at)
            .map_err(|e| Error::invalid("timestamp", "out_of_range", e.to_string()))
    }

    /// Every hard limit of the check with the usage of its counter: the user's plan over
    /// `plan_usage`, the budgets over their counters (a `period` budget on the user's own
    /// scope counts the plan's usage).
    async fn limit_states(
        &self,
        tenant: &TenantId,
        pc: &PlanCheck<'_>,
        user: &Scope,
        plan_usage: &PeriodUsage,
        budgets: &[Applicable],
    ) -> Result<Vec<LimitState>> {
        let plan_counter = CounterKey::Scope {
            scope: user.clone(),
            window: Window::Period,
            window_start: pc.period.start,
        };
        let mut states = vec![LimitState {
            source: LimitSource::Plan {
                scope: user.clone(),
                plan: pc.plan.name.clone(),
            },
            window: Window::Period,
            period: pc.period,
            limits: pc.plan.limits.clone(),
            mode: Mode::Hard,
            counter: plan_counter.clone(),
            usage: plan_usage.clone(),
        }];
        let keys: Vec<CounterKey> = budgets
            .iter()
            .map(|b| b.counter.clone())
            .filter(|c| c != &plan_counter)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let read = self.store.get_budget_counters(tenant, &keys).await?;
        let by_key: BTreeMap<&CounterKey, PeriodUsage> = keys.iter().zip(read).collect();
        for b in budgets {
            let usage = if b.counter == plan_counter {
                plan_usage.clone()
            } else {
                by_key.get(&b.counter).cloned().unwrap_or_default()
            };
            states.push(b.clone().with_usage(usage));
        }
        Ok(states)
    }

    /// The check when budgets apply: every hard limit decides ([`decide_all`]); an
    /// allowed call counts at once in its rate-limit windows and, with `reserve`, holds
    /// its estimate on the user's plan counters.
    pub(super) async fn check_with_budgets(
        &self,
        tenant: &TenantId,
        req: CheckRequest,
        pc: PlanCheck<'_>,
        budgets: Vec<Applicable>,
        now: DateTime<Utc>,
    ) -> Result<CheckOutcome> {
        let user = Scope::User {
            user_id: req.user.clone(),
        };
        let mut plan_usage = pc.usage.clone();
        let mut attempt = 0;
        let headroom = loop {
            let states = self
                .limit_states(tenant, &pc, &user, &plan_usage, &budgets)
                .await?;
            match decide_all(&states, &pc.call).map_err(Error::overflow)? {
                Verdict::Denied(d) => {
                    return self.budget_denial(tenant, &pc, &plan_usage, d, now).await
                }
                Verdict::Allowed(h) => {
                    let writes = check_call_writes(&states, &pc.call);
                    if self
                        .store
                        .add_to_budget_counters(tenant, &writes, now)
                        .await?
                    {
                        break h;
                    }
                }
            }
            // Racing checks took the last calls of a rate limit: decide on fresh counters.
            attempt += 1;
            if attempt >= MAX_RACES {
                return Err(Error::Unavailable);
            }
        };

        let mut reservation = None;
        if req.reserve {
            let held = Tally {
                calls: 1,
                tokens: pc.call.estimated_tokens,
                cost_usd: pc.estimated_cost.unwrap_or_default(),
            };
            let r = Reservation {
                id: Reservation::new_id(&req.user),
                tenant: tenant.clone(),
                user: req.user.clone(),
                provider: pc.provider.clone(),
                period_start: pc.period.start,
                held: held.clone(),
                status: ReservationStatus::Held,
                created_at: now,
                expires_at: now + Duration::seconds(req.reservation_ttl_seconds as i64),
            };
            let outcome = {
                let _gate = self.gate(tenant, &req.user).await;
                let guards = guards_for(&pc.plan.limits, &pc.call);
                match self
                    .reserve_call(&r, &guards, pc.credit.as_ref(), &pc.period)
                    .await?
                {
                    super::prepaid::Reserved::Store(o) => o,
                    super::prepaid::Reserved::NoCredit(d) => return Ok(CheckOutcome::Denied(*d)),
                }
            };
            match outcome {
                ReserveOutcome::Reserved => {
                    let entry = plan_usage
                        .by_provider
                        .entry(pc.provider.clone())
                        .or_default();
                    entry.held = add_tally(&entry.held, &held);
                    reservation = Some(Hold {
                        reservation_id: r.id,
                        expires_at: r.expires_at,
                    });
                }
                ReserveOutcome::Denied { .. } => {
                    // Lost a race for the plan's last units: decide again on fresh counters.
                    let fresh = self
                        .store
                        .get_period_usage(tenant, &req.user, &[pc.period.start])
                        .await?
                        .into_iter()
                        .next()
                        .unwrap_or_default();
                    let states = self
                        .limit_states(tenant, &pc, &user, &fresh, &budgets)
                        .await?;
                    return match decide_all(&states, &pc.call).map_err(Error::overflow)? {
                        Verdict::Denied(d) => self.budget_denial(tenant, &pc, &fresh, d, now).await,
                        Verdict::Allowed(_) => Err(Error::Unavailable),
                    };
                }
            }
        }
        // The answer's figures, with the hold included.
        let headroom = match reservation {
            Some(_) => {
                let states = self
                    .limit_states(tenant, &pc, &user, &plan_usage, &budgets)
                    .await?;
                match decide_all(&states, &pc.call).map_err(Error::overflow)? {
                    Verdict::Allowed(h) => h,
                    Verdict::Denied(_) => headroom,
                }
            }
            None => headroom,
        };
        Ok(CheckOutcome::Allowed(CheckAllowed {
            allowed: true,
            user_id: req.user,
            provider: pc.provider,
            plan: pc.plan.name.clone(),
            period: pc.period,
            estimated_cost_usd: pc.estimated_cost,
            usage_status: headroom.usage_status,
            remaining: MetricAmounts(headroom.remaining.0),
            usage_percentages: Percentages(headroom.usage_percentages.0),
            limited_by: Some(headroom.limited_by),
            reservation,
        }))
    }

    /// The denial of a limit over budgets; `upgrade_to` only when the user's plan denies.
    async fn budget_denial(
        &self,
        tenant: &TenantId,
        pc: &PlanCheck<'_>,
        plan_usage: &PeriodUsage,
        d: crate::budgets::Denial,
        now: DateTime<Utc>,
    ) -> Result<CheckOutcome> {
        let upgrade_to = match &d.source {
            LimitSource::Plan { .. } => {
                let plans = self.plans(tenant).await?;
                limits::cheapest_plan_allowing(&plans, &pc.plan.name, plan_usage, &pc.call)
                    .map(|p| p.name.clone())
            }
            LimitSource::Budget { .. } => None,
        };
        Ok(CheckOutcome::Denied(Denial {
            metric: d.metric,
            used: d.used,
            limit: d.limit,
            requested: d.requested,
            period_resets_at: d.resets_at,
            upgrade_to,
            retry_after_seconds: (d.resets_at - now).num_seconds().max(1) as u64,
            limited_by: Some(LimitedBy {
                source: d.source,
                window: d.window,
            }),
            credit: None,
        }))
    }

    /// What each event of one user's batch adds to its budget counters (`writes[i]` for
    /// `events[i]`); all empty when no budget applies.
    pub(super) async fn ingest_writes(
        &self,
        tenant: &TenantId,
        events: &[UsageEvent],
        sub: Option<&Subscription>,
        user_budgets: bool,
    ) -> Result<Vec<Vec<CounterWrite>>> {
        let mut out = Vec::with_capacity(events.len());
        let mut listed: BTreeMap<Scope, Vec<Budget>> = BTreeMap::new();
        for e in events {
            let call = CallScopes::new(e.user.clone(), e.org_id.clone(), e.team_id.clone())
                .map_err(|err| Error::invalid(err.field(), err.code(), err.to_string()))?;
            let mut budgets = Vec::new();
            for scope in call.scopes() {
                if matches!(scope, Scope::User { .. }) && !user_budgets {
                    continue;
                }
                if !listed.contains_key(&scope) {
                    let found = self.store.list_budgets(tenant, &scope).await?;
                    listed.insert(scope.clone(), found);
                }
                budgets.extend(listed[&scope].iter().cloned());
            }
            if budgets.is_empty() {
                out.push(Vec::new());
                continue;
            }
            let limits = budget_limits(
                &budgets,
                &call,
                &schedule_of(sub),
                &Schedule::calendar(),
                e.timestamp,
            )
            .map_err(|err| Error::invalid("timestamp", "out_of_range", err.to_string()))?;
            out.push(event_writes(&limits, &e.provider, &e.tally()));
        }
        Ok(out)
    }
}
