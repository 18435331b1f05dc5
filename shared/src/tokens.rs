//! End-user tokens: signed, expiring, read-only links into one user's or one
//! organisation's dashboard.
//!
//! A token is `mt_<payload>.<signature>`: the payload is base64url (no padding) of a small
//! JSON object — tenant `t`, user `u` or organisation `o` (exactly one), signing key id `k`,
//! issued `iat` and expiry `exp` in epoch seconds — and the signature is base64url of HMAC-SHA256 over `mt1.<payload>` with
//! the tenant's signing secret. The `mt_` prefix tells a token from an API key (`mk_…`).
//!
//! The rules here are pure: signing, verifying (signature first, in constant time, then the
//! expiry), and the key ring of a tenant — the current signing key and, after a rotation,
//! the previous one, still accepted until its `retire_at`. Where keys are stored and which
//! routes a token opens live in `service::tokens` and `http::tokens`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Duration, TimeZone as _, Utc};
use hmac::{Hmac, Mac};
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::domain::{OrgId, TenantId, UserId};

/// Every token starts with this (API keys start with `mk_`).
pub const TOKEN_PREFIX: &str = "mt_";
/// Longest lifetime a token may be given.
pub const MAX_TTL_SECONDS: u64 = 86_400;
/// Longest token text accepted (a payload with 128-character tenant and user ids is
/// about 480 characters).
pub const MAX_TOKEN_LEN: usize = 1024;
/// What the signature covers before the payload (versioned domain separation).
const SIGNING_CONTEXT: &str = "mt1.";
/// Bytes of a signing secret.
const SECRET_LEN: usize = 32;

type HmacSha256 = Hmac<Sha256>;

/// Whether `s` is shaped like a token (the prefix only; [`verify`] decides the rest).
pub fn is_token(s: &str) -> bool {
    s.starts_with(TOKEN_PREFIX)
}

/// Why a token is not accepted. Every variant answers 401 alike; the variants exist for
/// tests and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("not a token")]
    Malformed,
    #[error("signed with a key the tenant does not have (rotated away)")]
    UnknownKey,
    #[error("bad signature")]
    BadSignature,
    #[error("expired")]
    Expired,
}

/// Whose reads a token opens: one user's, or one organisation's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    User(UserId),
    Org(OrgId),
}

/// Who and what a token is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub tenant: TenantId,
    pub subject: Subject,
    /// Id of the signing key.
    pub key_id: String,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// The payload's JSON form.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    t: String,
    /// The user (a user token); absent in an organisation's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    u: Option<String>,
    /// The organisation (an org token); absent in a user's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    o: Option<String>,
    k: String,
    iat: i64,
    exp: i64,
}

/// One signing secret. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey {
    /// Short public id carried by tokens (12 hex digits).
    pub id: String,
    secret: [u8; SECRET_LEN],
    pub created_at: DateTime<Utc>,
    /// Tokens signed with this key are refused from this instant (set on the previous
    /// key by a rotation; `None` for the current key).
    pub retire_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("id", &self.id)
            .field("created_at", &self.created_at)
            .field("retire_at", &self.retire_at)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh random key.
    pub fn generate(now: DateTime<Utc>) -> Self {
        let mut secret = [0u8; SECRET_LEN];
        rand::rng().fill_bytes(&mut secret);
        let mut id = [0u8; 6];
        rand::rng().fill_bytes(&mut id);
        Self {
            id: hex::encode(id),
            secret,
            created_at: now,
            retire_at: None,
        }
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC takes keys of any length; 32 bytes never fails.
        HmacSha256::new_from_slice(&self.secret).unwrap_or_else(|_| unreachable!())
    }
}

/// A tenant's signing keys: the current one signs, the previous one (after a rotation)
/// still verifies until its `retire_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenKeys {
    pub tenant: TenantId,
    pub current: SigningKey,
    pub previous: Option<SigningKey>,
    /// Optimistic-concurrency version, bumped by every rotation.
    pub version: u64,
}

impl TokenKeys {
    /// The first keys of a tenant.
    pub fn generate(tenant: &TenantId, now: DateTime<Utc>) -> Self {
        Self {
            tenant: tenant.clone(),
            current: SigningKey::generate(now),
            previous: None,
            version: 1,
        }
    }

    /// The keys after a rotation at `now`: a new current key; the old one verifies for
    /// `grace` more (zero: tokens signed with it die at once). A previous key older than
    /// that is dropped.
    pub fn rotated(&self, now: DateTime<Utc>, grace: Duration) -> Self {
        let mut previous = self.current.clone();
        previous.retire_at = Some(now + grace.max(Duration::zero()));
        Self {
            tenant: self.tenant.clone(),
            current: SigningKey::generate(now),
            previous: (grace > Duration::zero()).then_some(previous),
            version: self.version + 1,
        }
    }

    /// The key with this id that may verify tokens at `now`.
    pub fn verifying_key(&self, id: &str, now: DateTime<Utc>) -> Option<&SigningKey> {
        [Some(&self.current), self.previous.as_ref()]
            .into_iter()
            .flatten()
            .find(|k| k.id == id && k.retire_at.is_none_or(|r| now < r))
    }

    /// Whether a key with this id is among the keys, retired or not.
    pub fn knows(&self, id: &str) -> bool {
        self.current.id == id || self.previous.as_ref().is_some_and(|k| k.id == id)
    }

    /// The stored form (JSON text with the secrets in base64). Only store adapters call
    /// this; it is never logged or answered.
    pub fn to_stored(&self) -> String {
        let key = |k: &SigningKey| StoredKey {
            id: k.id.clone(),
            secret: URL_SAFE_NO_PAD.encode(k.secret),
            created_at: k.created_at,
            retire_at: k.retire_at,
        };
        let doc = StoredKeys {
            tenant: self.tenant.to_string(),
            current: key(&self.current),
            previous: self.previous.as_ref().map(key),
            version: self.version,
        };
        serde_json::to_string(&doc).unwrap_or_default()
    }

    /// Reads the stored form back; `None` if it is not one.
    pub fn from_stored(text: &str) -> Option<Self> {
        let doc: StoredKeys = serde_json::from_str(text).ok()?;
        let key = |k: StoredKey| -> Option<SigningKey> {
            let bytes = URL_SAFE_NO_PAD.decode(k.secret).ok()?;
            Some(SigningKey {
                id: k.id,
                secret: bytes.try_into().ok()?,
                created_at: k.created_at,
                retire_at: k.retire_at,
            })
        };
        Some(Self {
            tenant: TenantId::parse(doc.tenant).ok()?,
            current: key(doc.current)?,
            previous: match doc.previous {
                Some(p) => Some(key(p)?),
                None => None,
            },
            version: doc.version,
        })
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredKey {
    id: String,
    secret: String,
    created_at: DateTime<Utc>,
    retire_at: Option<DateTime<Utc>>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredKeys {
    tenant: String,
    current: StoredKey,
    previous: Option<StoredKey>,
    version: u64,
}

/// A token for `user` of the keys' tenant, signed with the current key, good from `now`
/// for `ttl` (the caller bounds it by [`MAX_TTL_SECONDS`]).
pub fn sign(keys: &TokenKeys, user: &UserId, now: DateTime<Utc>, ttl: Duration) -> String {
    sign_for(keys, &Subject::User(user.clone()), now, ttl)
}

/// A token for `subject` (a user or an organisation) of the keys' tenant, as [`sign`].
pub fn sign_for(keys: &TokenKeys, subject: &Subject, now: DateTime<Utc>, ttl: Duration) -> String {
    let (u, o) = match subject {
        Subject::User(u) => (Some(u.to_string()), None),
        Subject::Org(o) => (None, Some(o.to_string())),
    };
    let payload = Payload {
        t: keys.tenant.to_string(),
        u,
        o,
        k: keys.current.id.clone(),
        iat: now.timestamp(),
        exp: (now + ttl).timestamp(),
    };
    let json = serde_json::to_vec(&payload).unwrap_or_default();
    let payload = URL_SAFE_NO_PAD.encode(json);
    let mut mac = keys.current.mac();
    mac.update(SIGNING_CONTEXT.as_bytes());
    mac.update(payload.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{TOKEN_PREFIX}{payload}.{signature}")
}

/// The claims a token states, **unverified**: which tenant's keys to fetch. Never trust
/// them before [`verify`].
pub fn peek(token: &str) -> Result<Claims, TokenError> {
    let (payload, _) = split(token)?;
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| TokenError::Malformed)?;
    let p: Payload = serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)?;
    let time = |secs: i64| {
        Utc.timestamp_opt(secs, 0)
            .single()
            .ok_or(TokenError::Malformed)
    };
    let subject = match (p.u, p.o) {
        (Some(u), None) => Subject::User(UserId::parse(u).map_err(|_| TokenError::Malformed)?),
        (None, Some(o)) => Subject::Org(OrgId::parse(o).map_err(|_| TokenError::Malformed)?),
        _ => return Err(TokenError::Malformed),
    };
    Ok(Claims {
        tenant: TenantId::parse(p.t).map_err(|_| TokenError::Malformed)?,
        subject,
        key_id: p.k,
        issued_at: time(p.iat)?,
        expires_at: time(p.exp)?,
    })
}

fn split(token: &str) -> Result<(&str, &str), TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed);
    }
    token
        .strip_prefix(TOKEN_PREFIX)
        .and_then(|rest| rest.split_once('.'))
        .filter(|(p, s)| !p.is_empty() && !s.is_empty() && !s.contains('.'))
        .ok_or(TokenError::Malformed)
}

/// The claims of a token signed with one of `keys` (of the token's tenant) and not
/// expired at `now`. The signature is checked in constant time before anything else
/// about the payload is believed.
pub fn verify(token: &str, keys: &TokenKeys, now: DateTime<Utc>) -> Result<Claims, TokenError> {
    let claims = peek(token)?;
    if claims.tenant != keys.tenant {
        return Err(TokenError::UnknownKey);
    }
    let key = keys
        .verifying_key(&claims.key_id, now)
        .ok_or(TokenError::UnknownKey)?;
    let (payload, signature) = split(token)?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| TokenError::BadSignature)?;
    let mut mac = key.mac();
    mac.update(SIGNING_CONTEXT.as_bytes());
    mac.update(payload.as_bytes());
    mac.verify_slice(&signature)
        .map_err(|_| TokenError::BadSignature)?;
    if now >= claims.expires_at {
        return Err(TokenError::Expired);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> DateTime<Utc> {
        "2025-03-10T12:00:00Z".parse().unwrap()
    }

    fn keys() -> TokenKeys {
        TokenKeys::generate(&TenantId::parse("acme").unwrap(), t0())
    }

    fn alice() -> UserId {
        UserId::parse("alice@example.com").unwrap()
    }

    #[test]
    fn a_signed_token_verifies_until_it_expires() {
        let k = keys();
        let token = sign(&k, &alice(), t0(), Duration::seconds(600));
        assert!(is_token(&token));
        assert!(token.len() < 300, "{}", token.len());
        let claims = verify(&token, &k, t0() + Duration::seconds(599)).unwrap();
        assert_eq!(claims.subject, Subject::User(alice()));
        assert_eq!(claims.tenant.as_str(), "acme");
        assert_eq!(claims.expires_at, t0() + Duration::seconds(600));
        assert_eq!(
            verify(&token, &k, t0() + Duration::seconds(600)),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn any_change_to_payload_or_signature_is_refused() {
        let k = keys();
        let token = sign(&k, &alice(), t0(), Duration::seconds(600));
        let (payload, signature) = split(&token).unwrap();
        // Another user, same signature.
        let forged = URL_SAFE_NO_PAD.encode(
            String::from_utf8(URL_SAFE_NO_PAD.decode(payload).unwrap())
                .unwrap()
                .replace("alice@example.com", "bob"),
        );
        assert_eq!(
            verify(&format!("mt_{forged}.{signature}"), &k, t0()),
            Err(TokenError::BadSignature)
        );
        // A later expiry, same signature.
        let later = URL_SAFE_NO_PAD.encode(
            String::from_utf8(URL_SAFE_NO_PAD.decode(payload).unwrap())
                .unwrap()
                .replace(
                    &format!("{}", (t0() + Duration::seconds(600)).timestamp()),
                    "9999999999",
                ),
        );
        assert_eq!(
            verify(&format!("mt_{later}.{signature}"), &k, t0()),
            Err(TokenError::BadSignature)
        );
        let mut flipped = signature.to_owned().into_bytes();
        flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert_eq!(
            verify(&format!("mt_{payload}.{flipped}"), &k, t0()),
            Err(TokenError::BadSignature)
        );
        // Another tenant's keys never verify it, even with the same key id.
        let mut other = TokenKeys::generate(&TenantId::parse("other").unwrap(), t0());
        other.current.id = k.current.id.clone();
        assert!(verify(&token, &other, t0()).is_err());
        let mut same_tenant_other_secret = TokenKeys::generate(&k.tenant, t0());
        same_tenant_other_secret.current.id = k.current.id.clone();
        assert_eq!(
            verify(&token, &same_tenant_other_secret, t0()),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        let k = keys();
        for bad in [
            "",
            "mt_",
            "mt_.",
            "mt_abc",
            "mt_abc.",
            "mt_.abc",
            "mt_a.b.c",
            "mk_abc.def",
            "mt_%%%.abc",
            "mt_e30.abc",
        ] {
            assert_eq!(verify(bad, &k, t0()), Err(TokenError::Malformed), "{bad}");
        }
        let long = format!("mt_{}.x", "a".repeat(MAX_TOKEN_LEN));
        assert_eq!(verify(&long, &k, t0()), Err(TokenError::Malformed));
    }

    #[test]
    fn rotation_keeps_the_previous_key_for_the_grace_period_only() {
        let k = keys();
        let old = sign(&k, &alice(), t0(), Duration::seconds(86_400));
        let r = k.rotated(t0() + Duration::hours(1), Duration::hours(2));
        assert_eq!(r.version, k.version + 1);
        assert_ne!(r.current.id, k.current.id);
        assert!(verify(&old, &r, t0() + Duration::hours(2)).is_ok());
        assert_eq!(
            verify(&old, &r, t0() + Duration::hours(3)),
            Err(TokenError::UnknownKey)
        );
        let new = sign(&r, &alice(), t0() + Duration::hours(1), Duration::hours(1));
        assert!(verify(&new, &r, t0() + Duration::hours(1)).is_ok());
        assert!(
            verify(&new, &k, t0() + Duration::hours(1)).is_err(),
            "the old keys do not know the new key"
        );
        // A second rotation drops the first key entirely; a zero grace kills at once.
        let r2 = r.rotated(t0() + Duration::hours(1), Duration::zero());
        assert!(r2.previous.is_none());
        assert!(!r2.knows(&k.current.id));
        assert_eq!(
            verify(&new, &r2, t0() + Duration::hours(1)),
            Err(TokenError::UnknownKey)
        );
    }

    #[test]
    fn stored_form_round_trips_and_debug_hides_the_secret() {
        let k = keys().rotated(t0(), Duration::hours(24));
        let text = k.to_stored();
        assert_eq!(TokenKeys::from_stored(&text), Some(k.clone()));
        let secret = URL_SAFE_NO_PAD.encode(k.current.secret);
        assert!(text.contains(&secret));
        assert!(!format!("{k:?}").contains(&secret));
        assert!(!format!("{k:?}").contains(&format!("{:?}", k.current.secret)));
        assert_eq!(TokenKeys::from_stored("{}"), None);
        assert_eq!(TokenKeys::from_stored("not json"), None);
    }

    #[test]
    fn an_org_token_names_its_org_and_a_payload_with_both_or_neither_is_malformed() {
        let k = keys();
        let acme = OrgId::parse("acme-corp").unwrap();
        let token = sign_for(&k, &Subject::Org(acme.clone()), t0(), Duration::seconds(60));
        let claims = verify(&token, &k, t0()).unwrap();
        assert_eq!(claims.subject, Subject::Org(acme));
        let (payload, _) = split(&token).unwrap();
        let text = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        assert!(
            text.contains(r#""o":"acme-corp""#) && !text.contains(r#""u""#),
            "{text}"
        );
        // A user token's payload has no `o`: tokens minted before org tokens still verify.
        let user = sign(&k, &alice(), t0(), Duration::seconds(60));
        let (payload, _) = split(&user).unwrap();
        let text = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        assert!(!text.contains(r#""o""#), "{text}");
        for body in [
            r#"{"t":"acme","u":"alice","o":"acme","k":"x","iat":1,"exp":2}"#,
            r#"{"t":"acme","k":"x","iat":1,"exp":2}"#,
        ] {
            let forged = format!("mt_{}.abc", URL_SAFE_NO_PAD.encode(body));
            assert_eq!(peek(&forged), Err(TokenError::Malformed), "{body}");
        }
    }
}
