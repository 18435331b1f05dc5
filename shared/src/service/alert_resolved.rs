//! `alert.resolved` (SPEC §10): published once when a scope that a hard limit denied at
//! 100 % is allowed again — a new window or period, a raised limit, a removed or softened
//! budget, an upgrade, a top-up of a prepaid wallet (`service::credit_resolved`) — found
//! by an aggregation pass.
//!
//! Where "denied" is remembered: a denial whose counter was at or past the limit (`used ≥
//! limit`, not merely a call too large for what is left) is noted once per (limit, window,
//! metric, owner) in the budget alert store ([`DeniedLimit`]: SQLite `denied_limits`, a
//! row; DynamoDB an item under `T#<tenant>#DENIED` in the `outbox` index's `DENIED`
//! partition, TTL 30 days after the window's end). Repeated denials of the same window hit
//! the same key (insert-if-absent), so the store holds at most one row per denying limit
//! and window, and each is deleted when resolved: bounded by the limits currently
//! denying. Each aggregation pass reads the oldest ones and resolves those allowed again;
//! the resolution deletes the note and stores the `alert.resolved` alert in one atomic
//! write (of racing passes exactly one does), then publishes it through the outbox.
//!
//! "Allowed again" is judged without reading usage: the window has ended, or the limit
//! in force now (the budget re-read by id; the user's plan now) is gone or above the
//! usage noted at the denial. Who owns it: as budget alerts (a user, or the org for a
//! pooled org or team limit).

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::credit_resolved::CREDITS_WINDOW;
use super::{Error, Meter, Result};
use crate::alerts::RESOLVED_PREFIX;
use crate::budgets::{
    Applicable, BudgetOrigin, CounterKey, Denial as BudgetDenial, LimitSource, Mode, Scope, Window,
};
use crate::domain::{Alert, OrgId, PlanName, Severity, TenantId, UserId};
use crate::limits::Metric;
use crate::periods::Period;
use crate::store::DeniedLimit;

/// How many remembered denials one aggregation pass reads at a time.
const RESOLVE_PAGE: usize = 500;

fn owner_key(user: &UserId, org: Option<&OrgId>) -> String {
    match org {
        Some(o) => format!("org#{o}"),
        None => user.to_string(),
    }
}

fn at_full(used: Decimal, limit: Decimal) -> bool {
    used >= limit
}

fn resolved_alert(d: &DeniedLimit, reason: &str, now: DateTime<Utc>) -> Alert {
    use sha2::{Digest, Sha256};
    let key = format!("{RESOLVED_PREFIX}{}@{}", d.key, d.denied_at.timestamp());
    let mut h = Sha256::new();
    h.update(d.tenant.as_str().as_bytes());
    h.update(b"\0");
    h.update(key.as_bytes());
    let what = match (&d.budget_id, &d.plan) {
        (Some(b), _) => format!("Budget {b}"),
        (None, Some(p)) => format!("Plan {p}"),
        (None, None) if d.window == CREDITS_WINDOW => "The wallet".to_owned(),
        (None, None) => "A limit".to_owned(),
    };
    Alert {
        id: format!("alert_r_{}", &hex::encode(h.finalize())[..32]),
        tenant: d.tenant.clone(),
        user: d.user.clone(),
        period_start: d.window_start,
        key,
        metric: Some(d.metric.clone()),
        threshold: Some(100),
        severity: Severity::Info,
        title: format!("{what} allows {} again", d.metric),
        message: format!(
            "{what} ({}) had denied at {} of {} {}; allowed again: {reason}",
            d.window,
            d.used.normalize(),
            d.limit.normalize(),
            d.metric
        ),
        created_at: now,
        read: false,
        published: false,
        org: d.org.clone(),
        // A budget's resolution names the budget's scope and window, as its alerts do.
        budget: match (&d.budget_id, &d.scope) {
            (Some(_), Some(scope)) => Window::parse(&d.window).map(|window| BudgetOrigin {
                scope: scope.clone(),
                window,
            }),
            _ => None,
        },
    }
}

impl Meter {
    /// Notes a budget check's denial at 100 % (`service::enforce`). Never fails the
    /// check: an error is logged (that denial then resolves without a message).
    pub(super) async fn note_budget_denial(
        &self,
        tenant: &TenantId,
        user: &UserId,
        d: &BudgetDenial,
        limits: &[Applicable],
        now: DateTime<Utc>,
    ) {
        if !at_full(d.used, d.limit) {
            return;
        }
        let member = limits.iter().any(|a| {
            a.source == d.source
                && a.window == d.window
                && matches!(&a.counter, CounterKey::Member { user: u, .. } if u == user)
        });
        let org = match (d.scope(), member) {
            (Scope::User { .. }, _) | (_, true) => None,
            (Scope::Org { org_id } | Scope::Team { org_id, .. }, false) => Some(org_id.clone()),
        };
        let owner = match &org {
            Some(o) => match UserId::parse(o.as_str()) {
                Ok(u) => u,
                Err(_) => return,
            },
            None => user.clone(),
        };
        let (budget_id, plan, source) = match &d.source {
            LimitSource::Budget { budget_id, .. } => {
                (Some(budget_id.clone()), None, format!("budget/{budget_id}"))
            }
            LimitSource::Plan { plan, .. } => (None, Some(plan.clone()), format!("plan/{plan}")),
        };
        let denied = self.denied_limit(
            tenant,
            (&owner, org, d.scope().clone()),
            budget_id,
            plan,
            source,
            &d.metric,
            d.window.as_str(),
            &d.period,
            (d.used, d.limit),
            now,
        );
        self.note(denied).await;
    }

    /// Notes a plan-only check's denial at 100 % (`service::check`).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn note_plan_denial(
        &self,
        tenant: &TenantId,
        user: &UserId,
        plan: &PlanName,
        metric: &Metric,
        used: Decimal,
        limit: Decimal,
        period: &Period,
        now: DateTime<Utc>,
    ) {
        if !at_full(used, limit) {
            return;
        }
        let scope = Scope::User {
            user_id: user.clone(),
        };
        let denied = self.denied_limit(
            tenant,
            (user, None, scope),
            None,
            Some(plan.clone()),
            format!("plan/{plan}"),
            metric,
            "period",
            period,
            (used, limit),
            now,
        );
        self.note(denied).await;
    }

    #[allow(clippy::too_many_arguments)]
    fn denied_limit(
        &self,
        tenant: &TenantId,
        (owner, org, scope): (&UserId, Option<OrgId>, Scope),
        budget_id: Option<crate::domain::BudgetId>,
        plan: Option<PlanName>,
        source: String,
        metric: &Metric,
        window: &str,
        period: &Period,
        (used, limit): (Decimal, Decimal),
        now: DateTime<Utc>,
    ) -> DeniedLimit {
        let start = period
            .start
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        DeniedLimit {
            tenant: tenant.clone(),
            key: format!(
                "{source}/{start}/{metric}/{}",
                owner_key(owner, org.as_ref())
            ),
            user: owner.clone(),
            org,
            budget_id,
            plan,
            scope: Some(scope),
            metric: metric.to_string(),
            window: window.to_owned(),
            window_start: period.start,
            resets_at: period.end,
            used,
            limit,
            denied_at: now,
        }
    }

    pub(super) async fn note(&self, denied: DeniedLimit) {
        if let Err(e) = self.store.note_denied_limit(&denied).await {
            tracing::warn!(error = %e, "a denial at 100 % was not remembered; it will resolve without alert.resolved");
        }
    }

    /// Why `d` is allowed again now, or `None` while it still denies.
    async fn allowed_again(
        &self,
        d: &DeniedLimit,
        now: DateTime<Utc>,
    ) -> Result<Option<&'static str>> {
        // A wallet's denial has no window: a top-up resolves it (service::credit_resolved).
        if d.window == CREDITS_WINDOW {
            return self.credit_allowed_again(d, now).await;
        }
        if now >= d.resets_at {
            return Ok(Some("a new window"));
        }
        let metric = Metric::parse(&d.metric).map_err(|_| Error::Internal)?;
        let limit_now = if let Some(id) = &d.budget_id {
            match self.store.get_budget(&d.tenant, id).await? {
                None => return Ok(Some("the budget was removed")),
                Some(b) if b.mode == Mode::Soft => return Ok(Some("the budget no longer denies")),
                Some(b) if b.window.as_str() != d.window => {
                    return Ok(Some("the budget's window changed"))
                }
                Some(b) => b.limits.get(&metric),
            }
        } else if let Some(org) = &d.org {
            // The org's plan now (an org upgrade raises it; without an active
            // subscription the org's plan no longer limits).
            match self.active_org_plan(&d.tenant, org).await? {
                None => return Ok(Some("the org's plan no longer applies")),
                Some(p) => p.plan.limits.get(&metric),
            }
        } else {
            // The user's plan now (an upgrade raises it).
            let sub = self.store.get_subscription(&d.tenant, &d.user).await?;
            let plan = self.plan_of(&d.tenant, sub.as_ref()).await?;
            plan.limits.get(&metric)
        };
        Ok(match limit_now {
            None => Some("the limit was removed"),
            Some(l) if l > d.used => Some("the limit was raised"),
            Some(_) => None,
        })
    }

    /// One aggregation step: resolves the remembered denials allowed again, each once,
    /// and publishes their `alert.resolved`. Returns how many this pass resolved.
    pub(super) async fn resolve_denials(&self, now: DateTime<Utc>) -> Result<usize> {
        let mut resolved = 0;
        // Every note, page by page: notes that stay (a wallet still empty) do not hide
        // the newer ones behind them.
        let mut after: Option<DeniedLimit> = None;
        loop {
            let page = self
                .store
                .denied_limits(after.as_ref(), RESOLVE_PAGE)
                .await?;
            for d in &page {
                let Some(reason) = self.allowed_again(d, now).await? else {
                    continue;
                };
                let alert = resolved_alert(d, reason, now);
                if self.store.resolve_denied_limit(d, &alert).await? {
                    resolved += 1;
                    self.deliver(&alert).await;
                }
            }
            if page.len() < RESOLVE_PAGE {
                return Ok(resolved);
            }
            after = page.last().cloned();
        }
    }
}
