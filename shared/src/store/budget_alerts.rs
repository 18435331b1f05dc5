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
use crate::domain::{Alert, OrgId, TenantId};

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
}
