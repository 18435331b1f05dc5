//! Data portability and erasure: everything stored about a user as JSON, and its
//! deletion with invoices kept under a one-way pseudonym.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::dashboard::InvoiceView;
use super::reads::AlertView;
use super::{Caller, Meter, Result};
use crate::domain::{ProviderId, Reservation, Role, Subscription, TenantId, UsageEvent, UserId};
use crate::usage::{PeriodUsage, Tally};

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

/// One period's counters in an export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExportedPeriod {
    pub period_start: DateTime<Utc>,
    pub usage: PeriodUsage,
}

/// One day's rollup in an export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExportedDay {
    pub day: NaiveDate,
    pub by_provider: BTreeMap<ProviderId, Tally>,
}

/// Everything stored about a user (data portability).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserExport {
    pub user_id: UserId,
    pub tenant_id: TenantId,
    pub exported_at: DateTime<Utc>,
    pub subscription: Option<Subscription>,
    pub events: Vec<UsageEvent>,
    pub periods: Vec<ExportedPeriod>,
    pub daily: Vec<ExportedDay>,
    pub reservations: Vec<Reservation>,
    pub alerts: Vec<AlertView>,
    pub invoices: Vec<InvoiceView>,
    /// What the user's invoices are kept under after an erasure.
    pub pseudonym: UserId,
    /// Issue 19: the user's prepaid wallet as GET `/wallet/user/{id}` shows it, and what
    /// each event drew from the grants of the wallet that paid (the user's or an org's:
    /// `wallet` names it), oldest first.
    pub wallet: super::wallets::WalletView,
    pub draws: Vec<crate::store::EventDraws>,
}

/// How far an erasure got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErasureReport {
    pub user_id: UserId,
    pub erased: bool,
    pub records_changed: usize,
    pub invoices_kept_as: UserId,
    /// `false`: a large user; repeat the request.
    pub done: bool,
}

impl Meter {
    /// Everything stored about a user (admin).
    pub async fn export_user(&self, caller: &Caller, user: &UserId) -> Result<UserExport> {
        caller.require(Role::Admin)?;
        let tenant = &caller.tenant;
        let subscription = self.store.get_subscription(tenant, user).await?;
        let records = self.store.user_records(tenant, user).await?;
        let (alerts, _) = self.store.list_alerts(tenant, user, false, 100_000).await?;
        let mut invoices = self.store.list_invoices(tenant, user).await?;
        let anon = pseudonym(tenant, user);
        invoices.extend(self.store.list_invoices(tenant, &anon).await?);
        let wallet = self
            .wallet(caller, &crate::credits::Subscriber::User(user.clone()))
            .await?;
        // Whichever wallet paid: the user's own or an org's (issue 19).
        let draws = self.store.user_event_draws(tenant, user).await?;
        Ok(UserExport {
            user_id: user.clone(),
            tenant_id: tenant.clone(),
            exported_at: self.now(),
            subscription,
            events: records.events,
            periods: records
                .periods
                .into_iter()
                .map(|(period_start, usage)| ExportedPeriod {
                    period_start,
                    usage,
                })
                .collect(),
            daily: records
                .daily
                .into_iter()
                .map(|d| ExportedDay {
                    day: d.day,
                    by_provider: d.by_provider,
                })
                .collect(),
            reservations: records.reservations,
            alerts: alerts.iter().map(AlertView::from).collect(),
            invoices: invoices.iter().map(InvoiceView::from).collect(),
            pseudonym: anon,
            wallet,
            draws,
        })
    }

    /// Erases the user in bounded steps (admin).
    pub async fn erase_user(&self, caller: &Caller, user: &UserId) -> Result<ErasureReport> {
        caller.require(Role::Admin)?;
        let tenant = &caller.tenant;
        let anon = pseudonym(tenant, user);
        // Issue 19: give back what the user's open reservations hold (credit included).
        let mut changed = self.release_open_reservations(tenant, user).await?;
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
        if done {
            // Budgets on the user's own scope name the user: deleted with the rest.
            let scope = crate::budgets::Scope::User {
                user_id: user.clone(),
            };
            for budget in self.store.list_budgets(tenant, &scope).await? {
                if self
                    .store
                    .delete_budget(tenant, &budget.id)
                    .await?
                    .is_some()
                {
                    changed += 1;
                }
            }
        }
        tracing::info!(tenant = %tenant, pseudonym = %anon, records = changed, done, "user erased");
        Ok(ErasureReport {
            user_id: user.clone(),
            erased: done,
            records_changed: changed,
            invoices_kept_as: anon,
            done,
        })
    }
}
