//! The one error type of the HTTP layer and its mapping to statuses and stable codes.
//!
//! Clients get `{"success": false, "error": {"code", "message", "details"}}` with a safe
//! message; causes (store errors, SDK messages) go to the log only.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{json, Value};

use crate::store::StoreError;

/// One problem with one field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub code: &'static str,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            code,
            message: message.into(),
        }
    }
}

/// The problems of one event of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventErrors {
    pub index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    pub errors: Vec<FieldError>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or invalid API key")]
    Unauthorized,
    #[error("this API key's role may not do this")]
    Forbidden,
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("no such route")]
    RouteNotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("content type must be application/json")]
    UnsupportedMediaType,
    #[error("request body is larger than 1 MiB")]
    PayloadTooLarge,
    #[error("the request is invalid")]
    Invalid(Vec<FieldError>),
    #[error("{invalid} of {total} events are invalid; nothing was recorded")]
    InvalidEvents {
        invalid: usize,
        total: usize,
        events: Vec<EventErrors>,
    },
    #[error("usage limit exceeded for {metric}")]
    LimitExceeded {
        metric: String,
        details: Value,
        retry_after_seconds: u64,
    },
    /// A write kept losing optimistic-concurrency races; the client may retry.
    #[error("{0} was changed concurrently; retry the request")]
    Conflict(&'static str),
    #[error("the subscription is {status}")]
    SubscriptionInactive { status: &'static str },
    #[error("the storage backend is unavailable; retry the same request")]
    Unavailable,
    #[error("internal error")]
    Internal,
}

impl ApiError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code,
            message: message.into(),
        }
    }

    pub fn invalid(
        field: impl Into<String>,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        ApiError::Invalid(vec![FieldError::new(field, code, message)])
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden | ApiError::SubscriptionInactive { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) | ApiError::RouteNotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Invalid(_) | ApiError::InvalidEvents { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::LimitExceeded { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::RouteNotFound => "route_not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::BadRequest { code, .. } => code,
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::Invalid(errors) if errors.len() == 1 => errors[0].code,
            ApiError::Invalid(_) => "validation_failed",
            ApiError::InvalidEvents { .. } => "invalid_events",
            ApiError::LimitExceeded { .. } => "usage_limit_exceeded",
            ApiError::Conflict(_) => "conflict",
            ApiError::SubscriptionInactive { .. } => "subscription_inactive",
            ApiError::Unavailable => "store_unavailable",
            ApiError::Internal => "internal_error",
        }
    }

    pub fn details(&self) -> Value {
        match self {
            ApiError::Invalid(errors) => json!({ "errors": errors }),
            ApiError::InvalidEvents { events, .. } => json!({ "events": events }),
            ApiError::LimitExceeded { details, .. } => details.clone(),
            ApiError::SubscriptionInactive { status } => json!({ "status": status }),
            _ => json!({}),
        }
    }

    pub fn message(&self) -> String {
        match self {
            ApiError::Invalid(errors) if errors.len() == 1 => errors[0].message.clone(),
            other => other.to_string(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(cause) => {
                tracing::error!(%cause, "store unavailable");
                ApiError::Unavailable
            }
            StoreError::VersionConflict => {
                tracing::warn!("concurrent update lost a race; the client may retry");
                ApiError::Unavailable
            }
            StoreError::Overflow(what) => {
                ApiError::invalid("", "overflow", format!("a counter would overflow: {what}"))
            }
            StoreError::Corrupt(cause) => {
                tracing::error!(%cause, "stored data is invalid");
                ApiError::Internal
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = json!({
            "success": false,
            "error": { "code": self.code(), "message": self.message(), "details": self.details() },
        });
        let mut response = (status, axum::Json(body)).into_response();
        let retry_after = match &self {
            ApiError::LimitExceeded {
                retry_after_seconds,
                ..
            } => Some(*retry_after_seconds),
            ApiError::Unavailable => Some(1),
            _ => None,
        };
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// A success envelope: `{"success": true, "data": …}`.
pub fn ok<T: Serialize>(data: T) -> Response {
    (
        StatusCode::OK,
        axum::Json(json!({ "success": true, "data": data })),
    )
        .into_response()
}
