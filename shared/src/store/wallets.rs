//! Where prepaid-credit wallets live (see [`crate::credits`]): per (tenant, [`Subscriber`])
//! the grants and the wallet's settings.
//!
//! Promises every adapter keeps (the conformance suite checks them under concurrency):
//! - a grant id is taken once per wallet: [`WalletStore::insert_grant`] stores a grant only
//!   when the wallet has none with its id, and otherwise answers the stored one
//!   ([`GrantInsert::Exists`]) with nothing changed, so of racing inserts of one id exactly
//!   one is stored (the service compares bodies: same body is idempotent, another is a
//!   conflict);
//! - a wallet holds at most [`MAX_GRANTS_PER_WALLET`] grants (voided and expired ones
//!   included, pruned ones not): an insert beyond changes nothing and answers
//!   [`GrantInsert::WalletFull`]; a pruned grant's id stays taken (an insert answers it as
//!   [`GrantInsert::Exists`], a void as [`GrantVoid::AlreadyVoided`], unchanged);
//! - grant amounts are exact decimals, read back as written;
//! - a void sets `voided_at` once: voiding again answers [`GrantVoid::AlreadyVoided`] with
//!   the first void's grant;
//! - [`WalletStore::get_wallet`] is one request (one `Query` of the wallet's partition in
//!   DynamoDB), grants in grant-id order (bytes).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::StoreResult;
use crate::credits::{Grant, Subscriber};
use crate::domain::{GrantId, TenantId};

/// The most grants one wallet holds (voided and expired ones included until they are
/// pruned: [`super::GrantUpkeepStore`]). Bounds the wallet read to one request.
pub const MAX_GRANTS_PER_WALLET: usize = 100;

/// A wallet as stored: its grants (grant-id order) and settings. A wallet nothing was ever
/// written to reads as empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WalletRecord {
    pub grants: Vec<Grant>,
    /// The level below which `wallet.low_balance` fires; `None`: no such alarm.
    pub low_balance_usd: Option<Decimal>,
    /// Usage recorded beyond the grants (prepaid plans), not billed yet.
    pub overdrawn_usd: Decimal,
    /// Credit held by open reservations (prepaid plans).
    pub held_usd: Decimal,
    /// The wallet's alarms as last stored (`None`: never observed), and how often they
    /// were stored (the version [`super::PrepaidStore::put_wallet_alarms`] conditions on).
    pub alarms: Option<crate::credits::WalletAlarms>,
    pub alarm_seq: u64,
}

/// What an insert did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantInsert {
    /// Stored.
    Created(Grant),
    /// The wallet has a grant with this id (returned as stored): nothing changed.
    Exists(Grant),
    /// The wallet already holds [`MAX_GRANTS_PER_WALLET`] grants: nothing changed.
    WalletFull,
}

/// What a void did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantVoid {
    /// The grant as stored after the void (`voided_at` set).
    Voided(Grant),
    /// It was voided before: nothing changed; the grant as stored.
    AlreadyVoided(Grant),
    /// The wallet has no grant with this id.
    Unknown,
}

#[async_trait]
pub trait WalletStore: Send + Sync {
    /// Stores `grant` in `wallet` unless the wallet has a grant with its id or is full
    /// (see the module's promises).
    async fn insert_grant(
        &self,
        tenant: &TenantId,
        wallet: &Subscriber,
        grant: &Grant,
    ) -> StoreResult<GrantInsert>;

    /// One grant of the wallet; `None` if it has none with this id.
    async fn get_grant(
        &self,
        tenant: &TenantId,
        wallet: &Subscriber,
        id: &GrantId,
    ) -> StoreResult<Option<Grant>>;

    /// Voids grant `id` at `at`: what is left of it stops counting.
    async fn void_grant(
        &self,
        tenant: &TenantId,
        wallet: &Subscriber,
        id: &GrantId,
        at: DateTime<Utc>,
    ) -> StoreResult<GrantVoid>;

    /// The wallet's grants and settings, in one request.
    async fn get_wallet(&self, tenant: &TenantId, wallet: &Subscriber)
        -> StoreResult<WalletRecord>;

    /// Sets (or, with `None`, clears) the wallet's `low_balance_usd`.
    async fn set_low_balance(
        &self,
        tenant: &TenantId,
        wallet: &Subscriber,
        low_balance_usd: Option<Decimal>,
    ) -> StoreResult<()>;
}
