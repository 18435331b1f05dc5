//! The admin's tenant-wide reads (admin key): `GET /admin/users` (a page of the tenant's
//! users with plan, subscription status and this period's usage) and `GET /admin/alerts`
//! (the tenant's latest alerts).

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;

use super::error::ok;
use super::extract::Auth;
use super::paging::{limit, page};
use super::routes::{params, PREFIX};
use super::ApiError;
use crate::domain::{Role, UserId};
use crate::service::tenant::{
    DEFAULT_TENANT_ALERTS, DEFAULT_USERS_PAGE, MAX_TENANT_ALERTS, MAX_USERS_PAGE,
};
use crate::service::Meter;

async fn users(
    State(meter): State<Arc<Meter>>,
    Auth(caller): Auth,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    let (limit, after) = page(query, DEFAULT_USERS_PAGE, MAX_USERS_PAGE, |c| {
        UserId::parse(c)
    })?;
    Ok(ok(meter
        .tenant_users(&caller, after.as_ref(), limit)
        .await?))
}

async fn alerts(
    State(meter): State<Arc<Meter>>,
    Auth(caller): Auth,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    let p = params(query, &["limit"])?;
    let limit = limit(p.get("limit"), DEFAULT_TENANT_ALERTS, MAX_TENANT_ALERTS)?;
    Ok(ok(meter.tenant_alerts(&caller, limit).await?))
}

/// `GET /admin/users`, `GET /admin/alerts`.
pub fn routes() -> Router<Arc<Meter>> {
    Router::new()
        .route(&format!("{PREFIX}/admin/users"), get(users))
        .route(&format!("{PREFIX}/admin/alerts"), get(alerts))
}
