//! API keys: generated once, shown once, stored only as a SHA-256 hash.
//!
//! A key looks like `mk_<43 url-safe characters>` (32 random bytes). Its hash is the
//! lookup key; the first 10 characters (`prefix`) may be shown and logged, the key never.

use chrono::{DateTime, Utc};
use rand::RngCore as _;
use sha2::{Digest, Sha256};

use crate::domain::{ApiKeyRecord, Role, TenantId};

const KEY_PREFIX: &str = "mk_";
/// Length of `mk_` + base64url of 32 bytes.
pub const KEY_LEN: usize = 3 + 43;

/// A newly generated key: the secret to hand over once, and the record to store.
pub struct NewKey {
    pub secret: String,
    pub record: ApiKeyRecord,
}

impl std::fmt::Debug for NewKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewKey")
            .field("prefix", &self.record.prefix)
            .finish_non_exhaustive()
    }
}

/// Generates a fresh random key for `tenant` with `role`.
pub fn generate_key(tenant: &TenantId, role: Role, now: DateTime<Utc>) -> NewKey {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret = format!(
        "{KEY_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let record = record_for(&secret, tenant, role, now);
    NewKey { secret, record }
}

/// The record stored for a given key (used by bootstrap with `METER_BOOTSTRAP_ADMIN_KEY`).
pub fn record_for(secret: &str, tenant: &TenantId, role: Role, now: DateTime<Utc>) -> ApiKeyRecord {
    ApiKeyRecord {
        hash: hash_key(secret),
        prefix: secret.chars().take(10).collect(),
        tenant: tenant.clone(),
        role,
        created_at: now,
    }
}

/// Lowercase hex SHA-256 of the key.
pub fn hash_key(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Whether `secret` has the shape of a key we issue (cheap rejection before any lookup).
/// Keys set by operators through `METER_BOOTSTRAP_ADMIN_KEY` need only be 20–200 printable
/// ASCII characters without spaces, not starting with `mt_` (the prefix of end-user
/// tokens, which are never API keys: see [`crate::tokens`]).
pub fn plausible_key(secret: &str) -> bool {
    (20..=200).contains(&secret.len())
        && secret.bytes().all(|b| b.is_ascii_graphic())
        && !crate::tokens::is_token(secret)
}

impl Role {
    /// Whether a key of this role may do what `needed` requires.
    pub fn allows(self, needed: Role) -> bool {
        match needed {
            Role::Service => true,
            Role::Admin => self == Role::Admin,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_unique_hashed_and_never_stored_in_clear() {
        let t = TenantId::parse("default").unwrap();
        let a = generate_key(&t, Role::Admin, Utc::now());
        let b = generate_key(&t, Role::Admin, Utc::now());
        assert_ne!(a.secret, b.secret);
        assert_eq!(a.secret.len(), KEY_LEN);
        assert!(a.secret.starts_with("mk_"));
        assert_eq!(a.record.hash, hash_key(&a.secret));
        assert_eq!(a.record.hash.len(), 64);
        assert!(!a.record.hash.contains(&a.secret));
        assert_eq!(a.record.prefix, a.secret[..10]);
        assert!(!format!("{a:?}").contains(&a.secret));
        assert!(plausible_key(&a.secret));
        assert!(!plausible_key("short"));
        assert!(!plausible_key("has a space in it......"));
        assert!(!plausible_key("mt_looks_like_an_end_user_token"));
    }

    #[test]
    fn admin_role_covers_service_but_not_the_reverse() {
        assert!(Role::Admin.allows(Role::Service));
        assert!(Role::Admin.allows(Role::Admin));
        assert!(Role::Service.allows(Role::Service));
        assert!(!Role::Service.allows(Role::Admin));
    }
}
