//! `usage-dashboard`: the read routes and admin writes, as an AWS Lambda function behind
//! the HTTP API: plans, pricing, quotes, alerts, usage, trends, dashboard, billing and
//! subscriptions (GET), and the admin writes PUT subscription, PUT /plans/{name}, PUT /pricing.
//! It also takes the API's `$default` route (every request no route matches), so it runs
//! every route of meter: API Gateway sends it only what matches none of the others, which
//! the router answers with meter's envelope, 404 `route_not_found` or (a known path with
//! another method, whichever function owns the path) 405 `method_not_allowed`.
//! Configuration: TABLE_NAME, ALERT_TOPIC_ARN, RUST_LOG, METER_STACK (the metrics' `stack`
//! dimension); AWS_ENDPOINT_URL for an emulator.

use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    let meter = meter_core::config::meter_from_env().await?;
    tracing::info!(function = "usage-dashboard", "starting");
    let router = meter_core::http::app(Arc::new(meter));
    // Business metrics as EMF lines on stdout, flushed after each invocation.
    lambda_http::run(meter_core::metrics::emf::per_invocation(router)).await
}
