//! Failed answers: the service's errors, a limit denial and the HTTP layer's own refusals,
//! each mapped to a status and a stable code in one place.
//!
//! Clients get `{"success": false, "error": {"code", "message", "details"}}` with a safe
//! message; causes (store errors, SDK messages) go to the log only.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{json, Value};

use crate::limits::Amount;
use crate::service::{Denial, Error};

pub use crate::service::{EventErrors, FieldError};

/// Every failed answer.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Service(#[from] Error),
    /// A check that a limit denies (429 with the limit's details and `Retry-After`).
    #[error("usage limit exceeded for {}", .0.metric)]
    LimitExceeded(Box<Denial>),
    #[error("no such route")]
    RouteNotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    /// A body or query string that cannot be read at all.
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("content type must be application/json")]
    UnsupportedMediaType,
    #[error("request body is larger than 1 MiB")]
    PayloadTooLarge,
}

impl ApiError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code,
            message: message.into(),
        }
    }

    /// The status and the stable machine-readable code.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        use Error as E;
        match self {
            ApiError::Service(e) => match e {
                E::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
                E::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
                E::SubscriptionInactive { .. } => (StatusCode::FORBIDDEN, "subscription_inactive"),
                E::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
                E::BadParameter { code, .. } => (StatusCode::BAD_REQUEST, code),
                E::Invalid(errors) if errors.len() == 1 => {
                    (StatusCode::UNPROCESSABLE_ENTITY, errors[0].code)
                }
                E::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
                E::InvalidEvents { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_events"),
                E::Conflict(_) | E::StateConflict(_) => (StatusCode::CONFLICT, "conflict"),
                E::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
                E::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
            },
            ApiError::LimitExceeded(_) => (StatusCode::TOO_MANY_REQUESTS, "usage_limit_exceeded"),
            ApiError::RouteNotFound => (StatusCode::NOT_FOUND, "route_not_found"),
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code),
            ApiError::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
        }
    }

    pub fn status(&self) -> StatusCode {
        self.status_and_code().0
    }

    pub fn code(&self) -> &'static str {
        self.status_and_code().1
    }

    pub fn details(&self) -> Value {
        match self {
            ApiError::Service(Error::Invalid(errors)) => json!({ "errors": errors }),
            ApiError::Service(Error::InvalidEvents { events, .. }) => json!({ "events": events }),
            ApiError::Service(Error::SubscriptionInactive { status }) => {
                json!({ "status": status })
            }
            ApiError::LimitExceeded(d) if d.credit.is_some() => {
                super::limit_details::credit_details(d)
            }
            ApiError::LimitExceeded(d) if d.limited_by.is_some() => {
                super::limit_details::details(d)
            }
            ApiError::LimitExceeded(d) => json!({
                "metric": d.metric,
                "used": Amount::of(&d.metric, d.used),
                "limit": Amount::of(&d.metric, d.limit),
                "requested": Amount::of(&d.metric, d.requested),
                "period_resets_at": d.period_resets_at,
                "upgrade_to": d.upgrade_to,
            }),
            _ => json!({}),
        }
    }

    pub fn message(&self) -> String {
        match self {
            ApiError::Service(Error::Invalid(errors)) if errors.len() == 1 => {
                errors[0].message.clone()
            }
            other => other.to_string(),
        }
    }

    fn retry_after_seconds(&self) -> Option<u64> {
        match self {
            ApiError::LimitExceeded(d) => Some(d.retry_after_seconds),
            ApiError::Service(Error::Unavailable) => Some(1),
            _ => None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let body = json!({
            "success": false,
            "error": { "code": code, "message": self.message(), "details": self.details() },
        });
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after_seconds() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// A success envelope: `{"success": true, "data": …}`, serialised straight from `data`:
/// no `serde_json::Value` tree is built and sorted in between (issue 23). Keys come in the
/// views' field order.
pub fn ok<T: Serialize>(data: T) -> Response {
    #[derive(Serialize)]
    struct Envelope<T> {
        success: bool,
        data: T,
    }
    (
        StatusCode::OK,
        axum::Json(Envelope {
            success: true,
            data,
        }),
    )
        .into_response()
}
