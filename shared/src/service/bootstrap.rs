//! First-start bootstrap: a tenant's default plans, the shared default catalog, and an
//! admin key.

use chrono::{DateTime, Utc};

use crate::auth;
use crate::domain::{Role, TenantId};
use crate::limits;
use crate::pricing::Catalog;
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the shipped default data is invalid: {0}")]
    Data(String),
    #[error("METER_BOOTSTRAP_ADMIN_KEY must be 20–200 printable ASCII characters without spaces, not starting with mt_")]
    BadKey,
}

/// What bootstrap did.
#[derive(Debug, Default)]
pub struct Bootstrapped {
    pub tenant_created: bool,
    pub catalog_loaded: usize,
    /// A newly generated admin key, to print once.
    pub new_admin_key: Option<String>,
}

/// Creates `tenant` with the default plans if it is new, loads the shipped catalog into an
/// empty shared catalog, and makes sure an admin key exists: `admin_key` if given (stored
/// as a hash; idempotent), else a generated one when the tenant is new.
pub async fn bootstrap(
    store: &dyn Store,
    tenant: &TenantId,
    admin_key: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Bootstrapped, BootstrapError> {
    let mut done = Bootstrapped {
        tenant_created: ensure_tenant(store, tenant, now).await?,
        ..Default::default()
    };
    if store.list_price_versions(None).await?.is_empty() {
        let catalog =
            Catalog::default_catalog().map_err(|e| BootstrapError::Data(e.to_string()))?;
        for v in catalog.versions() {
            let json = serde_json::to_value(v).map_err(|e| BootstrapError::Data(e.to_string()))?;
            store.put_price_version(None, &v.id, &json).await?;
            done.catalog_loaded += 1;
        }
    }
    match admin_key {
        Some(key) => {
            if !auth::plausible_key(key) {
                return Err(BootstrapError::BadKey);
            }
            store
                .put_api_key(&auth::record_for(key, tenant, Role::Admin, now))
                .await?;
        }
        None if done.tenant_created => {
            let key = auth::generate_key(tenant, Role::Admin, now);
            store.put_api_key(&key.record).await?;
            done.new_admin_key = Some(key.secret);
        }
        None => {}
    }
    Ok(done)
}

/// Creates the tenant with the shipped default plans unless it exists; `true` if created.
pub async fn ensure_tenant(
    store: &dyn Store,
    tenant: &TenantId,
    now: DateTime<Utc>,
) -> Result<bool, BootstrapError> {
    if !store.create_tenant_if_absent(tenant, now).await? {
        return Ok(false);
    }
    for plan in limits::default_plans() {
        store.put_plan(tenant, &plan).await?;
    }
    Ok(true)
}
