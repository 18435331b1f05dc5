//! The operations routes of `meter serve` (not deployed to Lambda, not in openapi.yaml):
//!
//! - `GET /healthz`: `{"success": true, "data": {"status": "ok"}}` without a key, for
//!   container health checks and load balancers (the process is up and serving);
//! - `GET /metrics`: the business metrics in the Prometheus text format
//!   ([`crate::metrics`]), for an admin key, or for anyone with `meter serve --metrics-open`.

use std::sync::Arc;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::error::ok;
use super::extract::Auth;
use super::ApiError;
use crate::domain::Role;
use crate::metrics::prometheus;
use crate::service::Meter;

/// Who may read `GET /metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsAccess {
    /// A bearer key with the admin role.
    AdminKey,
    /// Anyone who reaches the address (bind it to a private interface).
    Open,
}

async fn healthz() -> Response {
    ok(serde_json::json!({ "status": "ok" }))
}

fn metrics_text() -> Response {
    let body = prometheus::render(&crate::metrics::global().snapshot());
    ([(header::CONTENT_TYPE, prometheus::CONTENT_TYPE)], body).into_response()
}

async fn metrics_open() -> Response {
    metrics_text()
}

async fn metrics_admin(Auth(caller): Auth) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    Ok(metrics_text())
}

/// `GET /healthz` and `GET /metrics`, to merge into [`super::app`]; other methods on
/// them answer 405 `method_not_allowed`.
pub fn router(meter: Arc<Meter>, access: MetricsAccess) -> Router {
    let metrics = match access {
        MetricsAccess::AdminKey => get(metrics_admin),
        MetricsAccess::Open => get(metrics_open),
    };
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", metrics)
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(meter)
}
