//! A user's open reservations (see [`crate::store::OpenReservationsStore`]): the inline
//! ones of the state item (one `GetItem`) and the spilled ones (`RSV#` items with status
//! `held`, one `Query`; closed reservations' tombstones share the prefix).

use async_trait::async_trait;

use super::codec::from_item;
use super::items;
use super::layout;
use super::DynamoStore;
use crate::domain::{Reservation, ReservationStatus, TenantId, UserId};
use crate::store::{OpenReservationsStore, StoreResult};

#[async_trait]
impl OpenReservationsStore for DynamoStore {
    async fn open_reservations(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> StoreResult<Vec<Reservation>> {
        let pk = layout::user_pk(tenant, user.as_str());
        let mut out = match self.get_item(pk.clone(), layout::STATE_SK, &[]).await? {
            Some(state) => items::open_reservations(&state)?,
            None => Vec::new(),
        };
        for item in self
            .query_prefix(pk, &layout::tombstone_sk(""), true)
            .await?
        {
            let r: Reservation = from_item(&item)?;
            if r.status == ReservationStatus::Held {
                out.push(r);
            }
        }
        out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(out)
    }
}
