//! The errors of the client.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::types::Amount;

/// Everything a call of this client can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A bad argument (base URL, timeout, empty user id, …), found before any request.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// 429 `usage_limit_exceeded`: the call would exceed a limit.
    #[error(transparent)]
    LimitExceeded(Box<LimitExceeded>),
    /// meter did not answer in time, could not be reached, or answered 5xx after the retries.
    #[error(transparent)]
    Unavailable(MeterUnavailable),
    /// Any other error answer of the API.
    #[error(transparent)]
    Api(ApiError),
    /// A provider response without a usage object this client reads, or a bad count.
    #[error("usage: {0}")]
    Usage(String),
    /// meter answered 2xx with a body this client cannot read.
    #[error("meter answered something this client cannot read: {0}")]
    InvalidResponse(String),
}

/// An error answer of the API: `{"code", "message", "details"}`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{status} {code}: {message}")]
#[non_exhaustive]
pub struct ApiError {
    pub status: u16,
    pub code: String,
    pub message: String,
    pub details: Value,
}

/// The 429 details: which metric, how much is used, the limit, what the call asked for,
/// when the period resets, the plan that would allow it, and `Retry-After` in seconds.
#[derive(Debug, Clone, thiserror::Error)]
#[error("usage limit exceeded for {}", .metric.as_deref().unwrap_or("a metric"))]
#[non_exhaustive]
pub struct LimitExceeded {
    pub status: u16,
    pub code: String,
    pub message: String,
    pub details: Value,
    pub metric: Option<String>,
    pub used: Option<Amount>,
    pub limit: Option<Amount>,
    pub requested: Option<Amount>,
    /// A server with budgets names it `resets_at`; read too.
    pub period_resets_at: Option<DateTime<Utc>>,
    pub upgrade_to: Option<String>,
    pub retry_after: Option<u64>,
}

impl LimitExceeded {
    pub(crate) fn from_api(e: ApiError, retry_after: Option<u64>) -> Self {
        let d = &e.details;
        let amount = |k: &str| {
            d.get(k)
                .and_then(|v| serde_json::from_value(v.clone()).ok())
        };
        let text = |k: &str| d.get(k).and_then(Value::as_str).map(str::to_owned);
        let resets = text("period_resets_at")
            .or_else(|| text("resets_at"))
            .and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
            .map(|t| t.with_timezone(&Utc));
        Self {
            metric: text("metric"),
            used: amount("used"),
            limit: amount("limit"),
            requested: amount("requested"),
            period_resets_at: resets,
            upgrade_to: text("upgrade_to"),
            retry_after,
            status: e.status,
            code: e.code,
            message: e.message,
            details: e.details,
        }
    }
}

/// meter could not answer. `events` holds the usage events of a `record` that could not
/// be delivered (with [`OnUnavailable::Deny`](crate::OnUnavailable); `Allow` queues them).
#[derive(Debug, Clone, thiserror::Error)]
#[error("meter unavailable: {message}")]
#[non_exhaustive]
pub struct MeterUnavailable {
    pub message: String,
    pub events: Vec<Value>,
}

impl MeterUnavailable {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            events: Vec::new(),
        }
    }
}

impl Error {
    /// The API's error code, when meter answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::LimitExceeded(e) => Some(&e.code),
            Error::Api(e) => Some(&e.code),
            _ => None,
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Error::InvalidArgument(message.into())
    }
}

/// The error of a guarded call: meter's, or the call's own.
#[derive(Debug)]
pub enum GuardError<E> {
    /// The check denied the call, meter was unavailable with `Deny`, or the usage could not
    /// be read or recorded.
    Meter(Error),
    /// The provider call failed; its reservation was released.
    Call(E),
}

impl<E: std::fmt::Display> std::fmt::Display for GuardError<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GuardError::Meter(e) => e.fmt(f),
            GuardError::Call(e) => write!(f, "the guarded call failed: {e}"),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for GuardError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            GuardError::Meter(e) => Some(e),
            GuardError::Call(e) => Some(e),
        }
    }
}

impl<E> From<Error> for GuardError<E> {
    fn from(e: Error) -> Self {
        GuardError::Meter(e)
    }
}
