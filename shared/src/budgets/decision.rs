//! The check over every applicable limit, the reservation guards per counter, and which
//! hard limits are reached.
//!
//! Each limit is judged by the one rule of [`limits::requirement`](crate::limits::requirement),
//! through [`limits::decide`](crate::limits::decide) (checks) and
//! [`limits::guards_for`](crate::limits::guards_for) (reservations), over the usage of
//! its own counter in its own window. Soft limits never deny and never guard.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{CounterKey, LimitSource, Mode, Scope, Window};
use crate::limits::{
    decide, guards_for, left_of, metric_status, percentage, reached, recorded_amount,
    used_saturating, CallEstimate, Decision, DecisionError, Guard, Limits, Metric, MetricAmounts,
    Percentages, UsageStatus,
};
use crate::periods::Period;
use crate::usage::PeriodUsage;

/// One applicable limit with the usage of its counter in its current window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitState {
    pub source: LimitSource,
    pub window: Window,
    /// The current window, `[start, end)`.
    pub period: Period,
    pub limits: Limits,
    pub mode: Mode,
    pub counter: CounterKey,
    /// The counter's usage in the window: recorded plus held (open reservations count).
    pub usage: PeriodUsage,
}

/// The limit that bounds a metric: its source and window. In JSON
/// `{"scope": {…}, "plan": "pro", "window": "period"}` or
/// `{"scope": {…}, "budget_id": "…", "window": "day"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitedBy {
    #[serde(flatten)]
    pub source: LimitSource,
    pub window: Window,
}

/// What an allowed call is told, per metric, from the tightest applicable hard limit
/// (the one with the least remaining; on a tie the higher percentage, then the first in
/// the order given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Headroom {
    pub remaining: MetricAmounts,
    pub usage_percentages: Percentages,
    pub limited_by: BTreeMap<Metric, LimitedBy>,
    /// The worst status over every hard limit.
    pub usage_status: UsageStatus,
}

/// The limit a denied call would break, and when its window resets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// The scope (inside) and the plan or budget.
    pub source: LimitSource,
    pub window: Window,
    /// The window the limit is counted over; the call may go again after its end.
    pub period: Period,
    pub metric: Metric,
    /// Usage of the counter so far (recorded + held).
    pub used: Decimal,
    pub limit: Decimal,
    /// What the call adds: 1 call, its estimated tokens, or its estimated cost.
    pub requested: Decimal,
    /// The end of the window.
    pub resets_at: DateTime<Utc>,
}

impl Denial {
    /// The scope of the denying limit.
    pub fn scope(&self) -> &Scope {
        self.source.scope()
    }
}

/// The answer to a check over every applicable limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allowed(Headroom),
    Denied(Denial),
}

impl Verdict {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Verdict::Allowed(_))
    }
}

/// Decides a call over every applicable limit: allowed only if every hard limit allows
/// it ([`decide`] on each, over its own counter's usage); soft limits never deny and are
/// left out of the answer.
///
/// When several hard limits deny, the one reported is the one whose window resets
/// **last** (on a tie, the first in the order given): the call cannot go before then,
/// so its `resets_at` is an honest `Retry-After`. Within one limit, the metric reported
/// is the first violated in [`decide`]'s order.
///
/// An allowed call gets, per metric, the tightest hard limit ([`Headroom`]).
pub fn decide_all(limits: &[LimitState], call: &CallEstimate) -> Result<Verdict, DecisionError> {
    call.validate()?;
    let mut denial: Option<Denial> = None;
    for state in hard(limits) {
        let Decision::Denied(v) = decide(&state.limits, &state.usage, call)? else {
            continue;
        };
        if denial
            .as_ref()
            .is_none_or(|first| state.period.end > first.resets_at)
        {
            denial = Some(Denial {
                source: state.source.clone(),
                window: state.window,
                period: state.period,
                metric: v.metric,
                used: v.used,
                limit: v.limit,
                requested: v.requested,
                resets_at: state.period.end,
            });
        }
    }
    Ok(match denial {
        Some(d) => Verdict::Denied(d),
        None => Verdict::Allowed(headroom(limits)),
    })
}

fn hard(limits: &[LimitState]) -> impl Iterator<Item = &LimitState> {
    limits.iter().filter(|s| s.mode == Mode::Hard)
}

/// Per metric, the remaining and percentage of the tightest hard limit, and which it is
/// (what an allowed check answers; after a reservation, over the usage with its hold).
pub fn headroom(limits: &[LimitState]) -> Headroom {
    // Issue 23: one pass over each limit's metrics, no map per limit and no percentage
    // but the winners' (and a tie's). metric -> (remaining, limit, used, index of the state)
    let mut best: BTreeMap<&Metric, (Decimal, Decimal, Decimal, usize)> = BTreeMap::new();
    let mut status = UsageStatus::Active;
    for (i, state) in limits.iter().enumerate() {
        if state.mode != Mode::Hard {
            continue;
        }
        for (metric, &limit) in &state.limits.0 {
            let used = used_saturating(metric, &state.usage);
            let left = left_of(limit, used);
            status = worse(status, metric_status(limit, used));
            let tighter = best.get(metric).is_none_or(|&(l, lim, u, _)| {
                left < l || (left == l && percentage(limit, used) > percentage(lim, u))
            });
            if tighter {
                best.insert(metric, (left, limit, used, i));
            }
        }
    }
    let mut h = Headroom {
        remaining: MetricAmounts::default(),
        usage_percentages: Percentages::default(),
        limited_by: BTreeMap::new(),
        usage_status: status,
    };
    for (metric, (left, limit, used, i)) in best {
        h.remaining.0.insert(metric.clone(), left);
        h.usage_percentages
            .0
            .insert(metric.clone(), percentage(limit, used));
        h.limited_by.insert(
            metric.clone(),
            LimitedBy {
                source: limits[i].source.clone(),
                window: limits[i].window,
            },
        );
    }
    h
}

fn worse(a: UsageStatus, b: UsageStatus) -> UsageStatus {
    let rank = |s| match s {
        UsageStatus::Active => 0,
        UsageStatus::Warning => 1,
        UsageStatus::LimitReached => 2,
    };
    if rank(b) > rank(a) {
        b
    } else {
        a
    }
}

/// What a reservation must do on one counter: add the call's estimate, passing every
/// guard atomically with the other counters' (all or none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterGuards {
    pub counter: CounterKey,
    /// The counter's current window (its end bounds how long the counter must be kept).
    pub period: Period,
    /// The conditions of the hard limits counting against this counter; empty when only
    /// soft limits do (the hold is still added, for their alerts).
    pub guards: Vec<Guard>,
}

impl CounterGuards {
    /// The guards on call metrics: what a check that only counts its call (a rate-limit
    /// window, [`Window::counts_calls_at_check`]) must pass.
    pub fn call_guards(&self) -> impl Iterator<Item = &Guard> {
        self.guards
            .iter()
            .filter(|g| matches!(g.metric, Metric::Calls(_)))
    }
}

/// Per counter (in first-seen order), the guards a reservation of `call` must pass
/// atomically: [`guards_for`] of every hard limit counting against it, without exact
/// repeats. Every counter of `limits` is listed, soft-only ones with no guard.
pub fn reservation_guards(limits: &[LimitState], call: &CallEstimate) -> Vec<CounterGuards> {
    let mut out: Vec<CounterGuards> = Vec::new();
    for state in limits {
        let index = match out.iter().position(|c| c.counter == state.counter) {
            Some(i) => i,
            None => {
                out.push(CounterGuards {
                    counter: state.counter.clone(),
                    period: state.period,
                    guards: Vec::new(),
                });
                out.len() - 1
            }
        };
        if state.mode != Mode::Hard {
            continue;
        }
        let entry = &mut out[index];
        for guard in guards_for(&state.limits, call) {
            if !entry.guards.contains(&guard) {
                entry.guards.push(guard);
            }
        }
    }
    out
}

/// The metrics of a hard limit whose usage has reached 100 % (recorded usage, the same
/// exact comparison as the 100 % alert: [`reached`]; a limit of 0 is never "reached", it
/// means none allowed). A scope is denied at 100 % while this is not empty, and allowed
/// again once it is (a new window, a raised limit, an upgrade): the service publishes
/// `alert.resolved` on that change. Empty for soft limits.
pub fn hard_limit_reached(state: &LimitState) -> Vec<Metric> {
    if state.mode != Mode::Hard {
        return Vec::new();
    }
    state
        .limits
        .0
        .iter()
        .filter(|(metric, &limit)| reached(recorded_amount(metric, &state.usage), limit, 100))
        .map(|(metric, _)| metric.clone())
        .collect()
}
