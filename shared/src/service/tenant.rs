//! The admin's tenant-wide reads: the tenant's users with their plan and this period's
//! usage, and the tenant's latest alerts.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;

use super::dashboard::PeriodView;
use super::reads::AlertView;
use super::{period_at, period_start_at, Caller, Meter, Result};
use crate::domain::{PlanName, SubscriptionStatus, UserId};
use crate::limits::amounts::percent_number;
use crate::limits::{self, recorded_amount, Metric, UsageStatus};

/// Default and largest page of `GET /admin/users`.
pub const DEFAULT_USERS_PAGE: usize = 50;
pub const MAX_USERS_PAGE: usize = 100;
/// Default and largest `limit` of `GET /admin/alerts`.
pub const DEFAULT_TENANT_ALERTS: usize = 20;
pub const MAX_TENANT_ALERTS: usize = 100;

/// One user of the tenant with this period's recorded usage.
#[derive(Debug, Clone, Serialize)]
pub struct TenantUserView {
    pub user_id: UserId,
    pub plan: PlanName,
    /// `null`: no subscription (the tenant's free plan).
    pub subscription_status: Option<SubscriptionStatus>,
    pub period: PeriodView,
    pub calls: u64,
    pub tokens: u64,
    #[serde(serialize_with = "crate::domain::money::normalized")]
    pub cost_usd: Decimal,
    pub unpriced_calls: u64,
    pub usage_status: UsageStatus,
    /// The highest percentage of any limit of the plan (two decimals); `null` without limits.
    pub max_usage_percentage: Option<f64>,
    pub unread_alerts: u64,
}

/// `GET /admin/users`: a page of the tenant's users in user-id order.
#[derive(Debug, Clone, Serialize)]
pub struct TenantUsersView {
    pub users: Vec<TenantUserView>,
    /// Pass as `cursor` for the next page; `null` after the last.
    pub next_cursor: Option<String>,
    pub as_of: DateTime<Utc>,
}

/// `GET /admin/alerts`.
#[derive(Debug, Clone, Serialize)]
pub struct TenantAlertsView {
    pub alerts: Vec<AlertView>,
}

impl Meter {
    /// GET /admin/users: up to `limit` users after `after`, each with plan, subscription
    /// status and this period's recorded usage (holds excluded, as on the dashboard).
    pub async fn tenant_users(
        &self,
        caller: &Caller,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<TenantUsersView> {
        let now = self.now();
        let pick = |sub: Option<&crate::domain::Subscription>| period_start_at(sub, now);
        let page = self
            .store
            .list_tenant_users(&caller.tenant, after, limit, &pick)
            .await?;
        let mut users = Vec::with_capacity(page.items.len());
        for u in page.items {
            let sub = u.usage.subscription.as_ref();
            let plan = self.plan_of(&caller.tenant, sub).await?;
            let period = period_at(sub, now)?;
            let usage = u.usage.usage.recorded_only();
            let total = |m: &Metric| recorded_amount(m, &usage);
            let max_pct = limits::percentages(&plan.limits, &usage)
                .values()
                .max()
                .map(|p| percent_number(*p));
            users.push(TenantUserView {
                plan: plan.name.clone(),
                subscription_status: sub.map(|s| s.status),
                period: PeriodView::from(&period),
                calls: u64::try_from(total(&Metric::Calls(None))).unwrap_or(u64::MAX),
                tokens: u64::try_from(total(&Metric::Tokens(None))).unwrap_or(u64::MAX),
                cost_usd: total(&Metric::CostUsd),
                unpriced_calls: usage
                    .by_provider
                    .values()
                    .map(|p| p.unpriced_calls)
                    .fold(0u64, u64::saturating_add),
                usage_status: limits::usage_status(&plan.limits, &usage),
                max_usage_percentage: max_pct,
                unread_alerts: u.unread_alerts,
                user_id: u.user,
            });
        }
        Ok(TenantUsersView {
            users,
            next_cursor: page.next,
            as_of: now,
        })
    }

    /// GET /admin/alerts: the tenant's newest alerts, of every user.
    pub async fn tenant_alerts(&self, caller: &Caller, limit: usize) -> Result<TenantAlertsView> {
        let alerts = self.store.tenant_alerts(&caller.tenant, limit).await?;
        Ok(TenantAlertsView {
            alerts: alerts.iter().map(AlertView::from).collect(),
        })
    }
}
