//! Budget alerts' once-only write: an `alerts` row like any other (its id and its
//! `(tenant, user, period_start, key)` are both unique).

use async_trait::async_trait;

use super::SqliteStore;
use chrono::{DateTime, Utc};

use crate::domain::{Alert, OrgId, TenantId};
use rusqlite::params;

use super::codec::{sql_limit, ts};
use crate::store::{org_subscriber, BudgetAlertStore, DeniedLimit, StoreError, StoreResult};

#[async_trait]
impl BudgetAlertStore for SqliteStore {
    async fn create_budget_alert_once(&self, alert: &Alert) -> StoreResult<bool> {
        let alert = alert.clone();
        self.write(move |c| super::alerts::create_alert_once(c, &alert))
            .await
    }
    async fn list_org_alerts(
        &self,
        tenant: &TenantId,
        org: &OrgId,
        unread_only: bool,
        limit: usize,
    ) -> StoreResult<(Vec<Alert>, u64)> {
        let (tenant, owner) = (tenant.clone(), org_subscriber(org));
        self.read(move |c| super::alerts::list_owner_alerts(c, &tenant, &owner, unread_only, limit))
            .await
    }

    async fn note_denied_limit(&self, denied: &DeniedLimit) -> StoreResult<bool> {
        let d = denied.clone();
        let body = serde_json::to_string(&d).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.write(move |c| {
            let n = c
                .prepare_cached(
                    "INSERT INTO denied_limits (tenant, key, denied_at, body) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT DO NOTHING",
                )?
                .execute(params![d.tenant.as_str(), d.key, ts(&d.denied_at), body])?;
            Ok(n == 1)
        })
        .await
    }

    async fn denied_limits(
        &self,
        after: Option<&DeniedLimit>,
        limit: usize,
    ) -> StoreResult<Vec<DeniedLimit>> {
        let after = after.map(|d| (ts(&d.denied_at), d.tenant.to_string(), d.key.clone()));
        self.read(move |c| {
            let (at, tenant, key) = after.unwrap_or_default();
            let bodies: Vec<String> = c
                .prepare_cached(
                    "SELECT body FROM denied_limits WHERE (denied_at, tenant, key) > (?1, ?2, ?3)
                     ORDER BY denied_at, tenant, key LIMIT ?4",
                )?
                .query_map(params![at, tenant, key, sql_limit(limit)], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            bodies
                .iter()
                .map(|b| serde_json::from_str(b).map_err(|e| StoreError::Corrupt(e.to_string())))
                .collect()
        })
        .await
    }

    async fn resolve_denied_limit(
        &self,
        denied: &DeniedLimit,
        resolved: &Alert,
    ) -> StoreResult<bool> {
        let (d, alert) = (denied.clone(), resolved.clone());
        self.write(move |c| {
            let gone = c
                .prepare_cached(
                    "DELETE FROM denied_limits WHERE tenant = ?1 AND key = ?2 AND denied_at = ?3",
                )?
                .execute(params![d.tenant.as_str(), d.key, ts(&d.denied_at)])?;
            if gone != 1 {
                return Ok(false);
            }
            // In the same transaction: the alert once (its id derives from the denial).
            super::alerts::create_alert_once(c, &alert)
        })
        .await
    }

    async fn expired_alerts(&self, now: DateTime<Utc>, limit: usize) -> StoreResult<Vec<Alert>> {
        self.read(move |c| {
            super::alerts::alerts(
                c,
                &format!(
                    "SELECT {} FROM alerts WHERE retain_until IS NOT NULL AND retain_until <= ?1
                     AND published = 1 ORDER BY retain_until, tenant, id LIMIT ?2",
                    super::alerts::ALERT_COLUMNS
                ),
                params![ts(&now), sql_limit(limit)],
            )
        })
        .await
    }

    async fn delete_expired_alert(&self, alert: &Alert) -> StoreResult<bool> {
        // The unread count is counted from the rows: deleting the row is the whole write.
        let (tenant, id) = (alert.tenant.clone(), alert.id.clone());
        self.write(move |c| {
            let n = c
                .prepare_cached(
                    "DELETE FROM alerts WHERE tenant = ?1 AND id = ?2
                     AND retain_until IS NOT NULL AND published = 1",
                )?
                .execute(params![tenant.as_str(), id])?;
            Ok(n == 1)
        })
        .await
    }
}
