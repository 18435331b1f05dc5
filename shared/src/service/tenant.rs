//! The admin's tenant-wide reads (SPEC §14): the tenant's users with their plan and this
//! period's usage, and the tenant's latest alerts.

use chrono::{DateTime, Utc};
use rust_decimal::prelude::ToPrimitive as _;
use serde::Serialize;

use super::check::status_name;
use super::dashboard::recorded_only;
use super::outbox::recorded_amount;
use super::{period_at, period_start_at, Caller, Meter};
use crate::domain::{Alert, PlanName, Severity, UserId};
use crate::http::ApiError;
use crate::limits::{self, Metric, UsageStatus};
use crate::periods::Period;

/// Default and largest page of `GET /admin/users`.
pub const DEFAULT_USERS_PAGE: usize = 50;
pub const MAX_USERS_PAGE: usize = 100;
/// Default and largest `limit` of `GET /admin/alerts`.
pub const DEFAULT_TENANT_ALERTS: usize = 20;
pub const MAX_TENANT_ALERTS: usize = 100;

#[derive(Debug, Clone, Serialize)]
pub struct PeriodView {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub name: String,
}

impl From<&Period> for PeriodView {
    fn from(p: &Period) -> Self {
        Self {
            start: p.start,
            end: p.end,
            name: p.name(),
        }
    }
}

/// One user of the tenant with this period's recorded usage.
#[derive(Debug, Clone, Serialize)]
pub struct TenantUserView {
    pub user_id: UserId,
    pub plan: PlanName,
    /// `null`: no subscription (the tenant's free plan).
    pub subscription_status: Option<&'static str>,
    pub period: PeriodView,
    pub calls: u64,
    pub tokens: u64,
    /// Exact decimal string.
    pub cost_usd: String,
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

/// An alert as the admin view lists it (the fields of `GET /alerts/{user_id}`).
#[derive(Debug, Clone, Serialize)]
pub struct AlertView {
    pub id: String,
    pub user_id: UserId,
    pub period: String,
    pub key: String,
    pub metric: Option<String>,
    pub threshold: Option<u8>,
    pub severity: Severity,
    pub title: String,
    pub message: String,
    pub created_at: DateTime<Utc>,
    pub read: bool,
}

impl From<&Alert> for AlertView {
    fn from(a: &Alert) -> Self {
        Self {
            id: a.id.clone(),
            user_id: a.user.clone(),
            period: a.period_start.date_naive().to_string(),
            key: a.key.clone(),
            metric: a.metric.clone(),
            threshold: a.threshold,
            severity: a.severity,
            title: a.title.clone(),
            message: a.message.clone(),
            created_at: a.created_at,
            read: a.read,
        }
    }
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
    ) -> Result<TenantUsersView, ApiError> {
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
            let usage = recorded_only(&u.usage.usage);
            let total = |m: &Metric| recorded_amount(m, &usage);
            let max_pct = limits::percentages(&plan.limits, &usage)
                .values()
                .max()
                .map(|p| p.round_dp(2).to_f64().unwrap_or(0.0));
            users.push(TenantUserView {
                plan: plan.name.clone(),
                subscription_status: sub.map(|s| status_name(s.status)),
                period: PeriodView::from(&period),
                calls: u64::try_from(total(&Metric::Calls(None))).unwrap_or(u64::MAX),
                tokens: u64::try_from(total(&Metric::Tokens(None))).unwrap_or(u64::MAX),
                cost_usd: total(&Metric::CostUsd).normalize().to_string(),
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
    pub async fn tenant_alerts(
        &self,
        caller: &Caller,
        limit: usize,
    ) -> Result<TenantAlertsView, ApiError> {
        let alerts = self.store.tenant_alerts(&caller.tenant, limit).await?;
        Ok(TenantAlertsView {
            alerts: alerts.iter().map(AlertView::from).collect(),
        })
    }
}
