//! The check's read when budgets may apply (issue 18, SPEC §12: a check is one request).
//!
//! A check naming an org reads, in one store read ([`CheckViewStore`]), the user's
//! state, the wallet figures (tenants with prepaid plans), the org's subscription, the
//! budgets of every named scope and their counters; the limits and the counters that
//! apply (window starts, the org's billing period) are computed from what was read. A
//! check naming no org reads the same view of the user's own scope (state included, one
//! request) unless this process remembers the user without budgets of their own
//! ([`Meter::known_own_budgets`], kept by checks and event batches): then it reads the
//! user's state alone, as before budgets. So the first check of a user in a process reads
//! the user's scope with the state (one request, one item more), and later ones read
//! the state alone or the view, as the user was found. The memory only chooses what to
//! read: the decision is on what was read. A user remembered without budgets who got one
//! since is found by the state's flag (`user_budgets`) and read again (a second request,
//! once); a user whose budgets were deleted reads their view once more and is then
//! remembered without.
//!
//! [`CheckViewStore`]: crate::store::CheckViewStore

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::check::CheckRequest;
use super::orgs::OrgPlan;
use super::{period_start_at, Error, Meter, Result};
use crate::budgets::{budget_limits, Applicable, Budget, CallScopes, CounterKey, Scope, Window};
use crate::domain::{Subscription, TenantId, UserId};
use crate::store::{CheckView, CreditState, UserUsage};
use crate::subscriptions::schedule_of;
use crate::usage::PeriodUsage;

/// The counters of the limits a view applies at `at`: the org's plan counter (an active
/// org subscription) and every named scope's budget counters. Names nothing for a
/// timestamp out of range (the limits then fail with the error after the read).
fn view_counters(
    call: &CallScopes,
    user: &UserUsage,
    org_sub: Option<&Subscription>,
    budgets: &[Budget],
    at: DateTime<Utc>,
) -> Vec<CounterKey> {
    let active = org_sub.filter(|s| s.status.is_active());
    let mut keys = Vec::new();
    if let (Some(org), Some(s)) = (call.org(), active) {
        if let Ok(p) = Window::Period.containing(at, &schedule_of(Some(s))) {
            keys.push(CounterKey::Scope {
                scope: Scope::Org {
                    org_id: org.clone(),
                },
                window: Window::Period,
                window_start: p.start,
            });
        }
    }
    if let Ok(limits) = budget_limits(
        budgets,
        call,
        &schedule_of(user.subscription.as_ref()),
        &schedule_of(active),
        at,
    ) {
        keys.extend(limits.into_iter().map(|a| a.counter));
    }
    keys.sort();
    keys.dedup();
    keys
}

/// What the check's read gave beside the user's state, for the decision over budgets.
pub(super) struct ViewRead {
    org_subscription: Option<Subscription>,
    budgets: Vec<Budget>,
    counters: BTreeMap<CounterKey, PeriodUsage>,
}

impl Meter {
    /// Whether this process saw `user`'s own scope holding budgets, by a check or an
    /// event batch (within [`BUDGET_USERS_TTL`](super::BUDGET_USERS_TTL)); `None` when it
    /// did not see the user.
    pub(super) fn known_own_budgets(&self, tenant: &TenantId, user: &UserId) -> Option<bool> {
        self.own_budgets
            .get(&(tenant.clone(), user.clone()))
            .map(|has| *has)
    }

    /// Remembers whether `user`'s own scope holds budgets, as just read.
    pub(super) fn note_own_budgets(&self, tenant: &TenantId, user: &UserId, has: bool) {
        self.own_budgets.put((tenant.clone(), user.clone()), has);
    }

    /// The view of `call` at `now`, in one store read.
    async fn read_view(
        &self,
        tenant: &TenantId,
        call: &CallScopes,
        with_credit: bool,
        now: DateTime<Utc>,
    ) -> Result<CheckView> {
        let pick = |sub: Option<&Subscription>| period_start_at(sub, now);
        let counters = |u: &UserUsage, org_sub: Option<&Subscription>, budgets: &[Budget]| {
            view_counters(call, u, org_sub, budgets, now)
        };
        Ok(self
            .store
            .read_check_view(tenant, call, with_credit, &pick, &counters)
            .await?)
    }

    /// What a check reads first: the user's limits and the wallet figures (tenants with
    /// prepaid plans) and, for a call naming an org, the org's subscription, the budgets
    /// and their counters with them (one request on DynamoDB).
    pub(super) async fn check_read_scoped(
        &self,
        tenant: &TenantId,
        req: &CheckRequest,
        now: DateTime<Utc>,
    ) -> Result<(
        UserUsage,
        Option<CreditState>,
        Option<CreditState>,
        Option<ViewRead>,
    )> {
        if req.org_id.is_none() && self.known_own_budgets(tenant, &req.user) == Some(false) {
            let (usage, credit) = self
                .check_read(tenant, &req.user, &|sub| period_start_at(sub, now))
                .await?;
            if usage.user_budgets {
                self.note_own_budgets(tenant, &req.user, true);
            }
            return Ok((usage, credit, None, None));
        }
        let call = super::enforce::call_scopes(req)?;
        let with_credit = self.tenant_sells_prepaid(tenant).await?;
        let view = self.read_view(tenant, &call, with_credit, now).await?;
        if req.org_id.is_none() {
            self.note_own_budgets(tenant, &req.user, view.user.user_budgets);
        }
        Ok((
            view.user,
            view.credit,
            view.org_credit,
            Some(ViewRead {
                org_subscription: view.org_subscription,
                budgets: view.budgets,
                counters: view.counters,
            }),
        ))
    }

    /// The limits beyond the user's plan that apply to `call` at `at` — the org's plan
    /// when the org has an active subscription, then every budget of the named scopes in
    /// its current window — and the usage of their counters as read. `read`: the view
    /// read with the user's state (a call naming an org); `None` reads it now (a call
    /// naming no org whose user has budgets of their own).
    pub(super) async fn limits_of_call(
        &self,
        tenant: &TenantId,
        call: &CallScopes,
        sub: Option<&Subscription>,
        read: Option<ViewRead>,
        at: DateTime<Utc>,
    ) -> Result<(Vec<Applicable>, BTreeMap<CounterKey, PeriodUsage>)> {
        let read = match read {
            Some(r) => r,
            None => {
                let view = self.read_view(tenant, call, false, at).await?;
                ViewRead {
                    org_subscription: view.org_subscription,
                    budgets: view.budgets,
                    counters: view.counters,
                }
            }
        };
        let org_plan = match (call.org(), read.org_subscription) {
            (Some(_), Some(s)) if s.status.is_active() => Some(OrgPlan {
                plan: self.plan_of(tenant, Some(&s)).await?,
                subscription: s,
            }),
            _ => None,
        };
        let mut out = Vec::new();
        if let (Some(org), Some(p)) = (call.org(), &org_plan) {
            out.push(p.limit(org, at)?);
        }
        if read.budgets.is_empty() {
            return Ok((out, read.counters));
        }
        let org_schedule = Self::org_schedule(org_plan.as_ref());
        out.extend(
            budget_limits(&read.budgets, call, &schedule_of(sub), &org_schedule, at)
                .map_err(|e| Error::invalid("timestamp", "out_of_range", e.to_string()))?,
        );
        Ok((out, read.counters))
    }
}
