//! Ingest's reads when events name an org (issue 18, SPEC §12: an event batch is one
//! `TransactWriteItems` per ≤ 100 items plus at most 2 reads).
//!
//! Before the write, a part of the check's read ([`CheckViewStore::read_view_part`]) of
//! each call a user's events make within an org gives, in one request, the user's state,
//! the org's subscription and the budgets of every named scope: nothing else is read for
//! the counter writes. After the write, another part gives the user's state (the plan
//! alerts) and the counters the budget alerts judge, as they are after the write (other
//! writers included: alerts stay exact under concurrency). The org member directory is noted in
//! the events' own write where the store can (`OrgMembersStore::notes_members_when_recording`).
//!
//! A user whose events name no org reads the same way when this process knows that
//! user's own scope holds budgets (`Meter::has_own_budgets`, service::check_view); one
//! found with budgets by the state read is read that way after the write.
//!
//! Events of one user that name several orgs, or several teams of an org, read once per
//! such call before the write.
//!
//! [`CheckViewStore::read_view_part`]: crate::store::CheckViewStore::read_view_part

use chrono::{DateTime, Utc};

use super::budget_alerts::DueBudgetAlerts;
use super::enforce::ListedBudgets;
use super::ingest::NewEvent;
use super::orgs::{OrgPlan, OrgPlans};
use super::{period_start_at, Error, Meter, Result};
use crate::budgets::CallScopes;
use crate::domain::{Subscription, TenantId, UsageEvent, UserId};
use crate::store::{UserUsage, ViewPart};

/// Whether call `a` reads everything call `b` needs: the same org, and `b`'s team if any.
fn covers(a: &CallScopes, b: &CallScopes) -> bool {
    a.org() == b.org() && (b.team().is_none() || a.team() == b.team())
}

/// The calls the events at `indices` (one user's) make within an org, none covered by
/// another (a call naming a team covers the org alone). Empty when no event names an org.
pub(super) fn org_calls(inputs: &[NewEvent], indices: &[usize]) -> Result<Vec<CallScopes>> {
    let mut calls: Vec<CallScopes> = Vec::new();
    for &i in indices {
        let e = &inputs[i];
        if e.org_id.is_none() {
            continue;
        }
        let call = CallScopes::new(e.user.clone(), e.org_id.clone(), e.team_id.clone())
            .map_err(|err| Error::invalid(err.field(), err.code(), err.to_string()))?;
        if calls.iter().any(|c| covers(c, &call)) {
            continue;
        }
        calls.retain(|c| !covers(&call, c));
        calls.push(call);
    }
    Ok(calls)
}

impl Meter {
    /// The calls to read the view of before one user's write: the org calls
    /// ([`org_calls`]), or, when no event names an org and this process saw the user's
    /// own scope holding budgets (service::check_view), the user's own scope.
    pub(super) fn ingest_calls(
        &self,
        tenant: &TenantId,
        user: &UserId,
        inputs: &[NewEvent],
        indices: &[usize],
    ) -> Result<Vec<CallScopes>> {
        let calls = org_calls(inputs, indices)?;
        if calls.is_empty() && self.has_own_budgets(tenant, user) {
            return Ok(vec![CallScopes::user_only(user.clone())]);
        }
        Ok(calls)
    }

    /// The read before one user's write when the events name an org: per call one view
    /// (the user's state, picked at `now` as `get_user_limits` does; the org's
    /// subscription into `org_plans`; each named scope's budgets into `listed`).
    pub(super) async fn read_ingest_views(
        &self,
        tenant: &TenantId,
        calls: &[CallScopes],
        now: DateTime<Utc>,
        org_plans: &mut OrgPlans,
        listed: &mut ListedBudgets,
    ) -> Result<UserUsage> {
        let mut user = None;
        for call in calls {
            let view = self
                .store
                .read_view_part(tenant, call, ViewPart::Definitions, &|s| {
                    period_start_at(s, now)
                })
                .await?;
            if let Some(org) = call.org() {
                if !org_plans.contains_key(org) {
                    let plan = match view.org_subscription {
                        Some(s) if s.status.is_active() => Some(OrgPlan {
                            plan: self.plan_of(tenant, Some(&s)).await?,
                            subscription: s,
                        }),
                        _ => None,
                    };
                    org_plans.insert(org.clone(), plan);
                }
            }
            for scope in call.scopes() {
                if let std::collections::btree_map::Entry::Vacant(slot) = listed.entry(scope) {
                    let of_scope = view
                        .budgets
                        .iter()
                        .filter(|b| &b.scope == slot.key())
                        .cloned()
                        .collect();
                    slot.insert(of_scope);
                }
            }
            if call.org().is_none() {
                self.note_own_budgets(tenant, call.user(), view.user.user_budgets);
            }
            user.get_or_insert(view.user);
        }
        user.ok_or_else(|| {
            tracing::error!("an ingest view read without a call");
            Error::Internal
        })
    }

    /// The budget alerts after one user's write (events naming an org, or a user with
    /// budgets of their own): the counters they judge and the user's state in one read
    /// (`call`'s user, the state picked at `plan_period`). Returns that state for the plan
    /// alerts of `plan_period`; `None` when the read failed (logged; the plan alerts then
    /// read).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn budget_alerts_after_write(
        &self,
        tenant: &TenantId,
        call: &CallScopes,
        sub: Option<&Subscription>,
        user_budgets: bool,
        events: &[UsageEvent],
        plan_period: Option<DateTime<Utc>>,
        org_plans: &mut OrgPlans,
        listed: &mut ListedBudgets,
    ) -> Option<(DateTime<Utc>, UserUsage)> {
        let due = match self
            .budget_alerts_due(tenant, sub, user_budgets, events, org_plans, listed)
            .await
        {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, user = %call.user(), "could not evaluate budget alerts after ingest");
                DueBudgetAlerts::default()
            }
        };
        let keys = due.counters();
        let now = self.now();
        let view = match self
            .store
            .read_view_part(tenant, call, ViewPart::Counters(keys), &|s| {
                plan_period.unwrap_or_else(|| period_start_at(s, now))
            })
            .await
        {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, user = %call.user(), "could not evaluate budget alerts after ingest");
                return None;
            }
        };
        // (A `period` budget on the user's own scope counts on the plan usage: read apart,
        // as before.)
        if let Err(e) = self
            .raise_due_budget_alerts(tenant, due, view.counters)
            .await
        {
            tracing::warn!(error = %e, user = %call.user(), "could not evaluate budget alerts after ingest");
        }
        plan_period.map(|p| (p, view.user))
    }
}
