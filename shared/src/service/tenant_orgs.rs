//! The admin's list of the tenant's orgs (`GET /admin/orgs`, SPEC §14): a page of orgs in
//! org-id order, each with its plan when subscribed and this period's pooled usage (the
//! counter `GET /org/{org_id}/usage` reads). One store list and one counter read a page,
//! whatever the number of orgs (store::TenantOrgsStore).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;

use super::dashboard::PeriodView;
use super::Plan;
use super::{period_at, Caller, Meter, Result};
use crate::domain::{OrgId, PlanName, SubscriptionStatus};
use crate::limits::amounts::percent_number;
use crate::limits::{self, UsageStatus};
use crate::store::org_period_counter;

/// Default and largest page of `GET /admin/orgs`.
pub const DEFAULT_ORGS_PAGE: usize = 50;
pub const MAX_ORGS_PAGE: usize = 100;

/// One org of the tenant with this period's pooled usage.
#[derive(Debug, Clone, Serialize)]
pub struct TenantOrgView {
    pub org_id: OrgId,
    /// The plan of its active subscription; `null` without one (no plan limits).
    pub plan: Option<PlanName>,
    /// Its subscription's status, `null` without a subscription record.
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
}

/// `GET /admin/orgs`: a page of the tenant's orgs in org-id order.
#[derive(Debug, Clone, Serialize)]
pub struct TenantOrgsView {
    pub orgs: Vec<TenantOrgView>,
    /// Pass as `cursor` for the next page; `null` after the last.
    pub next_cursor: Option<String>,
    pub as_of: DateTime<Utc>,
}

impl Meter {
    /// GET /admin/orgs: up to `limit` orgs after `after` — every org with a subscription
    /// record or usage lately — each with this period's pooled usage (the org's period:
    /// its active subscription's, else the calendar month).
    pub async fn tenant_orgs(
        &self,
        caller: &Caller,
        after: Option<&OrgId>,
        limit: usize,
    ) -> Result<TenantOrgsView> {
        let now = self.now();
        let tenant = &caller.tenant;
        let page = self.store.list_tenant_orgs(tenant, after, limit).await?;
        let mut plans: HashMap<PlanName, Plan> = HashMap::new();
        let mut rows = Vec::with_capacity(page.items.len());
        for o in page.items {
            let active = o.subscription.as_ref().filter(|s| s.status.is_active());
            let period = period_at(active, now)?;
            let plan = match active {
                Some(sub) => match plans.get(&sub.plan) {
                    Some(p) => Some(p.clone()),
                    None => {
                        let p = self.plan_of(tenant, Some(sub)).await?;
                        plans.insert(sub.plan.clone(), p.clone());
                        Some(p)
                    }
                },
                None => None,
            };
            let status = o.subscription.as_ref().map(|s| s.status);
            rows.push((o.org, plan, status, period));
        }
        let keys: Vec<_> = rows
            .iter()
            .map(|(org, _, _, period)| org_period_counter(org, period.start))
            .collect();
        let usages = if keys.is_empty() {
            Vec::new()
        } else {
            self.store.get_budget_counters(tenant, &keys).await?
        };
        let mut orgs = Vec::with_capacity(rows.len());
        for (i, (org, plan, status, period)) in rows.into_iter().enumerate() {
            let usage = usages.get(i).cloned().unwrap_or_default();
            let mut t = crate::usage::Tally::default();
            let mut unpriced = 0u64;
            for u in usage.by_provider.values() {
                t.calls = t.calls.saturating_add(u.recorded.calls);
                t.tokens = t.tokens.saturating_add(u.recorded.tokens);
                t.cost_usd += u.recorded.cost_usd;
                unpriced = unpriced.saturating_add(u.unpriced_calls);
            }
            let limits = plan.as_ref().map(|p| p.limits.clone()).unwrap_or_default();
            orgs.push(TenantOrgView {
                org_id: org,
                plan: plan.map(|p| p.name),
                subscription_status: status,
                period: PeriodView::from(&period),
                calls: t.calls,
                tokens: t.tokens,
                cost_usd: t.cost_usd,
                unpriced_calls: unpriced,
                usage_status: limits::usage_status(&limits, &usage),
                max_usage_percentage: limits::percentages(&limits, &usage)
                    .values()
                    .max()
                    .map(|p| percent_number(*p)),
            });
        }
        Ok(TenantOrgsView {
            orgs,
            next_cursor: page.next,
            as_of: now,
        })
    }
}
