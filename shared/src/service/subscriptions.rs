//! Subscriptions (read and change), plan upserts and a tenant's own price versions. The
//! rules of a change live in [`crate::subscriptions`]; this module reads, writes and
//! re-arms alerts around them.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;

use super::dashboard::PeriodView;
use super::reads::PlanView;
use super::{period_at, period_start_at, Caller, Error, FieldError, Meter, Result};
use crate::domain::{PlanName, Proration, Subscription, SubscriptionStatus, UserId};
use crate::limits::{projected_cost, recorded_amount, Metric, MetricAmounts, Plan};
use crate::periods::{Anchor, BillingCycle};
use crate::pricing::{Catalog, PriceVersion};
use crate::store::StoreError;
use crate::subscriptions::{apply_change, rearm_keys, ChangeError, ChangeKind, SubscriptionChange};

/// How often a subscription write that lost a version race is re-read and re-applied.
pub const WRITE_ATTEMPTS: usize = 3;

impl From<ChangeError> for Error {
    fn from(e: ChangeError) -> Self {
        Error::invalid(e.field(), e.code(), e.to_string())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProrationView {
    pub period_start: DateTime<Utc>,
    pub at: DateTime<Utc>,
    pub from_plan: PlanName,
    pub to_plan: PlanName,
    #[serde(serialize_with = "crate::domain::money::exact")]
    pub amount_usd: Decimal,
}

impl From<&Proration> for ProrationView {
    fn from(p: &Proration) -> Self {
        ProrationView {
            period_start: p.period_start,
            at: p.at,
            from_plan: p.from_plan.clone(),
            to_plan: p.to_plan.clone(),
            amount_usd: p.amount_usd,
        }
    }
}

/// A stored subscription as clients see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubscriptionInfo {
    pub plan: PlanName,
    pub billing_cycle: BillingCycle,
    pub anchor: Anchor,
    pub status: SubscriptionStatus,
    pub auto_renew: bool,
    pub started_at: DateTime<Utc>,
    pub current_period: PeriodView,
    pub pending_plan: Option<PlanName>,
    pub version: u64,
    pub updated_at: DateTime<Utc>,
}

impl From<&Subscription> for SubscriptionInfo {
    fn from(s: &Subscription) -> Self {
        SubscriptionInfo {
            plan: s.plan.clone(),
            billing_cycle: s.cycle,
            anchor: s.anchor,
            status: s.status,
            auto_renew: s.auto_renew,
            started_at: s.started_at,
            current_period: (&s.current_period).into(),
            pending_plan: s.pending_plan.clone(),
            version: s.version,
            updated_at: s.updated_at,
        }
    }
}

/// A user's subscription (null when none: the tenant's `free` plan on calendar months),
/// its plan and limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubscriptionView {
    pub user_id: UserId,
    pub subscription: Option<SubscriptionInfo>,
    pub plan: PlanView,
    pub limits: MetricAmounts,
    pub status: SubscriptionStatus,
    pub current_period: PeriodView,
    pub pending_plan: Option<PlanName>,
    pub prorations: Vec<ProrationView>,
}

/// What a subscription write did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubscriptionWritten {
    #[serde(flatten)]
    pub view: SubscriptionView,
    pub change: ChangeKind,
    /// Once-only alert keys of the period that may fire again.
    pub rearmed_alerts: Vec<String>,
}

/// What a plan upsert did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanWritten {
    pub plan: PlanView,
    pub created: bool,
}

/// What adding price versions did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PricesAdded {
    pub added: usize,
    pub ids: Vec<String>,
}

impl Meter {
    fn subscription_view(
        &self,
        user: &UserId,
        sub: Option<&Subscription>,
        plan: &Plan,
        now: DateTime<Utc>,
    ) -> Result<SubscriptionView> {
        let period = period_at(sub, now)?;
        Ok(SubscriptionView {
            user_id: user.clone(),
            subscription: sub.map(SubscriptionInfo::from),
            plan: plan.into(),
            limits: MetricAmounts(plan.limits.0.clone()),
            status: sub.map_or(SubscriptionStatus::Active, |s| s.status),
            current_period: (&period).into(),
            pending_plan: sub.and_then(|s| s.pending_plan.clone()),
            prorations: sub.map_or_else(Vec::new, |s| {
                s.prorations.iter().map(ProrationView::from).collect()
            }),
        })
    }

    /// The user's subscription, plan and limits.
    pub async fn get_subscription_view(
        &self,
        caller: &Caller,
        user: &UserId,
    ) -> Result<SubscriptionView> {
        let now = self.now();
        let sub = self.store.get_subscription(&caller.tenant, user).await?;
        let plan = self.plan_of(&caller.tenant, sub.as_ref()).await?;
        self.subscription_view(user, sub.as_ref(), &plan, now)
    }

    /// Creates or changes a subscription ([`crate::subscriptions`]). A write that loses a
    /// version race is re-read and re-applied, up to [`WRITE_ATTEMPTS`] times, then is a
    /// [`Error::Conflict`].
    pub async fn put_subscription(
        &self,
        caller: &Caller,
        user: &UserId,
        input: &SubscriptionChange,
    ) -> Result<SubscriptionWritten> {
        let tenant = &caller.tenant;
        let plans = self.plans(tenant).await?;
        for _ in 0..WRITE_ATTEMPTS {
            let now = self.now();
            let state = self
                .store
                .get_user_limits(tenant, user, &|s| period_start_at(s, now))
                .await?;
            let old = state.subscription.as_ref();
            let (sub, kind) = apply_change(tenant, user, old, input, &plans, now)?;
            match self
                .store
                .put_subscription(&sub, old.map(|s| s.version))
                .await
            {
                Ok(()) => {}
                Err(StoreError::VersionConflict) => continue,
                Err(e) => return Err(e.into()),
            }
            let plan = self.plan_of(tenant, Some(&sub)).await?;
            let mut rearmed = Vec::new();
            if kind.changes_limits() {
                let period = period_at(Some(&sub), now)?;
                let cost = recorded_amount(&Metric::CostUsd, &state.usage);
                let projected = projected_cost(cost, &period, now);
                rearmed = rearm_keys(&state.fired_alerts, &plan, &state.usage, projected);
                if !rearmed.is_empty() {
                    self.store
                        .rearm_alerts(tenant, user, period.start, &rearmed)
                        .await?;
                }
            }
            tracing::info!(tenant = %tenant, user = %user, change = kind.as_str(), plan = %sub.plan, "subscription written");
            return Ok(SubscriptionWritten {
                view: self.subscription_view(user, Some(&sub), &plan, now)?,
                change: kind,
                rearmed_alerts: rearmed,
            });
        }
        Err(Error::Conflict("the subscription"))
    }

    /// Inserts or replaces one of the tenant's plans.
    pub async fn put_plan(&self, caller: &Caller, plan: &Plan) -> Result<PlanWritten> {
        let existed = self
            .store
            .get_plan(&caller.tenant, &plan.name)
            .await?
            .is_some();
        self.store.put_plan(&caller.tenant, plan).await?;
        self.forget_plans(&caller.tenant);
        Ok(PlanWritten {
            plan: plan.into(),
            created: !existed,
        })
    }

    /// Adds the tenant's own price versions (replacing any of the same id),
    /// after checking that they build a catalog with the tenant's other versions and merge
    /// over the shared catalog.
    pub async fn put_prices(
        &self,
        caller: &Caller,
        versions: Vec<PriceVersion>,
    ) -> Result<PricesAdded> {
        let tenant = &caller.tenant;
        let new_ids: BTreeSet<&str> = versions.iter().map(|v| v.id.as_str()).collect();
        if new_ids.len() != versions.len() {
            return Err(Error::invalid(
                "versions",
                "duplicate_id",
                "a version id appears twice in this request",
            ));
        }
        let mut own: Vec<PriceVersion> = Vec::new();
        for raw in self.store.list_price_versions(Some(tenant)).await? {
            match serde_json::from_value::<PriceVersion>(raw) {
                Ok(v) if !new_ids.contains(v.id.as_str()) => own.push(v),
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %e, "skipping a stored price version that does not parse")
                }
            }
        }
        own.extend(versions.iter().cloned());
        let shared = self.stored_catalog(None).await?;
        Catalog::from_versions(own)
            .and_then(|c| c.merged_over(&shared))
            .map_err(|e| {
                Error::Invalid(vec![FieldError::new("versions", e.code(), e.to_string())])
            })?;
        for v in &versions {
            let json = serde_json::to_value(v).map_err(|e| {
                tracing::error!(error = %e, "a price version does not serialize");
                Error::Internal
            })?;
            self.store
                .put_price_version(Some(tenant), &v.id, &json)
                .await?;
        }
        self.forget_catalog(Some(tenant));
        Ok(PricesAdded {
            added: versions.len(),
            ids: versions.iter().map(|v| v.id.clone()).collect(),
        })
    }
}
