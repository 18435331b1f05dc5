//! Prepaid-credit wallets (§11, docs/credits.md): read a wallet, put and void grants, set
//! the low-balance level. The rules live in [`crate::credits`] (validation, idempotency by
//! `grant_id`, balances, expiry, the projected depletion date); the store keeps the
//! promises that need atomicity (one grant per id, at most [`MAX_GRANTS_PER_WALLET`] per
//! wallet, a void once).
//!
//! Prepaid plans (the check's credit, holds, draws) are in [`super::prepaid`]. Not yet:
//! the low-balance and depleted alarms, credits on invoices.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;

use super::{Caller, Error, Meter, Result};
use crate::credits::{
    draw_cmp, projected_depletion, put_grant, validate_low_balance, wallet_view, CreditError,
    Grant, GrantKind, GrantRequest, GrantStatus, PutGrant, Subscriber,
};
use crate::domain::money::{normalized, normalized_option};
use crate::domain::{GrantId, Role};
use crate::store::{GrantInsert, GrantVoid, MAX_GRANTS_PER_WALLET};

/// A grant as clients see it at one instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GrantView {
    pub grant_id: GrantId,
    #[serde(serialize_with = "normalized")]
    pub amount_usd: Decimal,
    /// What is left of it; for an expired or voided grant, what stopped counting (0 once
    /// the aggregation recorded the expiry: then it is `expired_usd`).
    #[serde(serialize_with = "normalized")]
    pub remaining_usd: Decimal,
    /// What expired, as the aggregation recorded it; `null` until then.
    #[serde(serialize_with = "normalized_option")]
    pub expired_usd: Option<Decimal>,
    pub expires_at: Option<DateTime<Utc>>,
    pub priority: i32,
    pub kind: GrantKind,
    pub note: Option<String>,
    pub status: GrantStatus,
    pub created_at: DateTime<Utc>,
    pub voided_at: Option<DateTime<Utc>>,
}

impl GrantView {
    fn of(g: &Grant, at: DateTime<Utc>) -> Self {
        GrantView {
            grant_id: g.id.clone(),
            amount_usd: g.amount_usd,
            remaining_usd: g.remaining_usd,
            expired_usd: g.expired_usd,
            expires_at: g.expires_at,
            priority: g.priority,
            kind: g.kind,
            note: g.note.clone(),
            status: g.status(at),
            created_at: g.created_at,
            voided_at: g.voided_at,
        }
    }
}

/// `GET /wallet/{user|org}/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WalletView {
    pub subscriber: Subscriber,
    /// Remaining of the unexpired, unvoided grants minus the unbilled overdraft.
    #[serde(serialize_with = "normalized")]
    pub balance_usd: Decimal,
    /// Credit held by open reservations (prepaid plans).
    #[serde(serialize_with = "normalized")]
    pub held_usd: Decimal,
    /// `balance_usd − held_usd`.
    #[serde(serialize_with = "normalized")]
    pub available_usd: Decimal,
    #[serde(serialize_with = "normalized_option")]
    pub low_balance_usd: Option<Decimal>,
    /// Cost drawn from the wallet by prepaid usage in the last 7 days (overdraft included).
    #[serde(serialize_with = "normalized")]
    pub burn_last_7_days_usd: Decimal,
    /// When `available_usd` runs out at that burn; `null` without burn.
    pub projected_depletion_at: Option<DateTime<Utc>>,
    /// The grants that count in the order they burn, then the expired and voided ones.
    pub grants: Vec<GrantView>,
    pub max_grants: usize,
    pub as_of: DateTime<Utc>,
}

/// What a grant PUT did: the grant as stored, and whether it is new.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GrantWritten {
    pub grant: GrantView,
    pub created: bool,
}

/// What a void did; the same answer however often the grant is voided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GrantVoided {
    pub grant: GrantView,
    /// What the void removed from the balance: the grant's remaining when it still
    /// counted at the void, 0 when it had expired before.
    #[serde(serialize_with = "normalized")]
    pub removed_usd: Decimal,
}

/// `PUT /wallet/{user|org}/{id}/settings`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WalletSettings {
    pub subscriber: Subscriber,
    #[serde(serialize_with = "normalized_option")]
    pub low_balance_usd: Option<Decimal>,
}

/// A credits rule's refusal as the service's error.
fn credit_error(e: CreditError) -> Error {
    match e {
        CreditError::GrantConflict(id) => Error::StateConflict(format!(
            "grant `{id}` exists with another body; a grant cannot change (void it and \
             put a new grant id)"
        )),
        CreditError::UnknownGrant(_) => Error::NotFound("grant"),
        other => Error::invalid(other.field(), other.code(), other.to_string()),
    }
}

/// The answer for a stored grant that a PUT found: the same body is idempotent, another is
/// a conflict.
fn replay(stored: &Grant, id: &GrantId, req: GrantRequest, now: DateTime<Utc>) -> Result<Grant> {
    match put_grant(Some(stored), id.clone(), req, now).map_err(credit_error)? {
        PutGrant::Unchanged(g) => Ok(g),
        PutGrant::Created(_) => Err(Error::Internal),
    }
}

impl Meter {
    /// GET /wallet/{user|org}/{id} (service key): the wallet's figures at the service's
    /// clock; a grant stops counting at its `expires_at` exactly.
    pub async fn wallet(&self, caller: &Caller, wallet: &Subscriber) -> Result<WalletView> {
        caller.require(Role::Service)?;
        let record = self.store.get_wallet(&caller.tenant, wallet).await?;
        let now = self.now();
        let (overdrawn, held) = (record.overdrawn_usd, record.held_usd);
        let view = wallet_view(&record.grants, overdrawn, held, now).map_err(credit_error)?;
        // The burn: what the wallet's prepaid events drew (cost, overdraft included) in the
        // last 7 days (an org's: the events its prepaid plan paid for, service::org_wallets).
        let since = now - chrono::Duration::days(7);
        let mut burn = Decimal::ZERO;
        for d in self
            .store
            .wallet_draws(&caller.tenant, wallet, Some(since))
            .await?
        {
            if d.at <= now {
                burn = burn.checked_add(d.cost_usd).ok_or(Error::Internal)?;
            }
        }
        let mut grants: Vec<&Grant> = record.grants.iter().collect();
        grants.sort_by(|a, b| (!a.counts(now)).cmp(&!b.counts(now)).then(draw_cmp(a, b)));
        Ok(WalletView {
            subscriber: wallet.clone(),
            balance_usd: view.balance_usd,
            held_usd: view.held_usd,
            available_usd: view.available_usd,
            low_balance_usd: record.low_balance_usd,
            burn_last_7_days_usd: burn,
            projected_depletion_at: projected_depletion(view.available_usd, burn, now),
            grants: grants.into_iter().map(|g| GrantView::of(g, now)).collect(),
            max_grants: MAX_GRANTS_PER_WALLET,
            as_of: now,
        })
    }

    /// PUT /wallet/{user|org}/{id}/grants/{grant_id} (admin): idempotent by `grant_id`.
    /// 409 (`Error::StateConflict`) when the id holds another body, 422
    /// `too_many_grants` when the wallet is full; nothing changes then.
    pub async fn put_grant(
        &self,
        caller: &Caller,
        wallet: &Subscriber,
        id: &GrantId,
        req: GrantRequest,
    ) -> Result<GrantWritten> {
        caller.require(Role::Admin)?;
        req.validate_body().map_err(credit_error)?;
        let now = self.now();
        let tenant = &caller.tenant;
        if req.expires_at.is_some_and(|e| e <= now) {
            // Only a replay of a stored grant may name an expiry that has passed.
            let stored = self.store.get_grant(tenant, wallet, id).await?;
            let g = match stored {
                Some(stored) => replay(&stored, id, req, now)?,
                None => return Err(credit_error(CreditError::ExpiryInThePast)),
            };
            return Ok(GrantWritten {
                grant: GrantView::of(&g, now),
                created: false,
            });
        }
        let grant = req
            .clone()
            .into_grant(id.clone(), now)
            .map_err(credit_error)?;
        let mut inserted = self.store.insert_grant(tenant, wallet, &grant).await?;
        if inserted == GrantInsert::WalletFull
            && self.prune_finished_grants(tenant, wallet, now).await? > 0
        {
            // Finished grants gave their slots back (service::grant_upkeep): once more.
            inserted = self.store.insert_grant(tenant, wallet, &grant).await?;
        }
        let (stored, created) = match inserted {
            GrantInsert::Created(g) => (g, true),
            GrantInsert::Exists(stored) => (replay(&stored, id, req, now)?, false),
            GrantInsert::WalletFull => {
                return Err(Error::invalid(
                    "grant_id",
                    "too_many_grants",
                    format!("wallet {wallet} already holds {MAX_GRANTS_PER_WALLET} grants"),
                ))
            }
        };
        if created {
            tracing::info!(tenant = %tenant, wallet = %wallet, grant = %id,
                amount_usd = %stored.amount_usd, kind = %stored.kind, "grant stored");
            self.observe_after_change(tenant, wallet).await;
        }
        Ok(GrantWritten {
            grant: GrantView::of(&stored, now),
            created,
        })
    }

    /// POST /wallet/{user|org}/{id}/grants/{grant_id}/void (admin): removes what is left
    /// of the grant; 404 for an unknown grant; voiding again answers the same.
    pub async fn void_grant(
        &self,
        caller: &Caller,
        wallet: &Subscriber,
        id: &GrantId,
    ) -> Result<GrantVoided> {
        caller.require(Role::Admin)?;
        let now = self.now();
        let g = match self
            .store
            .void_grant(&caller.tenant, wallet, id, now)
            .await?
        {
            GrantVoid::Voided(g) => {
                tracing::info!(tenant = %caller.tenant, wallet = %wallet, grant = %id,
                    "grant voided");
                self.observe_after_change(&caller.tenant, wallet).await;
                g
            }
            GrantVoid::AlreadyVoided(g) => g,
            GrantVoid::Unknown => return Err(Error::NotFound("grant")),
        };
        let voided_at = g.voided_at.ok_or(Error::Internal)?;
        let removed_usd = if g.is_expired(voided_at) {
            Decimal::ZERO
        } else {
            g.remaining_usd
        };
        Ok(GrantVoided {
            grant: GrantView::of(&g, now),
            removed_usd,
        })
    }

    /// PUT /wallet/{user|org}/{id}/settings (admin): `low_balance_usd` (`None` clears it).
    pub async fn set_wallet_settings(
        &self,
        caller: &Caller,
        wallet: &Subscriber,
        low_balance_usd: Option<Decimal>,
    ) -> Result<WalletSettings> {
        caller.require(Role::Admin)?;
        validate_low_balance(low_balance_usd).map_err(credit_error)?;
        self.store
            .set_low_balance(&caller.tenant, wallet, low_balance_usd)
            .await?;
        Ok(WalletSettings {
            subscriber: wallet.clone(),
            low_balance_usd,
        })
    }
}

impl Meter {
    /// Observes a wallet's alarms after a grant or a void changed its credit (a top-up
    /// re-arms them, a void may fire them; an org's wallet alarms are the org's alerts). A
    /// failure is logged: the change is stored, the next observation catches up.
    async fn observe_after_change(&self, tenant: &crate::domain::TenantId, wallet: &Subscriber) {
        if let Err(e) = self.observe_wallet_of(tenant, wallet).await {
            tracing::warn!(error = %e, wallet = %wallet, "could not observe the wallet");
        }
    }
}
