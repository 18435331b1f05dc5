//! The service's one error type. It knows no HTTP: `http::error` maps each variant to a
//! status and a stable code in one `match`.
//!
//! Expected outcomes are values, not errors: a limit denial is
//! [`CheckOutcome::Denied`](super::check::CheckOutcome), a duplicate event is a status in
//! the ingest report.

use serde::Serialize;

use crate::domain::SubscriptionStatus;
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

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("missing or invalid API key")]
    Unauthorized,
    #[error("this API key's role may not do this")]
    Forbidden,
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A request parameter (a query parameter or a path id) that cannot be used.
    #[error("{message}")]
    BadParameter { code: &'static str, message: String },
    #[error("the request is invalid")]
    Invalid(Vec<FieldError>),
    #[error("{invalid} of {total} events are invalid; nothing was recorded")]
    InvalidEvents {
        invalid: usize,
        total: usize,
        events: Vec<EventErrors>,
    },
    /// A write kept losing optimistic-concurrency races; the client may retry.
    #[error("{0} was changed concurrently; retry the request")]
    Conflict(&'static str),
    /// The request contradicts what is stored (e.g. a budget id taken on another scope);
    /// retrying the same request cannot succeed.
    #[error("{0}")]
    StateConflict(String),
    #[error("the subscription is {}", .status.as_str())]
    SubscriptionInactive { status: SubscriptionStatus },
    /// The store could not be reached or kept refusing; nothing was half-written.
    #[error("the storage backend is unavailable; retry the same request")]
    Unavailable,
    #[error("internal error")]
    Internal,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// One invalid field.
    pub fn invalid(
        field: impl Into<String>,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Error::Invalid(vec![FieldError::new(field, code, message)])
    }

    pub fn bad_parameter(code: &'static str, message: impl Into<String>) -> Self {
        Error::BadParameter {
            code,
            message: message.into(),
        }
    }

    /// An arithmetic overflow caused by the request's values (a 422, never a panic).
    pub fn overflow(what: impl std::fmt::Display) -> Self {
        Error::invalid("", "overflow", what.to_string())
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(cause) => {
                tracing::error!(%cause, "store unavailable");
                Error::Unavailable
            }
            StoreError::VersionConflict => {
                tracing::warn!("concurrent update lost a race; the client may retry");
                Error::Unavailable
            }
            StoreError::Overflow(what) => {
                Error::overflow(format!("a counter would overflow: {what}"))
            }
            StoreError::Corrupt(cause) => {
                tracing::error!(%cause, "stored data is invalid");
                Error::Internal
            }
        }
    }
}
