//! `GET /org/{org_id}/alerts` (SPEC §10): the alerts an org owns — those of budgets on the
//! pooled usage of the org or of one of its teams (`service::budget_alerts`) — newest
//! first, with the org's unread count. They are marked read by the alert id like a
//! user's (`POST /alerts/{alert_id}/mark-read`).

use serde::Serialize;

use super::reads::AlertView;
use super::{Caller, Meter, Result};
use crate::domain::OrgId;

/// GET /org/{org_id}/alerts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrgAlertList {
    pub org_id: OrgId,
    pub alerts: Vec<AlertView>,
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
            alerts: alerts.iter().map(AlertView::from).collect(),
            unread_count: unread,
        })
    }
}
