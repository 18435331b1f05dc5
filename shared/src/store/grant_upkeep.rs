//! The aggregation's upkeep of grants (§11, docs/credits.md "Expiry and pruning"): it
//! records each grant's expiry once, and prunes finished grants out of their wallet so
//! that they stop taking one of its [`super::MAX_GRANTS_PER_WALLET`] slots.
//!
//! Which grants need the aggregation is kept in a *due index* written with the grant
//! (SQLite: the `due_ms` column of `wallet_grants`; DynamoDB: the grant item itself in the
//! sparse `outbox` index, partition `GRANTS`), so a pass reads only what is due, never
//! every wallet:
//!
//! - a grant with an expiry is due at its `expires_at` (to record the expiry);
//! - a grant whose expiry was recorded, or that was voided, is due
//!   [`FINISHED_GRANT_KEPT`] after that (to be pruned): until then GET wallet shows it
//!   with its status (`expired` with `expired_usd`, `voided`);
//! - a pruned grant leaves the index.
//!
//! Pruning *archives* the grant: it leaves the wallet (its reads, its count toward the
//! cap) but stays stored under its id, so a replay of its PUT still answers it (the id is
//! never taken twice) and a void answers it unchanged. A grant drawn to 0 has no instant
//! to be due at: it is pruned when a new grant finds the wallet full
//! (`service::grant_upkeep`).
//!
//! Promises every adapter keeps (the conformance suite checks them under racing passes):
//! - [`GrantUpkeepStore::record_grant_expiry`] writes once: only while the grant is as
//!   read (not voided, not recorded, `remaining_usd` as read); it sets `expired_usd` to
//!   that remaining and `remaining_usd` to 0 (DynamoDB: and takes it off the head's
//!   credit bucket) in one atomic write;
//! - [`GrantUpkeepStore::archive_grant`] archives only a finished grant still as read
//!   (voided, or its expiry recorded, or drawn to 0), once, and frees its slot in the
//!   same atomic write.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};

use super::StoreResult;
use crate::credits::{Grant, Subscriber};
use crate::domain::TenantId;

/// How long a finished grant (expiry recorded, or voided) stays in its wallet before the
/// aggregation prunes it (a full wallet prunes it at once).
pub const FINISHED_GRANT_KEPT: Duration = Duration::days(7);

/// A grant the due index lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueGrant {
    pub tenant: TenantId,
    pub wallet: Subscriber,
    /// The grant as the index shows it (DynamoDB: possibly a little stale; a write
    /// conditioned on it then fails and the grant is read again).
    pub grant: Grant,
    pub due_at: DateTime<Utc>,
}

/// When a grant is due for the aggregation next, `None`: never (no expiry and not
/// finished, or drawn to 0: pruned on demand).
pub fn due_at(g: &Grant) -> Option<DateTime<Utc>> {
    if let Some(v) = g.voided_at {
        return Some(v + FINISHED_GRANT_KEPT);
    }
    match (g.expires_at, g.expired_usd) {
        (Some(e), Some(_)) => Some(e + FINISHED_GRANT_KEPT),
        (Some(e), None) => Some(e),
        (None, _) => None,
    }
}

/// Whether `g` is finished at `at`: it can never count again (voided, expired) or never
/// give anything again (drawn to 0).
pub fn is_finished(g: &Grant, at: DateTime<Utc>) -> bool {
    g.voided_at.is_some() || g.is_expired(at) || g.remaining_usd.is_zero()
}

/// `g` with its expiry recorded.
pub fn with_expiry_recorded(g: &Grant) -> Grant {
    Grant {
        remaining_usd: rust_decimal::Decimal::ZERO,
        expired_usd: Some(g.remaining_usd),
        ..g.clone()
    }
}

#[async_trait]
pub trait GrantUpkeepStore: Send + Sync {
    /// Up to `limit` grants due at `now`, soonest first.
    async fn due_grants(&self, now: DateTime<Utc>, limit: usize) -> StoreResult<Vec<DueGrant>>;

    /// Records the expiry of `read` (see the module's promises); `false`: the grant is
    /// not as read (recorded by a racing pass, voided, drawn, or gone): read it again.
    async fn record_grant_expiry(
        &self,
        tenant: &TenantId,
        wallet: &Subscriber,
        read: &Grant,
    ) -> StoreResult<bool>;

    /// Prunes the finished grant `read` out of its wallet (see the module's promises);
    /// `false`: it is not as read any more (or archived already).
    async fn archive_grant(
        &self,
        tenant: &TenantId,
        wallet: &Subscriber,
        read: &Grant,
    ) -> StoreResult<bool>;
}
