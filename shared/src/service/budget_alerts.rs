//! Budget alerts (SPEC §10): once per (budget, window, metric, threshold), for soft and
//! hard budgets alike, raised after ingest recorded usage, stored once (the alert store's
//! once-only key, [`crate::alerts::budget_threshold_key`]) and published through the
//! outbox (`type: alert`, attribute `budget_id`).
//!
//! Who owns the alert: a budget on the user's own scope alerts that user, an `each_member`
//! budget of an org or team alerts the member whose usage reached the threshold, and a
//! budget on the pooled usage of an org or of one of its teams alerts the org (no user
//! owns that usage): `Alert::org` set, listed by `GET /org/{org_id}/alerts`
//! ([`Meter::org_alerts`]), published with an `org_id` attribute in place of `user_id`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::{Error, Meter, Result};
use crate::alerts::{budget_alert, AlertScope};
use crate::budgets::counting::is_user_period_counter;
use crate::budgets::{
    budget_limits, Applicable, BudgetOrigin, CallScopes, CounterKey, LimitSource, Scope,
};
use crate::domain::{BudgetId, OrgId, Subscription, TenantId, UsageEvent, UserId};
use crate::limits::{reached, recorded_amount};
use crate::subscriptions::schedule_of;
use crate::usage::PeriodUsage;

/// How many expired budget alerts one aggregation pass deletes.
const EXPIRE_PAGE: usize = 500;

/// A budget window to evaluate, and whom it alerts.
struct Due {
    owner: Owner,
    limit: Applicable,
    thresholds: Vec<u8>,
    origin: BudgetOrigin,
}

/// Whom a budget alert belongs to.
#[derive(Clone)]
enum Owner {
    User(UserId),
    /// The pooled usage of an org or of one of its teams.
    Org(OrgId),
}

/// The id of a budget alert: derived from its owner (`Alert::owner_key`) and once-only
/// key, so that racing writers of one alert collide on it (`store::BudgetAlertStore`).
fn budget_alert_id(owner: &str, key: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(owner.as_bytes());
    h.update(b"\0");
    h.update(key.as_bytes());
    format!("alert_b_{}", &hex::encode(h.finalize())[..32])
}

/// The org id as an alert's `user` (same charset).
fn org_as_user(org: &OrgId) -> Result<UserId> {
    UserId::parse(org.as_str()).map_err(|e| {
        tracing::error!(error = %e, "an org id is not a valid alert owner");
        Error::Internal
    })
}

/// The budget windows some events call to evaluate, by (budget, counter): each window
/// once, whatever the number of events.
#[derive(Default)]
pub(super) struct DueBudgetAlerts(BTreeMap<(BudgetId, CounterKey), Due>);

impl DueBudgetAlerts {
    /// The budget counters the evaluation reads (a `period` budget on the user's own
    /// scope counts on the user's plan usage, read apart).
    pub fn counters(&self) -> Vec<CounterKey> {
        self.0
            .keys()
            .map(|(_, c)| c.clone())
            .filter(|c| !is_user_period_counter(c))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect()
    }
}

impl DueBudgetAlerts {
    /// The counters of `period` budgets on the user's own scope (issue 18: ingest takes
    /// their usage from the state it reads after the write, `service::ingest_view`).
    pub fn user_period_counters(&self) -> Vec<CounterKey> {
        self.0
            .keys()
            .map(|(_, c)| c.clone())
            .filter(is_user_period_counter)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect()
    }
}

impl Meter {
    /// The budget windows `events` (one user's) call to evaluate.
    pub(super) async fn budget_alerts_due(
        &self,
        tenant: &TenantId,
        sub: Option<&Subscription>,
        user_budgets: bool,
        events: &[UsageEvent],
        org_plans: &mut super::orgs::OrgPlans,
        listed: &mut super::enforce::ListedBudgets,
    ) -> Result<DueBudgetAlerts> {
        let mut due: BTreeMap<(BudgetId, CounterKey), Due> = BTreeMap::new();
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
                continue;
            }
            let org_plan = match call.org() {
                Some(org) => self.cached_org_plan(tenant, org, org_plans).await?.cloned(),
                None => None,
            };
            let limits = budget_limits(
                &budgets,
                &call,
                &schedule_of(sub),
                &Self::org_schedule(org_plan.as_ref()),
                e.timestamp,
            )
            .map_err(|err| Error::invalid("timestamp", "out_of_range", err.to_string()))?;
            for limit in limits {
                let LimitSource::Budget { budget_id, .. } = &limit.source else {
                    continue;
                };
                let owner = match &limit.counter {
                    CounterKey::Member { user, .. } => Owner::User(user.clone()),
                    CounterKey::Scope {
                        scope: Scope::User { user_id },
                        ..
                    }
                    | CounterKey::PaidElsewhere {
                        scope: Scope::User { user_id },
                        ..
                    } => Owner::User(user_id.clone()),
                    // The pooled usage of an org or team: the org owns the alert.
                    CounterKey::Scope {
                        scope: Scope::Org { org_id } | Scope::Team { org_id, .. },
                        ..
                    }
                    | CounterKey::PaidElsewhere {
                        scope: Scope::Org { org_id } | Scope::Team { org_id, .. },
                        ..
                    } => Owner::Org(org_id.clone()),
                };
                let Some(budget) = budgets.iter().find(|b| &b.id == budget_id) else {
                    continue;
                };
                let origin = BudgetOrigin {
                    scope: budget.scope.clone(),
                    window: limit.window,
                };
                let thresholds = budget.alert_thresholds.clone();
                due.entry((budget_id.clone(), limit.counter.clone()))
                    .or_insert(Due {
                        owner,
                        limit,
                        thresholds,
                        origin,
                    });
            }
        }
        Ok(DueBudgetAlerts(due))
    }

    /// Stores (once) and publishes the alerts of `due`, each judged on its counter as it
    /// is now: `known` holds counters read after the events' write (issue 18, SPEC §12:
    /// ingest reads them with the user's state, `service::ingest_view`); the others are
    /// read here. Returns how many alerts this call stored.
    pub(super) async fn raise_due_budget_alerts(
        &self,
        tenant: &TenantId,
        due: DueBudgetAlerts,
        known: BTreeMap<CounterKey, PeriodUsage>,
    ) -> Result<usize> {
        let now = self.now();
        let due = due.0;
        if due.is_empty() {
            return Ok(0);
        }

        // The counters as they are now: budget counters in one read; a `period` budget on
        // the user's own scope counts on the user's plan usage.
        let keys: Vec<CounterKey> = due
            .keys()
            .map(|(_, c)| c.clone())
            .filter(|c| !is_user_period_counter(c) && !known.contains_key(c))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let read = if keys.is_empty() {
            Vec::new()
        } else {
            self.store.get_budget_counters(tenant, &keys).await?
        };
        let mut usage: BTreeMap<CounterKey, PeriodUsage> = keys.into_iter().zip(read).collect();
        usage.extend(known);
        for (_, counter) in due.keys() {
            if let (
                false,
                CounterKey::Scope {
                    scope: Scope::User { user_id },
                    window_start,
                    ..
                },
            ) = (usage.contains_key(counter), counter)
            {
                let u = self
                    .store
                    .get_period_usage(tenant, user_id, &[*window_start])
                    .await?
                    .into_iter()
                    .next()
                    .unwrap_or_default();
                usage.insert(counter.clone(), u);
            }
        }

        let mut raised = 0;
        for ((budget_id, counter), d) in &due {
            let Some(u) = usage.get(counter) else {
                continue;
            };
            // An org's alert holds the org id as its user (same charset), as an org's
            // subscription record does; `Alert::org` says whose it is.
            let (user, org) = match &d.owner {
                Owner::User(u) => (u.clone(), None),
                Owner::Org(o) => (org_as_user(o)?, Some(o.clone())),
            };
            let scope = AlertScope {
                tenant,
                user: &user,
                period_start: d.limit.period.start,
                now,
            };
            for (metric, limit) in &d.limit.limits.0 {
                let used = recorded_amount(metric, u);
                for &t in &d.thresholds {
                    if !reached(used, *limit, t) {
                        continue;
                    }
                    let mut alert = budget_alert(
                        scope,
                        budget_id,
                        d.limit.window.as_str(),
                        metric,
                        t,
                        used,
                        *limit,
                    );
                    alert.org = org.clone();
                    alert.budget = Some(d.origin.clone());
                    alert.id = budget_alert_id(&alert.owner_key(), &alert.key);
                    if self.store.create_budget_alert_once(&alert).await? {
                        raised += 1;
                        self.deliver(&alert).await;
                    }
                }
            }
        }
        Ok(raised)
    }

    /// One aggregation step: deletes the published budget alerts whose retention ended by
    /// `now` (`alerts::retain_until`: alerts of `minute` to `week` budgets, 30 days after
    /// they were raised), each once, with their unread counts. Returns how many this pass
    /// deleted, and whether it saw the end of them (otherwise the next pass goes on).
    pub(super) async fn delete_expired_alerts(&self, now: DateTime<Utc>) -> Result<(usize, bool)> {
        let due = self.store.expired_alerts(now, EXPIRE_PAGE).await?;
        let mut deleted = 0;
        for alert in &due {
            if self.store.delete_expired_alert(alert).await? {
                deleted += 1;
            }
        }
        Ok((deleted, due.len() < EXPIRE_PAGE))
    }
}
