//! Budget alerts' once-only write (SPEC §10): an alert whose id is derived from its
//! (user, once-only key) — `service::budget_alerts` makes it so — is stored at most once,
//! without touching the user's period records: budget windows (a minute, a day) are many
//! more than a user's periods, so their once-only keys are not kept with the period's
//! fired keys (on DynamoDB those live on the user state item, which must stay small).
//!
//! Promise (conformance `budget_alerts_are_stored_once_under_concurrency`): of racing
//! writes of one alert id exactly one answers `true`; the alert is then listed for its
//! user, counted unread and in the outbox like any other alert.

use async_trait::async_trait;

use super::StoreResult;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use crate::domain::{Alert, BudgetId, OrgId, PlanName, TenantId, UserId};

#[async_trait]
pub trait BudgetAlertStore: Send + Sync {
    /// Stores `alert` unless an alert with its id exists; `true` if this call stored it.
    async fn create_budget_alert_once(&self, alert: &Alert) -> StoreResult<bool>;

    /// The org's alerts, newest first (at most `limit`; unread ones only if
    /// `unread_only`), and how many of all its alerts are unread.
    async fn list_org_alerts(
        &self,
        tenant: &TenantId,
        org: &OrgId,
        unread_only: bool,
        limit: usize,
    ) -> StoreResult<(Vec<Alert>, u64)>;

    /// Remembers `denied` unless its (tenant, key) is remembered already; `true` if this
    /// call stored it.
    async fn note_denied_limit(&self, denied: &DeniedLimit) -> StoreResult<bool>;

    /// Remembered denials of every tenant, oldest first (by `denied_at`, tenant, key),
    /// at most `limit`, after `after` (a note of the page before; `None`: from the
    /// oldest).
    async fn denied_limits(
        &self,
        after: Option<&DeniedLimit>,
        limit: usize,
    ) -> StoreResult<Vec<DeniedLimit>>;

    /// Forgets `denied` (only if it is still remembered with its `denied_at`) and stores
    /// `resolved` (the `alert.resolved` alert, unpublished, counted unread for its owner)
    /// in one atomic write; `true` if this call did. Of racing resolutions exactly one
    /// answers `true`.
    async fn resolve_denied_limit(
        &self,
        denied: &DeniedLimit,
        resolved: &Alert,
    ) -> StoreResult<bool>;

    /// Published alerts of every tenant whose retention ended at or before `now`
    /// ([`crate::alerts::retain_until`]), soonest ended first, at most `limit`.
    async fn expired_alerts(&self, now: DateTime<Utc>, limit: usize) -> StoreResult<Vec<Alert>>;

    /// Deletes `alert` (as [`BudgetAlertStore::expired_alerts`] listed it), taking it out of
    /// its owner's unread count if it was unread, in one atomic write; `true` if this call
    /// deleted it. Of racing deletions exactly one answers `true`; a deletion racing a
    /// "mark read" either deletes the alert read (no count change) or unread (count − 1),
    /// never both or neither.
    async fn delete_expired_alert(&self, alert: &Alert) -> StoreResult<bool>;
}

/// A hard limit that denied a scope at 100 % (SPEC §10, `alert.resolved`): remembered
/// once per (owner, limit, window, metric) until an aggregation pass finds the scope
/// allowed again and resolves it ([`BudgetAlertStore::resolve_denied_limit`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeniedLimit {
    pub tenant: TenantId,
    /// `budget/<budget_id>/<window start>/<metric>/<owner key>` or
    /// `plan/<plan>/<period start>/<metric>/<owner key>`; unique within the tenant.
    pub key: String,
    /// The owner of the resolved alert: a user, or the org id when `org` is set.
    pub user: UserId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<OrgId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_id: Option<BudgetId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<PlanName>,
    /// The scope of the denying limit (a budget's, or the plan's subscriber); `None` in
    /// notes written before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<crate::budgets::Scope>,
    pub metric: String,
    pub window: String,
    pub window_start: DateTime<Utc>,
    pub resets_at: DateTime<Utc>,
    #[serde(with = "rust_decimal::serde::str")]
    pub used: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub limit: Decimal,
    pub denied_at: DateTime<Utc>,
}
