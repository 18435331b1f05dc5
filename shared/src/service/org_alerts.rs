//! `GET /org/{org_id}/alerts` (SPEC §10): the alerts an org owns — those of budgets on the
//! pooled usage of the org or of one of its teams (`service::budget_alerts`) — newest
//! first, with the org's unread count. They are marked read by the alert id like a
//! user's (`POST /alerts/{alert_id}/mark-read`).

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Caller, Meter, Result};
use crate::domain::{Alert, OrgId, Severity};

/// An org's alert as clients see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrgAlertView {
    pub id: String,
    pub org_id: OrgId,
    /// The start date of the budget's window.
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

impl OrgAlertView {
    fn of(org: &OrgId, a: &Alert) -> Self {
        OrgAlertView {
            id: a.id.clone(),
            org_id: org.clone(),
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

/// GET /org/{org_id}/alerts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrgAlertList {
    pub org_id: OrgId,
    pub alerts: Vec<OrgAlertView>,
    /// All unread alerts of the org, whatever the page shows.
    pub unread_count: u64,
}

impl Meter {
    /// The org's alerts, newest first: at most `limit`, unread ones only if `unread_only`.
    pub async fn org_alerts(
        &self,
        caller: &Caller,
        org: &OrgId,
        unread_only: bool,
        limit: usize,
    ) -> Result<OrgAlertList> {
        let (alerts, unread) = self
            .store
            .list_org_alerts(&caller.tenant, org, unread_only, limit)
            .await?;
        Ok(OrgAlertList {
            org_id: org.clone(),
            alerts: alerts.iter().map(|a| OrgAlertView::of(org, a)).collect(),
            unread_count: unread,
        })
    }
}
