//! A user's open reservations, read to release them (issue 19: an erasure gives back the
//! credit and the holds of the user's open reservations before it deletes them; see
//! `service::privacy`).

use async_trait::async_trait;

use super::StoreResult;
use crate::domain::{Reservation, TenantId, UserId};

#[async_trait]
pub trait OpenReservationsStore: Send + Sync {
    /// The user's reservations still held (not settled, released or expired), oldest
    /// first. SQLite: one indexed read; DynamoDB: the state item (`GetItem`) and the
    /// user's spilled reservations (one `Query` of `RSV#`).
    async fn open_reservations(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> StoreResult<Vec<Reservation>>;
}
