//! `meter tokens rotate-secret`: rotate a tenant's end-user token signing key.

use anyhow::{anyhow, Result};
use clap::Args;
use meter_core::domain::TenantId;
use meter_core::service::tokens::DEFAULT_ROTATION_GRACE_SECONDS;
use meter_core::service::Meter;

use crate::StoreArgs;

#[derive(Args)]
pub struct RotateArgs {
    /// The tenant whose key to rotate.
    #[arg(long, default_value = "default")]
    tenant: TenantId,
    /// How long tokens signed with the old key stay valid (seconds; default a day, the
    /// longest token lifetime, so none dies early). 0: every outstanding token dies now
    /// (a leaked key); processes that cached the old key accept it for up to 30 s more.
    #[arg(long, default_value_t = DEFAULT_ROTATION_GRACE_SECONDS)]
    grace_seconds: u64,
    #[command(flatten)]
    store: StoreArgs,
}

pub async fn rotate(args: RotateArgs) -> Result<()> {
    let grace = i64::try_from(args.grace_seconds)
        .ok()
        .filter(|s| *s <= 10 * 365 * 86_400)
        .map(chrono::Duration::seconds)
        .ok_or_else(|| anyhow!("--grace-seconds is too large"))?;
    let store = args.store.open().await?;
    let meter = Meter::new(store, std::sync::Arc::new(meter_core::alerts::LogPublisher));
    let rotation = meter
        .rotate_token_keys(&args.tenant, grace)
        .await
        .map_err(|e| anyhow!("rotating the token key: {e}"))?;
    println!("{}", serde_json::to_string(&rotation)?);
    match (&rotation.previous_key_id, rotation.previous_valid_until) {
        (None, _) => eprintln!(
            "Tenant {} had no token key: created key {} (nothing to retire).",
            rotation.tenant, rotation.key_id
        ),
        (Some(old), Some(until)) => eprintln!(
            "Tenant {}: new tokens are signed with key {}; tokens of key {old} stay valid until {until}.",
            rotation.tenant, rotation.key_id
        ),
        (Some(old), None) => eprintln!(
            "Tenant {}: new tokens are signed with key {}; tokens of key {old} are refused now.",
            rotation.tenant, rotation.key_id
        ),
    }
    Ok(())
}
