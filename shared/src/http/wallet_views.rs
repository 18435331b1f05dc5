//! The views of wallets (admin key; issue 19): `GET /org/{org_id}/export` (everything
//! stored about an org, with the draws its wallet paid) and `GET /admin/wallets` (a page
//! of the tenant's wallets with their figures, for the web app's tenant view).

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;

use super::error::ok;
use super::extract::Auth;
use super::paging::page;
use super::routes::PREFIX;
use super::ApiError;
use crate::credits::Subscriber;
use crate::domain::{OrgId, Role};
use crate::service::wallet_views::{DEFAULT_WALLETS_PAGE, MAX_WALLETS_PAGE};
use crate::service::Meter;

async fn export_org(
    State(meter): State<Arc<Meter>>,
    Auth(caller): Auth,
    Path(org): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    let org = OrgId::parse(&org).map_err(|e| ApiError::bad_request("invalid_id", e.to_string()))?;
    Ok(ok(meter.export_org(&caller, &org).await?))
}

async fn wallets(
    State(meter): State<Arc<Meter>>,
    Auth(caller): Auth,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    // A cursor this route gave is the last wallet of a page: `user/<id>` or `org/<id>`.
    let (limit, after) = page(query, DEFAULT_WALLETS_PAGE, MAX_WALLETS_PAGE, |c| {
        c.parse::<Subscriber>()
    })?;
    Ok(ok(meter
        .tenant_wallets(&caller, after.as_ref(), limit)
        .await?))
}

/// `GET /org/{org_id}/export`, `GET /admin/wallets`.
pub fn routes() -> Router<Arc<Meter>> {
    Router::new()
        .route(&format!("{PREFIX}/org/{{org_id}}/export"), get(export_org))
        .route(&format!("{PREFIX}/admin/wallets"), get(wallets))
}
