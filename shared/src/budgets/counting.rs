//! What a call writes to the budget counters it belongs to: an event's recorded usage,
//! and an allowed check's call in the rate-limit windows (`minute`, `hour`), which count
//! attempts (§10).
//!
//! A budget counter holds, per provider, the usage counted in its window (calls, tokens,
//! cost); the store keeps per-metric totals beside them so that a guard on `calls:*`,
//! `tokens:*` or `cost_usd` is one condition. The user's own plan counter (the user's
//! limit period) is not a budget counter: the store counts it with the user's usage, and
//! a `period` budget on the user scope reads that same usage.

use chrono::{DateTime, Utc};

use super::decision::reservation_guards;
use super::{Applicable, CounterKey, LimitState, Mode, Window};
use crate::domain::{BudgetHold, ProviderId};
use crate::limits::{guards_for, CallEstimate, Guard};
use crate::usage::Tally;

/// One write to one budget counter: add `add` under `provider`, and only if every guard
/// passes (the guards of every counter written together pass, or nothing is written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterWrite {
    pub counter: CounterKey,
    /// The end of the counter's window: the counter is not read after it, and the store
    /// may drop it once it is past (TTL in DynamoDB, pruning in SQLite).
    pub window_end: DateTime<Utc>,
    pub provider: ProviderId,
    /// What the write counts (recorded usage; an attempt in a rate-limit window).
    pub add: Tally,
    /// What the write holds for a reservation (returned when it closes); zero otherwise.
    pub held: Tally,
    /// Conditions on the counter's usage (recorded plus held) before the write (empty at
    /// ingest: usage that happened is always recorded).
    pub guards: Vec<Guard>,
}

impl CounterWrite {
    /// What a reservation taking this write holds on the counter (nothing when the write
    /// holds nothing).
    pub fn hold(&self) -> Option<BudgetHold> {
        (self.held != Tally::default()).then(|| BudgetHold {
            counter: self.counter.key(),
            window_end: self.window_end,
            held: self.held.clone(),
        })
    }
}

/// Whether `counter` is the user's plan counter, which the store keeps with the user's
/// usage (not a budget counter).
pub fn is_user_period_counter(counter: &CounterKey) -> bool {
    matches!(
        counter,
        CounterKey::Scope {
            scope: super::Scope::User { .. },
            window: Window::Period,
            ..
        }
    )
}

/// The budget counters among `limits`, once each in first-seen order, with their
/// window's end; the user's plan counter is left out.
pub fn budget_counters(limits: &[Applicable]) -> Vec<(CounterKey, DateTime<Utc>)> {
    let mut out: Vec<(CounterKey, DateTime<Utc>)> = Vec::new();
    for a in limits {
        if is_user_period_counter(&a.counter) || out.iter().any(|(c, _)| c == &a.counter) {
            continue;
        }
        out.push((a.counter.clone(), a.period.end));
    }
    out
}

/// What recording an event adds to its budget counters (`limits`: the budgets that apply
/// to the event's scopes at its timestamp): its tally on each counter, without its call in
/// the rate-limit windows (the check counted it there). No guard: usage that happened is
/// always recorded. Counters to which it adds nothing are left out.
pub fn event_writes(
    limits: &[Applicable],
    provider: &ProviderId,
    tally: &Tally,
) -> Vec<CounterWrite> {
    budget_counters(limits)
        .into_iter()
        .filter_map(|(counter, window_end)| {
            let add = Tally {
                calls: if counter.window().counts_calls_at_check() {
                    0
                } else {
                    tally.calls
                },
                ..tally.clone()
            };
            (add != Tally::default()).then(|| CounterWrite {
                counter,
                window_end,
                provider: provider.clone(),
                add,
                held: Tally::default(),
                guards: Vec::new(),
            })
        })
        .collect()
}

/// What an allowed check writes at once: one call on each rate-limit counter (`minute`,
/// `hour`) among `limits`, guarded by the call limits of the hard budgets counting there,
/// so that racing checks cannot pass a rate limit. Empty when no rate-limit budget applies.
pub fn check_call_writes(limits: &[LimitState], call: &CallEstimate) -> Vec<CounterWrite> {
    let mut out: Vec<CounterWrite> = Vec::new();
    for state in limits {
        if !state.window.counts_calls_at_check() || is_user_period_counter(&state.counter) {
            continue;
        }
        let index = match out.iter().position(|w| w.counter == state.counter) {
            Some(i) => i,
            None => {
                out.push(CounterWrite {
                    counter: state.counter.clone(),
                    window_end: state.period.end,
                    provider: call.provider.clone(),
                    add: Tally {
                        calls: 1,
                        ..Tally::default()
                    },
                    held: Tally::default(),
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
            if matches!(guard.metric, crate::limits::Metric::Calls(_))
                && !entry.guards.contains(&guard)
            {
                entry.guards.push(guard);
            }
        }
    }
    out
}

/// What a reservation of `call` writes on its budget counters, in one atomic write with
/// the hold on the user's plan counters: on each budget counter among `limits` (the
/// user's plan counter left out), `held` (the call's estimate: one call, its tokens and
/// cost) guarded by every hard limit counting there ([`reservation_guards`]). In a
/// rate-limit window (`minute`, `hour`) the call counts at once as an attempt (in `add`,
/// not returned when the reservation closes) and only its tokens and cost are held.
pub fn reservation_writes(
    limits: &[LimitState],
    call: &CallEstimate,
    held: &Tally,
) -> Vec<CounterWrite> {
    reservation_guards(limits, call)
        .into_iter()
        .filter(|c| !is_user_period_counter(&c.counter))
        .map(|c| {
            let rate = c.counter.window().counts_calls_at_check();
            CounterWrite {
                window_end: c.period.end,
                provider: call.provider.clone(),
                add: Tally {
                    calls: if rate { held.calls } else { 0 },
                    ..Tally::default()
                },
                held: Tally {
                    calls: if rate { 0 } else { held.calls },
                    ..held.clone()
                },
                guards: c.guards,
                counter: c.counter,
            }
        })
        .collect()
}
