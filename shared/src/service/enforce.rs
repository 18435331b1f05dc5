//! Enforcing hard budgets (§10): the check over the user's plan and every hard budget of
//! the scopes a call names, and what ingest adds to budget counters.
//!
//! The check goes through here only when a budget may apply (the call names an org, or
//! the user's own scope holds budgets); otherwise the plan alone decides, as before, and
//! its answer is unchanged. Rate-limit windows (`minute`, `hour`) count an allowed
//! check's call at once, with a guarded write of every such counter (all or none); an
//! event does not count its call there again. A reservation holds on every counter
//! (plan and budgets) in one atomic write (`service::holds`).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use super::check::{CheckAllowed, CheckOutcome, CheckRequest, Denial};
use super::holds::{held_of, plan_counter_guards, states_after_hold, HoldOutcome};
use super::{Error, Meter, Result};
use crate::budgets::{
    budget_limits, check_call_writes, decide_all, event_writes, headroom, reservation_writes,
    Applicable, Budget, CallScopes, CounterKey, CounterWrite, LimitSource, LimitState, LimitedBy,
    Mode, Scope, Verdict, Window,
};
use crate::domain::{OrgId, Payer, ProviderId, Subscription, TenantId, UsageEvent};
use crate::limits::{self, CallEstimate, MetricAmounts, Percentages, Plan};
use crate::periods::Period;
use crate::subscriptions::schedule_of;
use crate::usage::PeriodUsage;

/// The budgets of each scope an ingest request names, read once per request and shared
/// by its counter writes and its budget alerts.
pub(super) type ListedBudgets = BTreeMap<Scope, Vec<Budget>>;

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
    /// The user has a subscription of their own (without one, a subscribed org named on
    /// the call stands in for the Free plan).
    pub user_subscribed: bool,
    /// Issue 19: the credit a reservation holds on a prepaid plan (service::prepaid).
    pub credit: Option<crate::store::CreditHold>,
    /// Issue 18: the budget counters read with the user's state (service::check_view):
    /// the first decision's; a decision again after a lost race reads them afresh.
    pub counters: BTreeMap<CounterKey, PeriodUsage>,
}

impl Meter {
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
        read: &BTreeMap<CounterKey, PeriodUsage>,
    ) -> Result<Vec<LimitState>> {
        let plan_counter = CounterKey::Scope {
            scope: user.clone(),
            window: Window::Period,
            window_start: pc.period.start,
        };
        // A subscribed org stands in for the Free plan of a user without a subscription.
        let org_plan = budgets
            .iter()
            .any(|b| matches!(b.source, LimitSource::Plan { .. }));
        let user_plan_applies = pc.user_subscribed || !org_plan;
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
        if !user_plan_applies {
            states.clear();
        }
        let keys: Vec<CounterKey> = budgets
            .iter()
            .map(|b| b.counter.clone())
            .filter(|c| c != &plan_counter && !read.contains_key(c))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let fresh = match keys.is_empty() {
            true => Vec::new(),
            false => self.store.get_budget_counters(tenant, &keys).await?,
        };
        let mut by_key: BTreeMap<&CounterKey, PeriodUsage> = keys.iter().zip(fresh).collect();
        by_key.extend(read.iter().map(|(k, u)| (k, u.clone())));
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

    /// The check when budgets apply: every hard limit decides ([`decide_all`]). An
    /// allowed call counts at once in its rate-limit windows; with `reserve`, it holds its
    /// estimate on the user's plan counters and every budget counter instead, in the same
    /// one atomic write ([`reservation_writes`], [`Meter::hold_call`]). A write that loses
    /// a race for the last units decides again on fresh counters.
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
        let plan_counter = CounterKey::Scope {
            scope: user.clone(),
            window: Window::Period,
            window_start: pc.period.start,
        };
        let mut plan_usage = pc.usage.clone();
        let mut attempt = 0;
        let none_read = BTreeMap::new();
        let (headroom, reservation) = loop {
            let read = if attempt == 0 {
                &pc.counters
            } else {
                &none_read
            };
            let mut states = self
                .limit_states(tenant, &pc, &user, &plan_usage, &budgets, read)
                .await?;
            let h = match decide_all(&states, &pc.call).map_err(Error::overflow)? {
                Verdict::Denied(d) => {
                    // Issue 18: `alert.resolved` remembers a denial at 100 % (service::alert_resolved).
                    self.note_budget_denial(tenant, &req.user, &d, &budgets, now)
                        .await;
                    return self.budget_denial(tenant, &pc, &plan_usage, d, now).await;
                }
                Verdict::Allowed(h) => h,
            };
            if req.reserve {
                let held = held_of(&pc.call);
                let writes = reservation_writes(&states, &pc.call, &held);
                let plan_guards = plan_counter_guards(&states, &plan_counter, &pc.call);
                match self
                    .hold_call(
                        tenant,
                        &req,
                        &pc.period,
                        &pc.call,
                        &plan_guards,
                        &writes,
                        pc.credit.as_ref(),
                        now,
                    )
                    .await?
                {
                    HoldOutcome::Held(hold) => {
                        // The answer's figures, with the hold included.
                        states_after_hold(&mut states, &plan_counter, &writes, &pc.provider, &held);
                        break (headroom(&states), Some(hold));
                    }
                    HoldOutcome::NoCredit(d) => return Ok(CheckOutcome::Denied(*d)),
                    HoldOutcome::Lost => {}
                }
                // Lost a race for the last units of a limit: fresh plan usage too.
                plan_usage = self
                    .store
                    .get_period_usage(tenant, &req.user, &[pc.period.start])
                    .await?
                    .into_iter()
                    .next()
                    .unwrap_or_default();
            } else {
                let writes = check_call_writes(&states, &pc.call);
                if self
                    .store
                    .add_to_budget_counters(tenant, &writes, now)
                    .await?
                {
                    break (h, None);
                }
            }
            // Racing checks took the last units: decide on fresh counters.
            attempt += 1;
            if attempt >= MAX_RACES {
                return Err(Error::Unavailable);
            }
        };
        // The plan in force: the org's when it stands in for the user's Free plan.
        let plan = match budgets.iter().find_map(|b| match &b.source {
            LimitSource::Plan { plan, .. } if !pc.user_subscribed => Some(plan.clone()),
            _ => None,
        }) {
            Some(org_plan) => org_plan,
            None => pc.plan.name.clone(),
        };
        Ok(CheckOutcome::Allowed(CheckAllowed {
            allowed: true,
            user_id: req.user,
            provider: pc.provider,
            plan,
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
            LimitSource::Plan {
                scope: Scope::User { .. },
                ..
            } => {
                let plans = self.plans(tenant).await?;
                limits::cheapest_plan_allowing(&plans, &pc.plan.name, plan_usage, &pc.call)
                    .map(|p| p.name.clone())
            }
            LimitSource::Plan { .. } | LimitSource::Budget { .. } => None,
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
        org_plans: &mut super::orgs::OrgPlans,
        listed: &mut ListedBudgets,
    ) -> Result<Vec<Vec<CounterWrite>>> {
        let mut out = Vec::with_capacity(events.len());
        let mut members = super::org_reads::MemberNotes::default();
        for e in events {
            let (writes, org_period) = self
                .event_counter_writes(tenant, e, sub, user_budgets, org_plans, listed)
                .await?;
            if let Some((call, period)) = org_period {
                members.note(&call, period);
            }
            out.push(writes);
        }
        // Issue 18: who acted within each org period (service::org_reads); a store that
        // notes them in the events' own write (DynamoDB) is not asked separately.
        if !self.store.notes_members_when_recording() {
            self.note_members(tenant, members).await?;
        }
        Ok(out)
    }

    /// What event `e` adds to its budget and org counters (as [`Meter::ingest_writes`]
    /// counts it) and, when it names an org, its scopes and the org's period it counts in.
    pub(super) async fn event_counter_writes(
        &self,
        tenant: &TenantId,
        e: &UsageEvent,
        sub: Option<&Subscription>,
        user_budgets: bool,
        org_plans: &mut super::orgs::OrgPlans,
        listed: &mut ListedBudgets,
    ) -> Result<(Vec<CounterWrite>, Option<(CallScopes, Period)>)> {
        let call = CallScopes::new(e.user.clone(), e.org_id.clone(), e.team_id.clone())
            .map_err(|err| Error::invalid(err.field(), err.code(), err.to_string()))?;
        // Issue 18: the org's plan counts the org's pooled usage (service::orgs).
        let org_plan = match call.org() {
            Some(org) => self.cached_org_plan(tenant, org, org_plans).await?.cloned(),
            None => None,
        };
        let org_plan = org_plan.as_ref();
        let mut limits = Vec::new();
        if let (Some(org), Some(p)) = (call.org(), org_plan) {
            limits.push(p.limit(org, e.timestamp)?);
        }
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
        limits.extend(
            budget_limits(
                &budgets,
                &call,
                &schedule_of(sub),
                &Self::org_schedule(org_plan),
                e.timestamp,
            )
            .map_err(|err| Error::invalid("timestamp", "out_of_range", err.to_string()))?,
        );
        let mut writes = event_writes(&limits, &e.provider, &e.tally());
        // Issue 18: the org reads' counters (service::org_reads).
        if let Some(org) = call.org() {
            let period = Self::org_schedule(org_plan)
                .period_containing(e.timestamp)
                .map_err(|err| Error::invalid("timestamp", "out_of_range", err.to_string()))?;
            super::org_reads::add_org_usage_writes(&mut writes, &call, period, e);
            // One payer per call (docs/billing.md): the other invoice leaves it out.
            writes.push(paid_elsewhere(e, org, org_plan.is_some(), period, sub)?);
            return Ok((writes, Some((call, period))));
        }
        Ok((writes, None))
    }
}

/// Who pays for `e`, a call naming `org`: when the org has an active subscription
/// (`org_subscribed`), the payer kept with the event (a re-pricing bills whom its
/// recording billed), else the user when the user has a subscription of their own
/// (`sub`), else the org; without one, the user. The write that counts the call as billed
/// by that payer on the other subscriber's [`CounterKey::PaidElsewhere`] counter of the
/// period the call counts in (the org's: `org_period`, its pooled counter's). An org
/// without an active subscription gets it too: its pooled counter still counts the call
/// (for its reads), and a cancelled org's last invoice bills that counter.
fn paid_elsewhere(
    e: &UsageEvent,
    org: &OrgId,
    org_subscribed: bool,
    org_period: Period,
    sub: Option<&Subscription>,
) -> Result<CounterWrite> {
    let out_of_range = |err: crate::periods::PeriodError| {
        Error::invalid("timestamp", "out_of_range", err.to_string())
    };
    let payer = match (org_subscribed, e.payer, sub) {
        (false, _, _) => Payer::User,
        (true, Some(kept), _) => kept,
        (true, None, Some(_)) => Payer::User,
        (true, None, None) => Payer::Org,
    };
    // The other subscriber's period the call counts in: its start and end.
    let (scope, window_start, window_end) = match payer {
        // The org pays: the user's invoice of the event's period leaves the call out.
        Payer::Org => {
            let period = schedule_of(sub)
                .period_containing(e.period_start)
                .map_err(out_of_range)?;
            let scope = Scope::User {
                user_id: e.user.clone(),
            };
            (scope, e.period_start, period.end)
        }
        // The user pays: the org's invoice leaves it out.
        Payer::User => {
            let scope = Scope::Org {
                org_id: org.clone(),
            };
            (scope, org_period.start, org_period.end)
        }
    };
    Ok(CounterWrite {
        counter: CounterKey::PaidElsewhere {
            scope,
            window_start,
        },
        window_end,
        provider: e.provider.clone(),
        add: e.tally(),
        held: crate::usage::Tally::default(),
        guards: Vec::new(),
    })
}

/// Whose invoice bills the event with counter writes `writes` (as
/// [`Meter::event_counter_writes`] made them): `None` when the call names no org (the
/// user's).
pub(super) fn payer_of(writes: &[CounterWrite]) -> Option<Payer> {
    writes.iter().find_map(|w| match &w.counter {
        CounterKey::PaidElsewhere {
            scope: Scope::User { .. },
            ..
        } => Some(Payer::Org),
        CounterKey::PaidElsewhere { .. } => Some(Payer::User),
        _ => None,
    })
}
