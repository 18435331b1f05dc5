//! The routers. Each Lambda function serves its sub-router; `meter serve` merges them all.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Path, State};
use axum::response::Response;
use axum::routing::post;
use axum::Router;

use super::error::ok;
use super::extract::{Auth, JsonBody};
use super::{wire, ApiError};
use crate::domain::Role;
use crate::service::Meter;

/// Largest accepted request body.
pub const BODY_LIMIT: usize = 1024 * 1024;
/// Every route lives under this prefix (the seed's paths).
pub const PREFIX: &str = "/api/subscription";

async fn check(
    State(meter): State<Arc<Meter>>,
    Auth(caller): Auth,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    caller.require(Role::Service)?;
    let input = wire::parse_check(&body)?;
    Ok(ok(meter.check(&caller, input).await?))
}

async fn release(
    State(meter): State<Arc<Meter>>,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Role::Service)?;
    Ok(ok(meter.release(&caller, &id).await?))
}

async fn usage(
    State(meter): State<Arc<Meter>>,
    Auth(caller): Auth,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    caller.require(Role::Service)?;
    let events = wire::parse_usage(&body, meter.now())?;
    Ok(ok(meter.ingest(&caller, events).await?))
}

async fn not_found() -> ApiError {
    ApiError::RouteNotFound
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

fn finish(router: Router<Arc<Meter>>, meter: Arc<Meter>) -> Router {
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(meter)
}

fn check_routes() -> Router<Arc<Meter>> {
    Router::new()
        .route(&format!("{PREFIX}/check"), post(check))
        .route(
            &format!("{PREFIX}/reservations/{{id}}/release"),
            post(release),
        )
}

fn usage_routes() -> Router<Arc<Meter>> {
    Router::new().route(&format!("{PREFIX}/usage"), post(usage))
}

/// `limit-check`: POST /check and POST /reservations/{id}/release.
pub fn check_router(meter: Arc<Meter>) -> Router {
    finish(check_routes(), meter)
}

/// `usage-ingest`: POST /usage.
pub fn usage_router(meter: Arc<Meter>) -> Router {
    finish(usage_routes(), meter)
}

/// Every route (`meter serve`).
pub fn app(meter: Arc<Meter>) -> Router {
    finish(check_routes().merge(usage_routes()), meter)
}
