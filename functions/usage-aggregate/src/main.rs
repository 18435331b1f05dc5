//! `usage-aggregate`: the scheduled aggregation (EventBridge schedule, `lambda_runtime`).
//! For now it expires reservations past their TTL and retries undelivered alerts.

use std::sync::Arc;

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let meter = Arc::new(meter_core::service::env::meter_from_env().await?);
    tracing::info!(function = "usage-aggregate", "starting");
    lambda_runtime::run(service_fn(move |_event: LambdaEvent<Value>| {
        let meter = meter.clone();
        async move {
            let (expired, delivered) = meter
                .sweep()
                .await
                .map_err(|e| Error::from(e.to_string()))?;
            tracing::info!(expired, delivered, "aggregation pass");
            Ok::<Value, Error>(
                json!({ "expired_reservations": expired, "alerts_delivered": delivered }),
            )
        }
    }))
    .await
}
