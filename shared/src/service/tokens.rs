//! End-user tokens: minting them for a user or an organisation, verifying them, rotating a
//! tenant's signing keys. The token rules are in [`crate::tokens`]; which routes a token
//! opens is decided in `http::tokens`.
//!
//! Signing keys are created on a tenant's first token and cached like API keys
//! ([`super::CACHE_TTL`]). A token signed with a key this process has not seen yet (a
//! rotation made elsewhere) makes it read the keys again at once.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::{Caller, Error, Meter, Result};
use crate::domain::{OrgId, TenantId, UserId};
use crate::store::StoreError;
use crate::tokens::{self, Claims, Subject, TokenKeys};

/// Default lifetime of a minted token.
pub const DEFAULT_TTL_SECONDS: u64 = 3_600;
/// How long a rotated-away key still verifies, by default: the longest token lifetime,
/// so that no token dies early.
pub const DEFAULT_ROTATION_GRACE_SECONDS: u64 = tokens::MAX_TTL_SECONDS;

/// What a token opens, as JSON (`{"kind": "user", "user_id": …}` or `{"kind": "org",
/// "org_id": …}`, the scope shape of budgets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TokenScope {
    User { user_id: UserId },
    Org { org_id: OrgId },
}

/// `POST /tokens`: the token, shown once (it is not stored).
#[derive(Debug, Clone, Serialize)]
pub struct MintedToken {
    pub token: String,
    pub token_type: &'static str,
    pub expires_at: DateTime<Utc>,
    pub scope: TokenScope,
}

/// The outcome of a rotation (no secret in it).
#[derive(Debug, Clone, Serialize)]
pub struct Rotation {
    pub tenant: TenantId,
    pub key_id: String,
    pub previous_key_id: Option<String>,
    /// Tokens signed with the previous key are refused from then (`null`: at once).
    pub previous_valid_until: Option<DateTime<Utc>>,
}

impl Meter {
    /// The tenant's signing keys (cached); with `key_id`, read again when the cached keys
    /// do not know that key. `None` when the tenant never minted a token.
    async fn token_keys(
        &self,
        tenant: &TenantId,
        key_id: Option<&str>,
    ) -> Result<Option<Arc<TokenKeys>>> {
        if let Some(k) = self.token_keys.get(tenant) {
            if key_id.is_none_or(|id| k.knows(id)) {
                return Ok(Some(k));
            }
        }
        match self.store.get_token_keys(tenant).await? {
            Some(k) => Ok(Some(self.token_keys.put(tenant.clone(), k))),
            None => Ok(None),
        }
    }

    /// POST /tokens: a read-only token for `user`, good for `ttl_seconds` (1..=86,400;
    /// the caller validated it). Creates the tenant's signing keys on first use.
    pub async fn mint_token(
        &self,
        caller: &Caller,
        user: &UserId,
        ttl_seconds: u64,
    ) -> Result<MintedToken> {
        self.mint_token_for(caller, &Subject::User(user.clone()), ttl_seconds)
            .await
    }

    /// POST /tokens: a read-only token for a user or an organisation, as [`Self::mint_token`].
    pub async fn mint_token_for(
        &self,
        caller: &Caller,
        subject: &Subject,
        ttl_seconds: u64,
    ) -> Result<MintedToken> {
        let now = self.now();
        let keys = match self.token_keys(&caller.tenant, None).await? {
            Some(k) => k,
            None => {
                let fresh = TokenKeys::generate(&caller.tenant, now);
                let stored = self.store.create_token_keys(&fresh).await?;
                tracing::info!(tenant = %caller.tenant, key_id = %stored.current.id, "created the tenant's token signing key");
                self.token_keys.put(caller.tenant.clone(), stored)
            }
        };
        let ttl = Duration::seconds(i64::try_from(ttl_seconds).unwrap_or(0));
        let token = tokens::sign_for(&keys, subject, now, ttl);
        let scope = match subject {
            Subject::User(user) => {
                tracing::info!(tenant = %caller.tenant, user = %user, key_id = %keys.current.id, ttl_seconds, "minted an end-user token");
                TokenScope::User {
                    user_id: user.clone(),
                }
            }
            Subject::Org(org) => {
                tracing::info!(tenant = %caller.tenant, org = %org, key_id = %keys.current.id, ttl_seconds, "minted an organisation token");
                TokenScope::Org {
                    org_id: org.clone(),
                }
            }
        };
        Ok(MintedToken {
            token,
            token_type: "Bearer",
            expires_at: now + ttl,
            scope,
        })
    }

    /// The claims of a valid, unexpired token of ours; 401 otherwise (whatever the reason:
    /// the log says which).
    pub async fn verify_token(&self, token: &str) -> Result<Claims> {
        let claimed = tokens::peek(token).map_err(|_| Error::Unauthorized)?;
        let Some(keys) = self
            .token_keys(&claimed.tenant, Some(&claimed.key_id))
            .await?
        else {
            return Err(Error::Unauthorized);
        };
        tokens::verify(token, &keys, self.now()).map_err(|e| {
            tracing::info!(tenant = %claimed.tenant, key_id = %claimed.key_id, reason = %e, "token refused");
            Error::Unauthorized
        })
    }

    /// Rotates the tenant's signing keys: a new key signs from now on; the previous one
    /// still verifies for `grace` (zero: every outstanding token dies; other processes
    /// may accept them for up to the cache time, 30 s). Creates keys if there were none.
    pub async fn rotate_token_keys(&self, tenant: &TenantId, grace: Duration) -> Result<Rotation> {
        for _ in 0..5 {
            let now = self.now();
            let current = match self.store.get_token_keys(tenant).await? {
                Some(k) => k,
                None => {
                    let stored = self
                        .store
                        .create_token_keys(&TokenKeys::generate(tenant, now))
                        .await?;
                    self.token_keys.forget(tenant);
                    return Ok(Rotation {
                        tenant: tenant.clone(),
                        key_id: stored.current.id.clone(),
                        previous_key_id: None,
                        previous_valid_until: None,
                    });
                }
            };
            let next = current.rotated(now, grace);
            match self.store.replace_token_keys(&next, current.version).await {
                Ok(()) => {
                    self.token_keys.forget(tenant);
                    tracing::info!(tenant = %tenant, key_id = %next.current.id, previous = %current.current.id, "rotated the token signing key");
                    return Ok(Rotation {
                        tenant: tenant.clone(),
                        key_id: next.current.id.clone(),
                        previous_key_id: Some(current.current.id.clone()),
                        previous_valid_until: next.previous.as_ref().and_then(|p| p.retire_at),
                    });
                }
                Err(StoreError::VersionConflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Conflict("the token signing keys"))
    }

    /// Whom an alert of the tenant belongs to (what a token may mark read): its org for
    /// an org's alert, else its user; `None` when the tenant has no such alert.
    pub async fn alert_owner(&self, tenant: &TenantId, alert_id: &str) -> Result<Option<Subject>> {
        Ok(self
            .store
            .get_alert(tenant, alert_id)
            .await?
            .map(|a| match a.org {
                Some(org) => Subject::Org(org),
                None => Subject::User(a.user),
            }))
    }
}
