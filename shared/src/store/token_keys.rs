//! Where each tenant's token signing keys live (see [`crate::tokens`]). The secrets are
//! stored as they are (an HMAC key cannot be hashed): protect the database file or table
//! as the rest of the data. They never leave the store but to sign and verify.

use async_trait::async_trait;

use super::StoreResult;
use crate::domain::TenantId;
use crate::tokens::TokenKeys;

#[async_trait]
pub trait TokenKeyStore: Send + Sync {
    /// The tenant's signing keys; `None` before its first token.
    async fn get_token_keys(&self, tenant: &TenantId) -> StoreResult<Option<TokenKeys>>;

    /// Stores `keys` unless the tenant has keys already; returns the tenant's keys after
    /// the call (these, or the ones a concurrent first use stored).
    async fn create_token_keys(&self, keys: &TokenKeys) -> StoreResult<TokenKeys>;

    /// Replaces the tenant's keys with `keys` if the stored version is `expected_version`;
    /// otherwise `VersionConflict` and nothing changes.
    async fn replace_token_keys(&self, keys: &TokenKeys, expected_version: u64) -> StoreResult<()>;
}
