//! A user's open reservations (see [`crate::store::OpenReservationsStore`]).

use async_trait::async_trait;
use rusqlite::params;

use super::usage::get_reservation;
use super::SqliteStore;
use crate::domain::{Reservation, TenantId, UserId};
use crate::store::{OpenReservationsStore, StoreResult};

#[async_trait]
impl OpenReservationsStore for SqliteStore {
    async fn open_reservations(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> StoreResult<Vec<Reservation>> {
        let (tenant, user) = (tenant.clone(), user.clone());
        self.read(move |c| {
            let ids = c
                .prepare_cached(
                    "SELECT id FROM reservations WHERE tenant = ?1 AND user = ?2 AND status = 'held'
                      ORDER BY created_at, id",
                )?
                .query_map(params![tenant.as_str(), user.as_str()], |r| {
                    r.get::<_, String>(0)
                })?
                .collect::<Result<Vec<_>, _>>()?;
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                out.extend(get_reservation(c, &tenant, &id)?);
            }
            Ok(out)
        })
        .await
    }
}
