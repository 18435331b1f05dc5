//! Data portability and erasure (SPEC §6): everything stored about a user as JSON, and its
//! deletion with invoices kept under a one-way pseudonym.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::dashboard::invoice_json;
use super::reads::alert_json;
use super::{Caller, Meter};
use crate::domain::{Role, TenantId, UserId};
use crate::http::ApiError;

/// Records deleted per erasure step (one store call).
const ERASE_STEP: usize = 500;
/// Steps one request may take; a larger user answers `done: false` (repeat the request).
const ERASE_STEPS: usize = 40;

/// The one-way pseudonym that replaces a user id on its invoices after erasure:
/// `anon_` + the first 32 hex digits of SHA-256 over a fixed label, the tenant and the id.
/// The same user always gets the same pseudonym, so an export after erasure still finds
/// the invoices; the id cannot be read back from it (though an id that can be guessed can
/// be confirmed by hashing it again).
pub fn pseudonym(tenant: &TenantId, user: &UserId) -> UserId {
    let mut h = Sha256::new();
    h.update(b"meter-erasure\0");
    h.update(tenant.as_str().as_bytes());
    h.update(b"\0");
    h.update(user.as_str().as_bytes());
    let hex = hex::encode(h.finalize());
    // Hex digits and `_` are valid id characters: this cannot fail.
    UserId::parse(format!("anon_{}", &hex[..32])).unwrap_or_else(|_| user.clone())
}

impl Meter {
    /// GET /user/{user_id}/export (admin).
    pub async fn export_user(&self, caller: &Caller, user: &UserId) -> Result<Value, ApiError> {
        caller.require(Role::Admin)?;
        let tenant = &caller.tenant;
        let subscription = self.store.get_subscription(tenant, user).await?;
        let records = self.store.user_records(tenant, user).await?;
        let (alerts, _) = self.store.list_alerts(tenant, user, false, 100_000).await?;
        let mut invoices = self.store.list_invoices(tenant, user).await?;
        let anon = pseudonym(tenant, user);
        invoices.extend(self.store.list_invoices(tenant, &anon).await?);
        let periods: Vec<Value> = records
            .periods
            .iter()
            .map(|(start, usage)| json!({"period_start": start, "usage": usage}))
            .collect();
        let daily: Vec<Value> = records
            .daily
            .iter()
            .map(|d| json!({"day": d.day.to_string(), "by_provider": d.by_provider}))
            .collect();
        Ok(json!({
            "user_id": user,
            "tenant_id": tenant,
            "exported_at": self.now(),
            "subscription": subscription,
            "events": records.events,
            "periods": periods,
            "daily": daily,
            "reservations": records.reservations,
            "alerts": alerts.iter().map(alert_json).collect::<Vec<_>>(),
            "invoices": invoices.iter().map(invoice_json).collect::<Vec<_>>(),
            "pseudonym": anon,
        }))
    }

    /// DELETE /user/{user_id} (admin): erases the user in bounded steps.
    pub async fn erase_user(&self, caller: &Caller, user: &UserId) -> Result<Value, ApiError> {
        caller.require(Role::Admin)?;
        let tenant = &caller.tenant;
        let anon = pseudonym(tenant, user);
        let mut changed = 0;
        let mut done = false;
        for _ in 0..ERASE_STEPS {
            let step = self
                .store
                .erase_user(tenant, user, &anon, ERASE_STEP)
                .await?;
            changed += step.changed;
            if step.done {
                done = true;
                break;
            }
        }
        tracing::info!(tenant = %tenant, pseudonym = %anon, records = changed, done, "user erased");
        Ok(json!({
            "user_id": user,
            "erased": done,
            "records_changed": changed,
            "invoices_kept_as": anon,
            "done": done,
        }))
    }
}
