//! `meter subscription set`: the PUT /user/{id}/subscription rules from the command line.

use anyhow::{anyhow, Result};
use meter_core::domain::{Role, TenantId, UserId};
use meter_core::service::{Caller, Meter};
use serde_json::{json, Map, Value};

use crate::StoreArgs;

#[derive(clap::Args)]
pub struct SetArgs {
    #[arg(long, default_value = "default")]
    tenant: TenantId,
    #[arg(long)]
    user: UserId,
    /// The plan (an upgrade applies at once and is prorated; a downgrade waits for the
    /// next period).
    #[arg(long)]
    plan: Option<String>,
    /// monthly or yearly (new subscriptions only).
    #[arg(long)]
    billing_cycle: Option<String>,
    /// calendar or anniversary (new subscriptions only).
    #[arg(long)]
    anchor: Option<String>,
    /// active, past_due, suspended or cancelled.
    #[arg(long)]
    status: Option<String>,
    #[arg(long)]
    auto_renew: Option<bool>,
    #[command(flatten)]
    store: StoreArgs,
}

/// An API error as the HTTP API would answer it: code, message, details.
fn api_error(e: meter_core::http::ApiError) -> anyhow::Error {
    anyhow!(
        "{} ({}): {}",
        e.code(),
        e.status().as_u16(),
        json!({"message": e.message(), "details": e.details()})
    )
}

pub async fn set(args: SetArgs) -> Result<()> {
    let mut body = Map::new();
    for (k, v) in [
        ("plan", args.plan.map(Value::from)),
        ("billing_cycle", args.billing_cycle.map(Value::from)),
        ("anchor", args.anchor.map(Value::from)),
        ("status", args.status.map(Value::from)),
        ("auto_renew", args.auto_renew.map(Value::from)),
    ] {
        if let Some(v) = v {
            body.insert(k.to_owned(), v);
        }
    }
    let input =
        meter_core::http::admin::parse_subscription(&Value::Object(body)).map_err(api_error)?;
    let store = args.store.open().await?;
    let meter = Meter::new(store, std::sync::Arc::new(meter_core::alerts::LogPublisher));
    let caller = Caller {
        tenant: args.tenant,
        role: Role::Admin,
        key_prefix: "cli".to_owned(),
    };
    let out = meter
        .put_subscription(&caller, &args.user, &input)
        .await
        .map_err(api_error)?;
    println!("{}", json!(out));
    Ok(())
}
