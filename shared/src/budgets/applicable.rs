//! Which limits apply to a call, and which counter each counts against.
//!
//! The limits of a call: the user's plan, the org's plan when the call
//! names an org with an active subscription, and every budget of every scope the call
//! names, each in its current window. The user's plan applies when the user has a
//! subscription, or when no org with an active subscription is named: a call naming a
//! subscribed org does not put its user on the Free plan, but the user's own
//! subscription, if there is one, still applies.
//!
//! Counters are shared: every limit on one scope with one window counts against the
//! same pooled counter ([`CounterKey::Scope`]), whichever plan or budget it comes from,
//! so a plan change keeps the period's usage (upgrades keep usage) and a `period`
//! budget on a subscriber counts against the same usage as its plan. `each_member`
//! budgets count against one counter per user within the scope
//! ([`CounterKey::Member`]), shared the same way.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::{AppliesTo, Budget, CallScopes, LimitState, Mode, Scope, Window};
use crate::domain::{BudgetId, PlanName, UserId};
use crate::limits::{Limits, Plan};
use crate::periods::{Period, PeriodError, Schedule};
use crate::usage::PeriodUsage;

/// Where a limit comes from: a subscriber's plan or a budget, on a scope. In JSON
/// (`limited_by`, denial details): `{"scope": {…}, "plan": "pro"}` or
/// `{"scope": {…}, "budget_id": "daily-cap"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum LimitSource {
    Plan { scope: Scope, plan: PlanName },
    Budget { scope: Scope, budget_id: BudgetId },
}

impl LimitSource {
    /// The scope the limit is on.
    pub fn scope(&self) -> &Scope {
        match self {
            LimitSource::Plan { scope, .. } | LimitSource::Budget { scope, .. } => scope,
        }
    }

    /// The plan, when the limit is a plan's.
    pub fn plan(&self) -> Option<&PlanName> {
        match self {
            LimitSource::Plan { plan, .. } => Some(plan),
            LimitSource::Budget { .. } => None,
        }
    }

    /// The budget, when the limit is a budget's.
    pub fn budget_id(&self) -> Option<&BudgetId> {
        match self {
            LimitSource::Plan { .. } => None,
            LimitSource::Budget { budget_id, .. } => Some(budget_id),
        }
    }
}

/// The counter a limit counts against: whose usage, over which window.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CounterKey {
    /// The pooled usage of a scope in one window, shared by every limit on that scope
    /// with that window.
    Scope {
        scope: Scope,
        window: Window,
        window_start: DateTime<Utc>,
    },
    /// One user's usage within an org or team scope in one window (`each_member`
    /// budgets), shared by every such budget of the scope with that window.
    Member {
        scope: Scope,
        user: UserId,
        window: Window,
        window_start: DateTime<Utc>,
    },
    /// The part of a subscriber's (user's or org's) usage in its limit period starting at
    /// `window_start` that another subscriber's invoice bills (docs/billing.md, "One payer
    /// per call"): the subscriber's invoice bills its usage less this. No limit counts
    /// against it.
    PaidElsewhere {
        scope: Scope,
        window_start: DateTime<Utc>,
    },
}

impl CounterKey {
    pub fn scope(&self) -> &Scope {
        match self {
            CounterKey::Scope { scope, .. }
            | CounterKey::Member { scope, .. }
            | CounterKey::PaidElsewhere { scope, .. } => scope,
        }
    }

    /// The counter's window (`period` for [`CounterKey::PaidElsewhere`]: it is kept as
    /// long as a `period` counter).
    pub fn window(&self) -> Window {
        match self {
            CounterKey::Scope { window, .. } | CounterKey::Member { window, .. } => *window,
            CounterKey::PaidElsewhere { .. } => Window::Period,
        }
    }

    pub fn window_start(&self) -> DateTime<Utc> {
        match self {
            CounterKey::Scope { window_start, .. }
            | CounterKey::Member { window_start, .. }
            | CounterKey::PaidElsewhere { window_start, .. } => *window_start,
        }
    }

    /// A stable text naming the counter, distinct for distinct counters:
    /// `<scope key>#<window>#<start>`, `<scope key>#member#<user_id>#<window>#<start>` or
    /// `<scope key>#elsewhere#<start>`, the start in RFC 3339 (`2025-03-01T00:00:00Z`);
    /// see [`Scope::key`].
    pub fn key(&self) -> String {
        let start = |at: &DateTime<Utc>| at.to_rfc3339_opts(SecondsFormat::Secs, true);
        match self {
            CounterKey::Scope {
                scope,
                window,
                window_start,
            } => format!("{}#{window}#{}", scope.key(), start(window_start)),
            CounterKey::Member {
                scope,
                user,
                window,
                window_start,
            } => format!(
                "{}#member#{user}#{window}#{}",
                scope.key(),
                start(window_start)
            ),
            CounterKey::PaidElsewhere {
                scope,
                window_start,
            } => format!("{}#{ELSEWHERE}#{}", scope.key(), start(window_start)),
        }
    }
}

/// The window word of [`CounterKey::PaidElsewhere`] keys (never a [`Window`]'s name).
pub const ELSEWHERE: &str = "elsewhere";

/// Whether `writes` (one event's) count part of `scope`'s period usage as billed by
/// another subscriber ([`CounterKey::PaidElsewhere`]): then a late event is no adjustment
/// of `scope`'s invoice.
pub fn billed_elsewhere(writes: &[super::CounterWrite], scope: &Scope) -> bool {
    writes
        .iter()
        .any(|w| matches!(&w.counter, CounterKey::PaidElsewhere { scope: s, .. } if s == scope))
}

/// One limit that applies to a call: where it comes from, its current window and the
/// counter it counts against. Add the counter's usage with [`Applicable::with_usage`]
/// to decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applicable {
    pub source: LimitSource,
    pub window: Window,
    /// The current window, `[start, end)`.
    pub period: Period,
    pub limits: Limits,
    pub mode: Mode,
    pub counter: CounterKey,
}

impl Applicable {
    /// The limit with its counter's usage in the window (recorded plus held).
    pub fn with_usage(self, usage: PeriodUsage) -> LimitState {
        LimitState {
            source: self.source,
            window: self.window,
            period: self.period,
            limits: self.limits,
            mode: self.mode,
            counter: self.counter,
            usage,
        }
    }
}

/// An active subscription as applicability needs it: its plan and period schedule.
#[derive(Debug, Clone, Copy)]
pub struct Subscribed<'a> {
    pub plan: &'a Plan,
    pub schedule: Schedule,
}

/// The plans around a call, looked up by the caller.
#[derive(Debug, Clone, Copy)]
pub struct PlanInputs<'a> {
    /// The plan of a user without a subscription: the tenant's Free plan.
    pub free: &'a Plan,
    /// The user's own subscription, if any.
    pub user: Option<Subscribed<'a>>,
    /// The org's subscription, when the call names an org with an active one (ignored
    /// when the call names no org).
    pub org: Option<Subscribed<'a>>,
}

/// Every limit that applies to a call at `at`, in order: the user's plan (if it
/// applies), the org's plan (if subscribed), then the budgets of the call's scopes
/// (user, org, team; by budget id within a scope). `budgets` are the tenant's; those on
/// scopes the call does not name are left out.
///
/// Plans count over the subscriber's limit period. A `period` budget follows its
/// scope's subscriber: the user's schedule for a user budget, the org's for org and team
/// budgets (calendar months without a subscription).
pub fn applicable(
    budgets: &[Budget],
    call: &CallScopes,
    plans: &PlanInputs<'_>,
    at: DateTime<Utc>,
) -> Result<Vec<Applicable>, PeriodError> {
    let org_sub = plans.org.filter(|_| call.org().is_some());
    let user_schedule = plans.user.map_or_else(Schedule::calendar, |s| s.schedule);
    let org_schedule = org_sub.map_or_else(Schedule::calendar, |s| s.schedule);
    let user_scope = Scope::User {
        user_id: call.user().clone(),
    };

    let mut out = Vec::new();
    let user_plan = match (plans.user, org_sub) {
        (Some(sub), _) => Some(sub),
        (None, None) => Some(Subscribed {
            plan: plans.free,
            schedule: user_schedule,
        }),
        // A subscribed org stands in for the Free plan.
        (None, Some(_)) => None,
    };
    if let Some(sub) = user_plan {
        out.push(plan_limit(user_scope, sub, at)?);
    }
    if let (Some(org_id), Some(sub)) = (call.org(), org_sub) {
        let scope = Scope::Org {
            org_id: org_id.clone(),
        };
        out.push(plan_limit(scope, sub, at)?);
    }

    out.extend(budget_limits(
        budgets,
        call,
        &user_schedule,
        &org_schedule,
        at,
    )?);
    Ok(out)
}

/// The budgets of `budgets` on the scopes `call` names, each in its window containing
/// `at`, in order (user, org, team; by budget id within a scope): the budget part of
/// [`applicable`]. `period` windows follow `user_schedule` on a user scope and
/// `org_schedule` on org and team scopes.
pub fn budget_limits(
    budgets: &[Budget],
    call: &CallScopes,
    user_schedule: &Schedule,
    org_schedule: &Schedule,
    at: DateTime<Utc>,
) -> Result<Vec<Applicable>, PeriodError> {
    let (user_schedule, org_schedule) = (*user_schedule, *org_schedule);
    let mut out = Vec::new();
    let mut named: Vec<&Budget> = budgets.iter().filter(|b| call.contains(&b.scope)).collect();
    named.sort_by(|a, b| (&a.scope, &a.id).cmp(&(&b.scope, &b.id)));
    for budget in named {
        let schedule = match budget.scope {
            Scope::User { .. } => &user_schedule,
            Scope::Org { .. } | Scope::Team { .. } => &org_schedule,
        };
        let period = budget.window.containing(at, schedule)?;
        let scope = budget.scope.clone();
        let counter = match (&budget.applies_to, &scope) {
            (AppliesTo::EachMember, Scope::Org { .. } | Scope::Team { .. }) => CounterKey::Member {
                scope: scope.clone(),
                user: call.user().clone(),
                window: budget.window,
                window_start: period.start,
            },
            // Each member of a user scope is the user: its pooled counter.
            (AppliesTo::Scope | AppliesTo::EachMember, _) => CounterKey::Scope {
                scope: scope.clone(),
                window: budget.window,
                window_start: period.start,
            },
        };
        out.push(Applicable {
            source: LimitSource::Budget {
                scope,
                budget_id: budget.id.clone(),
            },
            window: budget.window,
            period,
            limits: budget.limits.clone(),
            mode: budget.mode,
            counter,
        });
    }
    Ok(out)
}

/// A subscriber's plan on `scope`: hard, over the subscriber's limit period.
fn plan_limit(
    scope: Scope,
    sub: Subscribed<'_>,
    at: DateTime<Utc>,
) -> Result<Applicable, PeriodError> {
    let period = Window::Period.containing(at, &sub.schedule)?;
    Ok(Applicable {
        source: LimitSource::Plan {
            scope: scope.clone(),
            plan: sub.plan.name.clone(),
        },
        window: Window::Period,
        period,
        limits: sub.plan.limits.clone(),
        mode: Mode::Hard,
        counter: CounterKey::Scope {
            scope,
            window: Window::Period,
            window_start: period.start,
        },
    })
}
