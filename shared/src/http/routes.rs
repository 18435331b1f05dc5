//! The routers. Each Lambda function serves its sub-router; `meter serve` merges them all.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::response::Response;
use axum::routing::{delete, get, post, put};
use axum::Router;

use super::error::ok;
use super::extract::{Auth, JsonBody};
use super::{admin, wire, ApiError};
use crate::domain::{PlanName, ProviderId, Role, UserId};
use crate::service::{CheckOutcome, Meter};

/// Largest accepted request body.
pub const BODY_LIMIT: usize = 1024 * 1024;
/// Every route lives under this prefix (the paths of the front end this API replaces).
pub const PREFIX: &str = "/api/subscription";

async fn check(
    State(meter): State<Arc<Meter>>,
    Auth(caller): Auth,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    caller.require(Role::Service)?;
    let req = wire::parse_check(&body)?;
    let result = meter.check(&caller, req).await;
    crate::metrics::observe_check(&result);
    match result? {
        CheckOutcome::Allowed(allowed) => Ok(ok(allowed)),
        CheckOutcome::Denied(denial) => Err(ApiError::LimitExceeded(Box::new(denial))),
    }
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
    let result = meter.ingest(&caller, events).await;
    crate::metrics::observe_ingest(&result);
    Ok(ok(result?))
}

/// Query parameters, each allowed at most once and only from `allowed`.
pub(super) fn params(
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    allowed: &[&str],
) -> Result<std::collections::BTreeMap<String, String>, ApiError> {
    let Query(pairs) = query.map_err(|_| {
        ApiError::bad_request("invalid_parameter", "the query string cannot be read")
    })?;
    let mut out = std::collections::BTreeMap::new();
    for (k, v) in pairs {
        if !allowed.contains(&k.as_str()) {
            let shown: String = k.chars().take(64).collect();
            return Err(ApiError::bad_request(
                "unknown_parameter",
                format!("unknown query parameter `{shown}`"),
            ));
        }
        if out.insert(k.clone(), v).is_some() {
            return Err(ApiError::bad_request(
                "invalid_parameter",
                format!("`{k}` is given twice"),
            ));
        }
    }
    Ok(out)
}

fn path_user(raw: &str) -> Result<UserId, ApiError> {
    UserId::parse(raw).map_err(|e| ApiError::bad_request("invalid_id", e.to_string()))
}

async fn plans(State(meter): State<Arc<Meter>>, Auth(caller): Auth) -> Result<Response, ApiError> {
    caller.require(Role::Service)?;
    Ok(ok(meter.list_plans(&caller).await?))
}

async fn pricing(
    State(meter): State<Arc<Meter>>,
    Auth(caller): Auth,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(Role::Service)?;
    let p = params(query, &["provider"])?;
    let provider = match p.get("provider") {
        Some(raw) => Some(
            ProviderId::parse(raw.as_str())
                .map_err(|e| ApiError::bad_request("unknown_provider", e.to_string()))?,
        ),
        None => None,
    };
    Ok(ok(meter.pricing(&caller, provider.as_ref()).await?))
}

async fn quote(
    State(meter): State<Arc<Meter>>,
    Auth(caller): Auth,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    caller.require(Role::Service)?;
    let req = wire::parse_quote(&body)?;
    Ok(ok(meter.quote(&caller, &req).await?))
}

async fn alerts(
    State(meter): State<Arc<Meter>>,
    Auth(caller): Auth,
    Path(user): Path<String>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(Role::Service)?;
    let user = path_user(&user)?;
    let (unread_only, limit) = alert_page(query)?;
    Ok(ok(meter.alerts(&caller, &user, unread_only, limit).await?))
}

/// `unread_only` (default false) and `limit` (1–100, default 50) of an alerts list
/// (`GET /alerts/{user_id}`, `GET /org/{org_id}/alerts`).
pub(super) fn alert_page(
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<(bool, usize), ApiError> {
    let p = params(query, &["unread_only", "limit"])?;
    let unread_only = match p.get("unread_only").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_parameter",
                "`unread_only` must be true or false",
            ))
        }
    };
    let limit = super::paging::limit(p.get("limit"), 50, 100)?;
    Ok((unread_only, limit))
}

async fn mark_read(
    State(meter): State<Arc<Meter>>,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Role::Service)?;
    Ok(ok(meter.mark_alert_read(&caller, &id).await?))
}

async fn usage_report(
    State(meter): State<Arc<Meter>>,
    Auth(caller): Auth,
    Path(user): Path<String>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(Role::Service)?;
    let user = path_user(&user)?;
    let p = params(query, &["billing_period"])?;
    let period = p.get("billing_period").map(String::as_str);
    Ok(ok(meter.usage_report(&caller, &user, period).await?))
}

async fn trends(
    State(meter): State<Arc<Meter>>,
    Auth(caller): Auth,
    Path(user): Path<String>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    use crate::service::dashboard::{DEFAULT_TREND_MONTHS, MAX_TREND_MONTHS};
    caller.require(Role::Service)?;
    let user = path_user(&user)?;
    let p = params(query, &["months"])?;
    let months = match p.get("months") {
        None => DEFAULT_TREND_MONTHS,
        Some(raw) => match raw.parse::<usize>() {
            Ok(n) if (1..=MAX_TREND_MONTHS).contains(&n) => n,
            _ => {
                return Err(ApiError::bad_request(
                    "invalid_parameter",
                    format!("`months` must be a whole number from 1 to {MAX_TREND_MONTHS}"),
                ))
            }
        },
    };
    Ok(ok(meter.trends(&caller, &user, months).await?))
}

async fn dashboard(
    State(meter): State<Arc<Meter>>,
    Auth(caller): Auth,
    Path(user): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Role::Service)?;
    let user = path_user(&user)?;
    Ok(ok(meter.dashboard(&caller, &user).await?))
}

async fn billing(
    State(meter): State<Arc<Meter>>,
    Auth(caller): Auth,
    Path(user): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Role::Service)?;
    let user = path_user(&user)?;
    Ok(ok(meter.billing(&caller, &user).await?))
}

async fn export_user(
    State(meter): State<Arc<Meter>>,
    Auth(caller): Auth,
    Path(user): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    let user = path_user(&user)?;
    Ok(ok(meter.export_user(&caller, &user).await?))
}

async fn erase_user(
    State(meter): State<Arc<Meter>>,
    Auth(caller): Auth,
    Path(user): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    let user = path_user(&user)?;
    Ok(ok(meter.erase_user(&caller, &user).await?))
}

async fn get_subscription(
    State(meter): State<Arc<Meter>>,
    Auth(caller): Auth,
    Path(user): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Role::Service)?;
    let user = path_user(&user)?;
    Ok(ok(meter.get_subscription_view(&caller, &user).await?))
}

async fn put_subscription(
    State(meter): State<Arc<Meter>>,
    Auth(caller): Auth,
    Path(user): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    let user = path_user(&user)?;
    let input = admin::parse_subscription(&body)?;
    Ok(ok(meter.put_subscription(&caller, &user, &input).await?))
}

async fn put_plan(
    State(meter): State<Arc<Meter>>,
    Auth(caller): Auth,
    Path(name): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    let name =
        PlanName::parse(name).map_err(|e| ApiError::bad_request("invalid_id", e.to_string()))?;
    let plan = admin::parse_plan(&name, &body)?;
    Ok(ok(meter.put_plan(&caller, &plan).await?))
}

async fn put_pricing(
    State(meter): State<Arc<Meter>>,
    Auth(caller): Auth,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    let versions = admin::parse_price_versions(&body)?;
    Ok(ok(meter.put_prices(&caller, versions).await?))
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

fn dashboard_routes() -> Router<Arc<Meter>> {
    Router::new()
        .route(&format!("{PREFIX}/plans"), get(plans))
        .route(&format!("{PREFIX}/plans/{{name}}"), put(put_plan))
        .route(&format!("{PREFIX}/pricing"), get(pricing).put(put_pricing))
        .route(&format!("{PREFIX}/pricing/quote"), post(quote))
        .route(&format!("{PREFIX}/alerts/{{user_id}}"), get(alerts))
        .route(
            &format!("{PREFIX}/alerts/{{alert_id}}/mark-read"),
            post(mark_read),
        )
        .route(&format!("{PREFIX}/usage/{{user_id}}"), get(usage_report))
        .route(&format!("{PREFIX}/usage/{{user_id}}/trends"), get(trends))
        .route(&format!("{PREFIX}/dashboard/{{user_id}}"), get(dashboard))
        .route(&format!("{PREFIX}/billing/{{user_id}}"), get(billing))
        .route(
            &format!("{PREFIX}/user/{{user_id}}/subscription"),
            get(get_subscription).put(put_subscription),
        )
        .route(
            &format!("{PREFIX}/user/{{user_id}}/export"),
            get(export_user),
        )
        .route(&format!("{PREFIX}/user/{{user_id}}"), delete(erase_user))
        // The web dashboard: its pages, end-user tokens, the admin's tenant reads.
        .merge(super::web::routes())
        .merge(super::tokens::routes())
        .merge(super::tenant::routes())
        .merge(super::tenant_orgs::routes())
        .merge(super::budgets::routes())
        .merge(super::wallets::routes())
        .merge(super::wallet_views::routes())
        .merge(super::orgs::routes())
}

/// `usage-dashboard`: the read routes and the admin writes (plans, pricing, quotes,
/// alerts, usage, trends, dashboard, billing, subscriptions).
pub fn dashboard_router(meter: Arc<Meter>) -> Router {
    finish(dashboard_routes(), meter)
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
    finish(
        check_routes()
            .merge(usage_routes())
            .merge(dashboard_routes()),
        meter,
    )
}
