//! `GET /admin/orgs` (admin key): a page of the tenant's orgs with plan and this period's
//! pooled usage (service::tenant_orgs).

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;

use super::error::ok;
use super::extract::Auth;
use super::paging::page;
use super::routes::PREFIX;
use super::ApiError;
use crate::domain::{OrgId, Role};
use crate::service::tenant_orgs::{DEFAULT_ORGS_PAGE, MAX_ORGS_PAGE};
use crate::service::Meter;

async fn orgs(
    State(meter): State<Arc<Meter>>,
    Auth(caller): Auth,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    let (limit, after) = page(query, DEFAULT_ORGS_PAGE, MAX_ORGS_PAGE, |c| OrgId::parse(c))?;
    Ok(ok(meter
        .tenant_orgs(&caller, after.as_ref(), limit)
        .await?))
}

/// `GET /admin/orgs`.
pub fn routes() -> Router<Arc<Meter>> {
    Router::new().route(&format!("{PREFIX}/admin/orgs"), get(orgs))
}
