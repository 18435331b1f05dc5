//! Ingest's reads when events name orgs or budgets may apply (issue 18, SPEC §12: an event
//! batch is one `TransactWriteItems` per ≤ 100 items plus at most 2 reads).
//!
//! Before the write, one read ([`CheckViewStore::read_definitions`]) of every call a
//! user's events make gives the user's state, each named org's subscription and the
//! budgets of every named scope: nothing else is read for the counter writes. After the
//! write, a part of the check's read ([`CheckViewStore::read_view_part`]) gives the
//! user's state (the plan alerts, and the usage a `period` budget of the user's own
//! counts on) and the counters the budget alerts judge, as they are after the write
//! (other writers included: alerts stay exact under concurrency). The org member
//! directory is noted in the events' own write where the store can
//! (`OrgMembersStore::notes_members_when_recording`).
//!
//! A user whose events name no org reads the definitions of the user's own scope with the
//! state unless this process saw that user without budgets (then the state alone; one
//! found with budgets by it has them listed apart, once). Events of one user that name
//! several orgs, or several teams of an org, read all their definitions in that one
//! request (on DynamoDB one more per 100 keys).
//!
//! [`CheckViewStore::read_definitions`]: crate::store::CheckViewStore::read_definitions
//! [`CheckViewStore::read_view_part`]: crate::store::CheckViewStore::read_view_part

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::budget_alerts::DueBudgetAlerts;
use super::enforce::ListedBudgets;
use super::ingest::NewEvent;
use super::orgs::{OrgPlan, OrgPlans};
use super::{period_start_at, Error, Meter, Result};
use crate::budgets::{CallScopes, CounterKey};
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
    /// The read before one user's write (SPEC §12: one request on DynamoDB). The user's
    /// state, picked at `now` as `get_user_limits` does, with the definitions of every
    /// call the events make ([`org_calls`]: the org's subscription into `org_plans`, each
    /// named scope's budgets into `listed`) or, when they name no org, of the user's own
    /// scope; only the state when this process saw the user without budgets of their own
    /// (a budget put since, found by the state's flag, is then listed apart). Notes in
    /// `view_call` the call to read after the write for the alerts.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn read_before_write(
        &self,
        tenant: &TenantId,
        user: &UserId,
        inputs: &[NewEvent],
        indices: &[usize],
        now: DateTime<Utc>,
        org_plans: &mut OrgPlans,
        listed: &mut ListedBudgets,
        view_call: &mut BTreeMap<UserId, CallScopes>,
    ) -> Result<UserUsage> {
        let calls = org_calls(inputs, indices)?;
        view_call.insert(
            user.clone(),
            calls
                .first()
                .cloned()
                .unwrap_or_else(|| CallScopes::user_only(user.clone())),
        );
        if calls.is_empty() && self.known_own_budgets(tenant, user) == Some(false) {
            let limits = self
                .store
                .get_user_limits(tenant, user, &|s| period_start_at(s, now))
                .await?;
            if limits.user_budgets {
                self.note_own_budgets(tenant, user, true);
            }
            return Ok(limits);
        }
        let defs = self
            .store
            .read_definitions(tenant, user, &calls, &|s| period_start_at(s, now))
            .await?;
        for (org, sub) in defs.org_subscriptions {
            if org_plans.contains_key(&org) {
                continue;
            }
            let plan = match sub {
                Some(s) if s.status.is_active() => Some(OrgPlan {
                    plan: self.plan_of(tenant, Some(&s)).await?,
                    subscription: s,
                }),
                _ => None,
            };
            org_plans.insert(org, plan);
        }
        let own = CallScopes::user_only(user.clone());
        for call in calls.iter().chain(std::iter::once(&own)) {
            for scope in call.scopes() {
                if let std::collections::btree_map::Entry::Vacant(slot) = listed.entry(scope) {
                    let of_scope = defs
                        .budgets
                        .iter()
                        .filter(|b| &b.scope == slot.key())
                        .cloned()
                        .collect();
                    slot.insert(of_scope);
                }
            }
        }
        self.note_own_budgets(tenant, user, defs.user.user_budgets);
        Ok(defs.user)
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
        // A `period` budget on the user's own scope counts on the plan usage: the state
        // just read holds it for its period.
        let mut known = view.counters;
        for c in due.user_period_counters() {
            if let CounterKey::Scope { window_start, .. } = &c {
                if view.user.period_start == Some(*window_start) {
                    known.insert(c, view.user.usage.clone());
                }
            }
        }
        if let Err(e) = self.raise_due_budget_alerts(tenant, due, known).await {
            tracing::warn!(error = %e, user = %call.user(), "could not evaluate budget alerts after ingest");
        }
        plan_period.map(|p| (p, view.user))
    }
}
