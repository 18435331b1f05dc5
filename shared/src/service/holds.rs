//! Reservations (`reserve: true`): the one path by which a check holds its estimate, on
//! the user's plan counters and, when budgets apply, on every budget counter at once
//! (§10: all or none). Both the plan-only check (`check`) and the check over budgets
//! (`enforce`) hold through here.

use chrono::{DateTime, Duration, Utc};

use super::check::{CheckRequest, Denial, Hold};
use super::prepaid::Reserved;
use super::{Meter, Result};
use crate::budgets::{reservation_guards, CounterKey, CounterWrite, LimitState};
use crate::domain::{Reservation, ReservationStatus, TenantId};
use crate::limits::{CallEstimate, Guard};
use crate::periods::Period;
use crate::store::{CreditHold, ReserveOutcome};
use crate::usage::{PeriodUsage, Tally};

/// What a reservation holds: one call, the estimated tokens and the estimated cost (zero
/// when the call could not be priced).
pub(super) fn held_of(call: &CallEstimate) -> Tally {
    Tally {
        calls: 1,
        tokens: call.estimated_tokens,
        cost_usd: call.estimated_cost.unwrap_or_default(),
    }
}

/// Adds `held` to `usage` under `provider` (what the answer after a hold shows).
pub(super) fn add_held(
    usage: &mut PeriodUsage,
    provider: &crate::domain::ProviderId,
    held: &Tally,
) {
    let entry = usage.by_provider.entry(provider.clone()).or_default();
    entry.held = super::check::add_tally(&entry.held, held);
}

/// The guards of the user's plan counter `plan_counter` among `states`: the plan's
/// limits and those of hard `period` budgets on the user's own scope (one counter).
pub(super) fn plan_counter_guards(
    states: &[LimitState],
    plan_counter: &CounterKey,
    call: &CallEstimate,
) -> Vec<Guard> {
    reservation_guards(states, call)
        .into_iter()
        .find(|c| &c.counter == plan_counter)
        .map(|c| c.guards)
        .unwrap_or_default()
}

/// The limit states as they are after a reservation wrote `writes` (and `held` on the
/// user's plan counter `plan_counter`): what the allowed answer's figures count.
pub(super) fn states_after_hold(
    states: &mut [LimitState],
    plan_counter: &CounterKey,
    writes: &[CounterWrite],
    provider: &crate::domain::ProviderId,
    held: &Tally,
) {
    for state in states.iter_mut() {
        if &state.counter == plan_counter {
            add_held(&mut state.usage, provider, held);
            continue;
        }
        if let Some(w) = writes.iter().find(|w| w.counter == state.counter) {
            let entry = state
                .usage
                .by_provider
                .entry(w.provider.clone())
                .or_default();
            entry.recorded = super::check::add_tally(&entry.recorded, &w.add);
            entry.held = super::check::add_tally(&entry.held, &w.held);
        }
    }
}

/// What [`Meter::hold_call`] did.
pub(super) enum HoldOutcome {
    Held(Hold),
    /// A guard failed at the write (racing reservations took the last units; nothing was
    /// held): decide again on fresh counters.
    Lost,
    /// A prepaid plan's wallet no longer admits the estimate (issue 19): the denial.
    NoCredit(Box<Denial>),
}

impl Meter {
    /// Holds `call`'s estimate for `req.reservation_ttl_seconds`: on the user's plan
    /// counters of `period`, guarded by `plan_guards` (the plan's limits, and those of
    /// hard `period` budgets on the user's own scope, which count there too) and,
    /// atomically with it, every budget write of `budget_writes` (each guarded by its own
    /// limits; none for a plan-only check) and, on a prepaid plan, `credit` on the user's
    /// wallet (issue 19), all in one atomic write.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn hold_call(
        &self,
        tenant: &TenantId,
        req: &CheckRequest,
        period: &Period,
        call: &CallEstimate,
        plan_guards: &[Guard],
        budget_writes: &[CounterWrite],
        credit: Option<&CreditHold>,
        now: DateTime<Utc>,
    ) -> Result<HoldOutcome> {
        let r = Reservation {
            id: Reservation::new_id(&req.user),
            tenant: tenant.clone(),
            user: req.user.clone(),
            provider: call.provider.clone(),
            period_start: period.start,
            held: held_of(call),
            status: ReservationStatus::Held,
            created_at: now,
            expires_at: now + Duration::seconds(req.reservation_ttl_seconds as i64),
            budget_holds: budget_writes
                .iter()
                .filter_map(CounterWrite::hold)
                .collect(),
        };
        let outcome = {
            let _gate = self.gate(tenant, &req.user).await;
            match credit {
                Some(hold) => match self
                    .reserve_call(&r, plan_guards, budget_writes, hold, period, now)
                    .await?
                {
                    Reserved::Store(o) => o,
                    Reserved::NoCredit(d) => return Ok(HoldOutcome::NoCredit(d)),
                },
                None if budget_writes.is_empty() => self.store.reserve(&r, plan_guards).await?,
                None => {
                    self.store
                        .reserve_counted(&r, plan_guards, budget_writes, now)
                        .await?
                }
            }
        };
        Ok(match outcome {
            ReserveOutcome::Reserved => HoldOutcome::Held(Hold {
                reservation_id: r.id,
                expires_at: r.expires_at,
            }),
            ReserveOutcome::Denied { .. } => HoldOutcome::Lost,
        })
    }
}
