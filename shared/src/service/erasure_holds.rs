//! An erasure gives back what the user's open reservations hold (issue 19): before the
//! user's records are deleted, each open reservation is released through the store's
//! ordinary release, which closes it and returns its plan, budget and credit holds in one
//! atomic write, once (a racing settle, release or expiry closes it instead; either way
//! the wallet's `held_usd` goes back exactly once). Without this the deleted
//! reservations' credit would stay held on the wallet forever.

use super::{Meter, Result};
use crate::domain::{TenantId, UserId};
use crate::store::ReleaseOutcome;

impl Meter {
    /// Releases every open reservation of `user`; returns how many this call released.
    pub(super) async fn release_open_reservations(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> Result<usize> {
        let mut released = 0;
        let _gate = self.gate(tenant, user).await;
        for r in self.store.open_reservations(tenant, user).await? {
            if self.store.release_reservation(tenant, &r.id).await? == ReleaseOutcome::Released {
                released += 1;
            }
        }
        if released > 0 {
            tracing::info!(tenant = %tenant, released, "open reservations released before an erasure");
        }
        Ok(released)
    }
}
