//! Organisation subscriptions (SPEC §10): read and change an org's subscription with the
//! rules of a user's ([`crate::subscriptions::apply_change`]), the org's invoices, and
//! what the check and ingest need of it (the org's plan when it has an active
//! subscription, and the org's period schedule).
//!
//! The org's plan counts over the org's pooled usage: every call naming the org, on the
//! budget counter of the org scope with window `period` (see `budgets::applicable`).

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::dashboard::{InvoiceView, PeriodView};
use super::reads::PlanView;
use super::subscriptions::{ProrationView, SubscriptionInfo, WRITE_ATTEMPTS};
use super::{Caller, Error, Meter, Result};
use crate::budgets::{Applicable, CounterKey, LimitSource, Mode, Scope, Window};
use crate::domain::{OrgId, PlanName, Subscription, SubscriptionStatus, TenantId, UserId};
use crate::limits::{MetricAmounts, Plan};
use crate::periods::Schedule;
use crate::store::StoreError;
use crate::subscriptions::{apply_change, schedule_of, ChangeKind, SubscriptionChange};

/// An org's subscription (null when none: no org plan applies, members are on their own
/// plans), its plan and limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrgSubscriptionView {
    pub org_id: OrgId,
    pub subscription: Option<SubscriptionInfo>,
    /// The plan's name and limits, when subscribed.
    pub plan: Option<PlanView>,
    pub limits: Option<MetricAmounts>,
    pub status: Option<SubscriptionStatus>,
    /// The org's billing period (calendar month without a subscription).
    pub current_period: PeriodView,
    pub pending_plan: Option<PlanName>,
    pub prorations: Vec<ProrationView>,
}

/// What an org subscription write did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrgSubscriptionWritten {
    #[serde(flatten)]
    pub view: OrgSubscriptionView,
    pub change: ChangeKind,
}

/// An org's invoices, newest period first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrgBillingView {
    pub org_id: OrgId,
    pub invoices: Vec<InvoiceView>,
}

/// The org's plan as the check and ingest see it.
#[derive(Debug, Clone)]
pub(super) struct OrgPlan {
    pub subscription: Subscription,
    pub plan: Plan,
}

impl OrgPlan {
    /// The org's plan limit at `at`: hard, over the org's billing period, on the org's
    /// pooled `period` counter.
    pub fn limit(&self, org: &OrgId, at: DateTime<Utc>) -> Result<Applicable> {
        let period = Window::Period
            .containing(at, &schedule_of(Some(&self.subscription)))
            .map_err(|e| Error::invalid("timestamp", "out_of_range", e.to_string()))?;
        let scope = Scope::Org {
            org_id: org.clone(),
        };
        Ok(Applicable {
            source: LimitSource::Plan {
                scope: scope.clone(),
                plan: self.plan.name.clone(),
            },
            window: Window::Period,
            period,
            limits: self.plan.limits.clone(),
            mode: Mode::Hard,
            counter: CounterKey::Scope {
                scope,
                window: Window::Period,
                window_start: period.start,
            },
        })
    }
}

/// The orgs' active plans read during one request, by org (`None`: no active subscription).
pub(super) type OrgPlans = std::collections::BTreeMap<OrgId, Option<OrgPlan>>;

/// The org id as the subscription record's `user` (same charset).
fn as_subscriber(org: &OrgId) -> Result<UserId> {
    UserId::parse(org.as_str()).map_err(|e| {
        tracing::error!(error = %e, "an org id is not a valid subscriber id");
        Error::Internal
    })
}

impl Meter {
    /// The org's subscription, if any.
    pub(super) async fn org_subscription(
        &self,
        tenant: &TenantId,
        org: &OrgId,
    ) -> Result<Option<Subscription>> {
        Ok(self.store.get_org_subscription(tenant, org).await?)
    }

    /// The org's plan when it has an active subscription (then it applies to every call
    /// naming the org, and members without their own subscription are not on Free).
    pub(super) async fn active_org_plan(
        &self,
        tenant: &TenantId,
        org: &OrgId,
    ) -> Result<Option<OrgPlan>> {
        match self.org_subscription(tenant, org).await? {
            Some(sub) if sub.status.is_active() => {
                let plan = self.plan_of(tenant, Some(&sub)).await?;
                Ok(Some(OrgPlan {
                    subscription: sub,
                    plan,
                }))
            }
            _ => Ok(None),
        }
    }

    /// [`Meter::active_org_plan`], read once per request into `cache`.
    pub(super) async fn cached_org_plan<'a>(
        &self,
        tenant: &TenantId,
        org: &OrgId,
        cache: &'a mut OrgPlans,
    ) -> Result<Option<&'a OrgPlan>> {
        if !cache.contains_key(org) {
            let p = self.active_org_plan(tenant, org).await?;
            cache.insert(org.clone(), p);
        }
        Ok(cache.get(org).and_then(Option::as_ref))
    }

    /// [`Meter::org_stands_in`] for `user` as ingest knows it (`scoped`: ingest's users
    /// whose events may count in budgets, with their subscription; a user not in it is
    /// not standing in for).
    pub(super) async fn org_stands_in_for_free(
        &self,
        tenant: &TenantId,
        scoped: &std::collections::BTreeMap<UserId, (Option<Subscription>, bool)>,
        user: &UserId,
        events: &[crate::domain::UsageEvent],
        cache: &mut OrgPlans,
    ) -> bool {
        match scoped.get(user) {
            Some((sub, _)) => {
                self.org_stands_in(tenant, sub.as_ref(), events, cache)
                    .await
            }
            None => false,
        }
    }

    /// Whether a user with subscription `sub` is off the Free plan for `events`: the user
    /// has no subscription and every event names an org with an active subscription, so
    /// the org's plan stands in for the Free plan and the Free plan's alerts do not apply.
    /// A failed read answers `false` (alerts as before).
    pub(super) async fn org_stands_in(
        &self,
        tenant: &TenantId,
        sub: Option<&Subscription>,
        events: &[crate::domain::UsageEvent],
        cache: &mut OrgPlans,
    ) -> bool {
        if sub.is_some() || events.is_empty() {
            return false;
        }
        for e in events {
            let Some(org) = &e.org_id else { return false };
            match self.cached_org_plan(tenant, org, cache).await {
                Ok(Some(_)) => {}
                _ => return false,
            }
        }
        true
    }

    /// The schedule of the org's `period` windows: its subscription's, else calendar months.
    pub(super) fn org_schedule(org_plan: Option<&OrgPlan>) -> Schedule {
        schedule_of(org_plan.map(|p| &p.subscription))
    }

    async fn org_view(
        &self,
        tenant: &TenantId,
        org: &OrgId,
        sub: Option<&Subscription>,
        now: DateTime<Utc>,
    ) -> Result<OrgSubscriptionView> {
        let period = super::period_at(sub, now)?;
        let plan = match sub {
            Some(s) => Some(self.plan_of(tenant, Some(s)).await?),
            None => None,
        };
        Ok(OrgSubscriptionView {
            org_id: org.clone(),
            subscription: sub.map(SubscriptionInfo::from),
            plan: plan.as_ref().map(PlanView::from),
            limits: plan.as_ref().map(|p| MetricAmounts(p.limits.0.clone())),
            status: sub.map(|s| s.status),
            current_period: (&period).into(),
            pending_plan: sub.and_then(|s| s.pending_plan.clone()),
            prorations: sub.map_or_else(Vec::new, |s| {
                s.prorations.iter().map(ProrationView::from).collect()
            }),
        })
    }

    /// GET `/org/{org_id}/subscription`.
    pub async fn get_org_subscription_view(
        &self,
        caller: &Caller,
        org: &OrgId,
    ) -> Result<OrgSubscriptionView> {
        let now = self.now();
        let sub = self.org_subscription(&caller.tenant, org).await?;
        self.org_view(&caller.tenant, org, sub.as_ref(), now).await
    }

    /// PUT `/org/{org_id}/subscription`: the same body, rules and proration as a user's.
    /// A write that lost a version race is re-read and re-applied.
    pub async fn put_org_subscription(
        &self,
        caller: &Caller,
        org: &OrgId,
        input: &SubscriptionChange,
    ) -> Result<OrgSubscriptionWritten> {
        let tenant = &caller.tenant;
        let plans = self.plans(tenant).await?;
        let subscriber = as_subscriber(org)?;
        for _ in 0..WRITE_ATTEMPTS {
            let now = self.now();
            let old = self.org_subscription(tenant, org).await?;
            let (sub, kind) = apply_change(tenant, &subscriber, old.as_ref(), input, &plans, now)?;
            match self
                .store
                .put_org_subscription(org, &sub, old.as_ref().map(|s| s.version))
                .await
            {
                Ok(()) => {}
                Err(StoreError::VersionConflict) => continue,
                Err(e) => return Err(e.into()),
            }
            tracing::info!(tenant = %tenant, org = %org, change = kind.as_str(), plan = %sub.plan, "org subscription written");
            return Ok(OrgSubscriptionWritten {
                view: self.org_view(tenant, org, Some(&sub), now).await?,
                change: kind,
            });
        }
        Err(Error::Conflict("the subscription"))
    }

    /// GET `/org/{org_id}/billing`: the org's invoices, newest period first.
    pub async fn org_billing(&self, caller: &Caller, org: &OrgId) -> Result<OrgBillingView> {
        let mut invoices = self.store.list_org_invoices(&caller.tenant, org).await?;
        invoices.sort_by_key(|i| std::cmp::Reverse(i.period.start));
        Ok(OrgBillingView {
            org_id: org.clone(),
            invoices: invoices.iter().map(InvoiceView::from).collect(),
        })
    }
}
