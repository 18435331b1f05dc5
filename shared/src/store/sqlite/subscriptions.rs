//! Subscriptions, with optimistic versions.
//!
//! Like `usage`, every function runs on one connection inside a transaction its caller owns.

use rusqlite::{params, Connection, OptionalExtension};

use super::codec::{from_json, to_json};
use crate::domain::{Subscription, TenantId, UserId};
use crate::store::{StoreError, StoreResult};

pub(super) fn get_subscription(
    conn: &Connection,
    tenant: &TenantId,
    user: &UserId,
) -> StoreResult<Option<Subscription>> {
    let json: Option<String> = conn
        .prepare_cached("SELECT subscription FROM subscriptions WHERE tenant = ?1 AND user = ?2")?
        .query_row(params![tenant.as_str(), user.as_str()], |r| r.get(0))
        .optional()?;
    json.map(|j| from_json(&j)).transpose()
}

pub(super) fn put_subscription(
    conn: &Connection,
    sub: &Subscription,
    expected: Option<u64>,
) -> StoreResult<()> {
    let version = i64::try_from(sub.version)
        .map_err(|_| StoreError::Overflow(format!("version {}", sub.version)))?;
    let json = to_json(sub)?;
    let written = match expected {
        None => conn
            .prepare_cached(
                "INSERT INTO subscriptions (tenant, user, version, subscription) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (tenant, user) DO NOTHING",
            )?
            .execute(params![sub.tenant.as_str(), sub.user.as_str(), version, json])?,
        Some(expected) => {
            // A version past i64 cannot be stored, so it cannot match.
            let Ok(expected) = i64::try_from(expected) else {
                return Err(StoreError::VersionConflict);
            };
            conn.prepare_cached(
                "UPDATE subscriptions SET version = ?3, subscription = ?4
                 WHERE tenant = ?1 AND user = ?2 AND version = ?5",
            )?
            .execute(params![sub.tenant.as_str(), sub.user.as_str(), version, json, expected])?
        }
    };
    if written == 1 {
        Ok(())
    } else {
        Err(StoreError::VersionConflict)
    }
}
