//! API keys: generated once, shown once, stored only as a SHA-256 hash.
//!
//! A key looks like `mk_<43 url-safe characters>` (32 random bytes). Its hash is the
//! lookup key. A key is named by its id, `key_` + the first 16 hex digits of its hash:
//! shown on creation, in listings and logs, and used to revoke it. No part of the key is
//! ever stored, shown or logged (an earlier `prefix` kept its first 10 characters: half of
//! a 20-character bootstrap key).

use chrono::{DateTime, Utc};
use rand::RngCore as _;
use sha2::{Digest, Sha256};

use crate::domain::{ApiKeyRecord, Role, TenantId};

const KEY_PREFIX: &str = "mk_";
/// Length of `mk_` + base64url of 32 bytes.
pub const KEY_LEN: usize = 3 + 43;
/// What starts a key id.
pub const KEY_ID_PREFIX: &str = "key_";
/// Hex digits of the hash in a key id (64 bits: distinct for any realistic number of keys).
pub const KEY_ID_DIGITS: usize = 16;

/// A newly generated key: the secret to hand over once, and the record to store.
pub struct NewKey {
    pub secret: String,
    pub record: ApiKeyRecord,
}

impl std::fmt::Debug for NewKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewKey")
            .field("id", &self.record.id())
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
        tenant: tenant.clone(),
        role,
        created_at: now,
    }
}

/// Lowercase hex SHA-256 of the key.
pub fn hash_key(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// The public id of the key with this hash: `key_` + its first 16 hex digits. Derived
/// from the hash, so keys stored before ids existed have one too; it tells nothing about
/// the key that the hash does not.
pub fn key_id(hash: &str) -> String {
    let digits = hash.get(..KEY_ID_DIGITS).unwrap_or(hash);
    format!("{KEY_ID_PREFIX}{digits}")
}

/// The hash digits a key id names (`key_` + 16 lowercase hex digits), `None` for text
/// that is not a key id.
pub fn parse_key_id(id: &str) -> Option<&str> {
    let digits = id.strip_prefix(KEY_ID_PREFIX)?;
    (digits.len() == KEY_ID_DIGITS
        && digits
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
    .then_some(digits)
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
        assert_eq!(a.record.id(), format!("key_{}", &a.record.hash[..16]));
        assert_eq!(parse_key_id(&a.record.id()), Some(&a.record.hash[..16]));
        assert!(!format!("{a:?}").contains(&a.secret));
        // No piece of the key in what is stored, shown or logged.
        let record = serde_json::to_string(&a.record).unwrap();
        let shown = format!("{a:?} {:?} {record}", a.record);
        for piece in a.secret.as_bytes().windows(10) {
            let piece = std::str::from_utf8(piece).unwrap();
            assert!(!shown.contains(piece), "{piece} of the key in {shown}");
        }
        assert!(plausible_key(&a.secret));
        assert!(!plausible_key("short"));
        assert!(!plausible_key("has a space in it......"));
        assert!(!plausible_key("mt_looks_like_an_end_user_token"));
    }

    #[test]
    fn key_ids_are_key_and_16_lowercase_hex_digits() {
        assert_eq!(
            parse_key_id("key_0123456789abcdef"),
            Some("0123456789abcdef")
        );
        for bad in [
            "",
            "key_",
            "0123456789abcdef",
            "key_0123456789ABCDEF",
            "key_0123456789abcde",
            "key_0123456789abcdef0",
            "kex_0123456789abcdef",
            "key_0123456789abcdeg",
        ] {
            assert_eq!(parse_key_id(bad), None, "{bad}");
        }
        assert_eq!(
            key_id(&hash_key("x")),
            format!("key_{}", &hash_key("x")[..16])
        );
    }

    #[test]
    fn admin_role_covers_service_but_not_the_reverse() {
        assert!(Role::Admin.allows(Role::Service));
        assert!(Role::Admin.allows(Role::Admin));
        assert!(Role::Service.allows(Role::Service));
        assert!(!Role::Service.allows(Role::Admin));
    }
}
