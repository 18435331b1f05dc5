//! Organisation routes (SPEC §10): `GET`/`PUT /org/{org_id}/subscription` (the body and
//! rules of a user's subscription, `http::admin::parse_subscription`) and
//! `GET /org/{org_id}/billing` (the org's invoices), and the org's reads of its current
//! period: `GET /org/{org_id}/usage`, `/members?limit=&cursor=` and `/dashboard`; and the
//! org's alerts, `GET /org/{org_id}/alerts?unread_only=&limit=` (as a user's).

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;

use super::error::ok;
use super::extract::{Auth, JsonBody};
use super::paging::page;
use super::routes::{alert_page, PREFIX};
use super::{admin, ApiError};
use crate::domain::{OrgId, Role};
use crate::service::org_reads::{DEFAULT_MEMBERS_PAGE, MAX_MEMBERS_PAGE};
use crate::service::Meter;

fn path_org(raw: &str) -> Result<OrgId, ApiError> {
    OrgId::parse(raw).map_err(|e| ApiError::bad_request("invalid_id", e.to_string()))
}

async fn get_subscription(
    State(meter): State<Arc<Meter>>,
    Auth(caller): Auth,
    Path(org): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Role::Service)?;
    let org = path_org(&org)?;
    Ok(ok(meter.get_org_subscription_view(&caller, &org).await?))
}

async fn put_subscription(
    State(meter): State<Arc<Meter>>,
    Auth(caller): Auth,
    Path(org): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    let org = path_org(&org)?;
    let input = admin::parse_subscription(&body)?;
    Ok(ok(meter
        .put_org_subscription(&caller, &org, &input)
        .await?))
}

async fn billing(
    State(meter): State<Arc<Meter>>,
    Auth(caller): Auth,
    Path(org): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Role::Service)?;
    let org = path_org(&org)?;
    Ok(ok(meter.org_billing(&caller, &org).await?))
}

async fn usage(
    State(meter): State<Arc<Meter>>,
    Auth(caller): Auth,
    Path(org): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Role::Service)?;
    let org = path_org(&org)?;
    Ok(ok(meter.org_usage(&caller, &org).await?))
}

async fn dashboard(
    State(meter): State<Arc<Meter>>,
    Auth(caller): Auth,
    Path(org): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Role::Service)?;
    let org = path_org(&org)?;
    Ok(ok(meter.org_dashboard(&caller, &org).await?))
}

async fn members(
    State(meter): State<Arc<Meter>>,
    Auth(caller): Auth,
    Path(org): Path<String>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(Role::Service)?;
    let org = path_org(&org)?;
    // The cursor is opaque here: the service says whether it gave it.
    let (limit, cursor) = page(query, DEFAULT_MEMBERS_PAGE, MAX_MEMBERS_PAGE, |c| {
        Ok::<_, std::convert::Infallible>(c.to_owned())
    })?;
    Ok(ok(meter
        .org_members(&caller, &org, limit, cursor.as_deref())
        .await?))
}

async fn alerts(
    State(meter): State<Arc<Meter>>,
    Auth(caller): Auth,
    Path(org): Path<String>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(Role::Service)?;
    let org = path_org(&org)?;
    let (unread_only, limit) = alert_page(query)?;
    Ok(ok(meter
        .org_alerts(&caller, &org, unread_only, limit)
        .await?))
}

/// The org routes, merged into the dashboard's.
pub fn routes() -> Router<Arc<Meter>> {
    Router::new()
        .route(
            &format!("{PREFIX}/org/{{org_id}}/subscription"),
            get(get_subscription).put(put_subscription),
        )
        .route(&format!("{PREFIX}/org/{{org_id}}/billing"), get(billing))
        .route(&format!("{PREFIX}/org/{{org_id}}/usage"), get(usage))
        .route(&format!("{PREFIX}/org/{{org_id}}/members"), get(members))
        .route(&format!("{PREFIX}/org/{{org_id}}/alerts"), get(alerts))
        .route(
            &format!("{PREFIX}/org/{{org_id}}/dashboard"),
            get(dashboard),
        )
}
