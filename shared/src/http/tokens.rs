//! End-user tokens over HTTP: `POST /tokens` mints one (service key), and [`authorize`]
//! decides what a request carrying one may do — the Auth extractor hands every
//! `Bearer mt_…` here instead of the API-key lookup.
//!
//! A user's token opens exactly its user's reads: GET usage, trends, dashboard, alerts,
//! billing, subscription and wallet of that user, and POST mark-read of that user's alerts.
//! An organisation's token opens exactly its org's reads: GET usage, dashboard, billing,
//! alerts, members, subscription and wallet of that org, and POST mark-read of that org's
//! alerts. Any other route answers 403 `forbidden`, and so does another user's or org's
//! id (and a user route for an org token, and the reverse); an invalid or expired
//! token is 401 like a bad key. The check is a deny-by-default list of routes, so a route
//! added later is closed to tokens until it is listed here.

use std::sync::Arc;

use axum::extract::{FromRequestParts, MatchedPath, RawPathParams, State};
use axum::http::request::Parts;
use axum::http::Method;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use serde_json::Value;

use super::error::ok;
use super::extract::{Auth, JsonBody};
use super::fields::Fields;
use super::routes::PREFIX;
use super::ApiError;
use crate::domain::{OrgId, Role, UserId};
use crate::service::tokens::DEFAULT_TTL_SECONDS;
use crate::service::{Caller, Error, Meter};
use crate::tokens::{Subject, MAX_TTL_SECONDS};

/// The routes a token opens, with the path parameter that must name its user.
const USER_READS: [(&str, &str); 7] = [
    ("/usage/{user_id}", "user_id"),
    // Issue 19: the user's own prepaid wallet (the web page shows it).
    ("/wallet/user/{user_id}", "user_id"),
    ("/usage/{user_id}/trends", "user_id"),
    ("/dashboard/{user_id}", "user_id"),
    ("/alerts/{user_id}", "user_id"),
    ("/billing/{user_id}", "user_id"),
    ("/user/{user_id}/subscription", "user_id"),
];
/// The routes an organisation's token opens, with the path parameter that must name its org.
const ORG_READS: [(&str, &str); 7] = [
    ("/org/{org_id}/usage", "org_id"),
    ("/org/{org_id}/dashboard", "org_id"),
    ("/org/{org_id}/billing", "org_id"),
    ("/org/{org_id}/alerts", "org_id"),
    ("/org/{org_id}/members", "org_id"),
    ("/org/{org_id}/subscription", "org_id"),
    ("/wallet/org/{org_id}", "org_id"),
];
const MARK_READ: &str = "/alerts/{alert_id}/mark-read";

/// The caller a token stands for, if the request is one its token opens: 401 for an
/// invalid or expired token, 403 for any other route or user, 404 for an alert id the
/// tenant does not have.
pub async fn authorize(meter: &Meter, token: &str, parts: &mut Parts) -> Result<Caller, ApiError> {
    let forbidden = || ApiError::from(Error::Forbidden);
    let claims = meter.verify_token(token).await?;
    let route = parts
        .extensions
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .ok_or_else(forbidden)?;
    let route = route.strip_prefix(PREFIX).ok_or_else(forbidden)?;
    let params = RawPathParams::from_request_parts(parts, &())
        .await
        .map_err(|_| forbidden())?;
    let param = |name: &str| params.iter().find(|(k, _)| *k == name).map(|(_, v)| v);
    let is_read = parts.method == Method::GET || parts.method == Method::HEAD;
    if is_read {
        let (reads, id) = match &claims.subject {
            Subject::User(user) => (&USER_READS, user.as_str()),
            Subject::Org(org) => (&ORG_READS, org.as_str()),
        };
        let (_, name) = reads
            .iter()
            .find(|(r, _)| *r == route)
            .ok_or_else(forbidden)?;
        if param(name) != Some(id) {
            return Err(forbidden());
        }
    } else if parts.method == Method::POST && route == MARK_READ {
        let id = param("alert_id").ok_or_else(forbidden)?;
        if id.is_empty() || id.len() > 128 {
            return Err(Error::NotFound("alert").into());
        }
        match meter.alert_owner(&claims.tenant, id).await? {
            Some(owner) if owner == claims.subject => {}
            Some(_) => return Err(forbidden()),
            None => return Err(Error::NotFound("alert").into()),
        }
    } else {
        return Err(forbidden());
    }
    Ok(Caller {
        tenant: claims.tenant,
        role: Role::Service,
        key_id: format!("token:{}", claims.key_id),
    })
}

const TOKEN_FIELDS: &[&str] = &["user_id", "org_id", "ttl_seconds"];

/// A validated `POST /tokens` body: exactly one of `user_id` and `org_id`.
fn parse_mint(body: &Value) -> Result<(Subject, u64), Error> {
    let mut f = Fields::new(body, "", &[TOKEN_FIELDS]).map_err(|e| Error::Invalid(vec![e]))?;
    let subject = match (f.raw("user_id").is_some(), f.raw("org_id").is_some()) {
        (true, true) => {
            for name in ["user_id", "org_id"] {
                f.error(
                    name,
                    "conflicting_fields",
                    "give exactly one of user_id and org_id",
                );
            }
            None
        }
        (false, false) => {
            for name in ["user_id", "org_id"] {
                f.error(
                    name,
                    "missing_field",
                    "give exactly one of user_id and org_id",
                );
            }
            None
        }
        (true, false) => f.id("user_id", true, UserId::parse).map(Subject::User),
        (false, true) => f.id("org_id", true, OrgId::parse).map(Subject::Org),
    };
    let ttl = f
        .uint("ttl_seconds", MAX_TTL_SECONDS)
        .unwrap_or(DEFAULT_TTL_SECONDS);
    if ttl == 0 {
        f.error(
            "ttl_seconds",
            "out_of_range",
            format!("must be between 1 and {MAX_TTL_SECONDS}"),
        );
    }
    match subject {
        Some(subject) if f.errors.is_empty() => Ok((subject, ttl)),
        _ => Err(Error::Invalid(f.errors)),
    }
}

async fn mint(
    State(meter): State<Arc<Meter>>,
    Auth(caller): Auth,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    caller.require(Role::Service)?;
    let (subject, ttl) = parse_mint(&body)?;
    Ok(ok(meter.mint_token_for(&caller, &subject, ttl).await?))
}

/// `POST /tokens`.
pub fn routes() -> Router<Arc<Meter>> {
    Router::new().route(&format!("{PREFIX}/tokens"), post(mint))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn mint_body_needs_exactly_one_of_a_user_and_an_org_and_a_bounded_ttl() {
        let (u, ttl) = parse_mint(&json!({"user_id": "alice"})).unwrap();
        assert_eq!(
            (u, ttl),
            (
                Subject::User(UserId::parse("alice").unwrap()),
                DEFAULT_TTL_SECONDS
            )
        );
        let (o, ttl) = parse_mint(&json!({"org_id": "acme", "ttl_seconds": 60})).unwrap();
        assert_eq!((o, ttl), (Subject::Org(OrgId::parse("acme").unwrap()), 60));
        assert_eq!(
            parse_mint(&json!({"user_id": "alice", "ttl_seconds": 86_400}))
                .unwrap()
                .1,
            86_400
        );
        for (body, code) in [
            (
                json!({"user_id": "alice", "ttl_seconds": 86_401}),
                "out_of_range",
            ),
            (
                json!({"user_id": "alice", "ttl_seconds": 0}),
                "out_of_range",
            ),
            (
                json!({"user_id": "alice", "ttl_seconds": "60"}),
                "invalid_type",
            ),
            (json!({"ttl_seconds": 60}), "validation_failed"),
            (
                json!({"user_id": "alice", "org_id": "acme"}),
                "validation_failed",
            ),
            (json!({"org_id": "a#b"}), "invalid_id"),
            (json!({"org_id": 7}), "invalid_type"),
            (json!({"user_id": "alice", "scope": "x"}), "unknown_field"),
            (json!({"user_id": "a#b"}), "invalid_id"),
        ] {
            let e = ApiError::from(parse_mint(&body).unwrap_err());
            assert_eq!(e.code(), code, "{body}");
        }
    }
}
