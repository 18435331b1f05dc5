//! `usage-aggregate`: the scheduled aggregation (EventBridge schedule, `lambda_runtime`).
//! Each invocation runs one pass (`Meter::aggregate`) within the invocation's remaining
//! time; a pass cut short resumes at the next schedule from its stored cursors.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use lambda_runtime::{service_fn, Error, LambdaEvent};
use meter_core::service::aggregate::AggregateOptions;
use serde_json::Value;

/// Time kept free at the end of an invocation to finish the current page and answer.
const SAFETY: Duration = Duration::from_secs(20);

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let meter = Arc::new(meter_core::service::env::meter_from_env().await?);
    tracing::info!(function = "usage-aggregate", "starting");
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let meter = meter.clone();
        async move {
            let deadline = SystemTime::UNIX_EPOCH + Duration::from_millis(event.context.deadline);
            let budget = deadline
                .duration_since(SystemTime::now())
                .unwrap_or_default()
                .saturating_sub(SAFETY);
            let opts = AggregateOptions {
                budget: Some(budget),
                ..AggregateOptions::default()
            };
            let report = meter
                .aggregate(&opts)
                .await
                .map_err(|e| Error::from(e.to_string()))?;
            Ok::<Value, Error>(serde_json::to_value(report)?)
        }
    }))
    .await
}
