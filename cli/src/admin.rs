//! What the admin subcommands that call the service share (`budgets`, `wallet`,
//! `subscription set`): the service on the opened store with an admin caller, the API's
//! error text, and one JSON line of output.

use anyhow::{anyhow, Result};
use meter_core::domain::{Role, TenantId};
use meter_core::http::ApiError;
use meter_core::service::{Caller, Meter};

use crate::StoreArgs;

/// The service over the store `store` names, and the tenant's admin as the caller (alerts
/// go to the log: the CLI publishes nothing).
pub async fn meter_on(store: &StoreArgs, tenant: &TenantId) -> Result<(Meter, Caller)> {
    let store = store.open().await?;
    let meter = Meter::new(store, std::sync::Arc::new(meter_core::alerts::LogPublisher));
    let caller = Caller {
        tenant: tenant.clone(),
        role: Role::Admin,
        key_id: "cli".to_owned(),
    };
    Ok((meter, caller))
}

/// The error as the API would answer it: code, message, details.
pub fn refused(e: impl Into<ApiError>) -> anyhow::Error {
    let e = e.into();
    anyhow!("{} ({}): {}", e.code(), e.message(), e.details())
}

/// `data` as one line of JSON on stdout.
pub fn print<T: serde::Serialize>(data: &T) -> Result<()> {
    println!("{}", serde_json::to_string(data)?);
    Ok(())
}
