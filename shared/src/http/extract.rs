//! Extractors: the caller from the bearer key, and a JSON body with precise errors.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{header, request::Parts, StatusCode};
use serde_json::Value;

use super::ApiError;
use crate::service::{Caller, Error, Meter};

/// The authenticated caller (`Authorization: Bearer <key>`), or 401.
pub struct Auth(pub Caller);

impl FromRequestParts<Arc<Meter>> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, meter: &Arc<Meter>) -> Result<Self, ApiError> {
        let unauthorized = || ApiError::from(Error::Unauthorized);
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(unauthorized)?;
        let value = header.to_str().map_err(|_| unauthorized())?;
        let (scheme, key) = value.split_once(' ').ok_or_else(unauthorized)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(unauthorized());
        }
        let key = key.trim().to_owned();
        let caller = if crate::tokens::is_token(&key) {
            super::tokens::authorize(meter, &key, parts).await?
        } else {
            meter.authenticate(&key).await?
        };
        tracing::Span::current().record("tenant", tracing::field::display(&caller.tenant));
        tracing::debug!(tenant = %caller.tenant, key_id = %caller.key_id, "authenticated");
        Ok(Auth(caller))
    }
}

/// A JSON body: 415 unless `application/json`, 413 above the body limit, 400 for invalid
/// UTF-8 or malformed JSON.
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|mime| {
                let mime = mime.trim().to_ascii_lowercase();
                mime == "application/json"
                    || (mime.starts_with("application/") && mime.ends_with("+json"))
            });
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::bad_request("unreadable_body", "the request body could not be read")
            }
        })?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| ApiError::bad_request("invalid_utf8", "the body is not valid UTF-8"))?;
        let value = serde_json::from_str(text).map_err(|e| {
            ApiError::bad_request(
                "malformed_json",
                format!(
                    "the body is not valid JSON (line {}, column {})",
                    e.line(),
                    e.column()
                ),
            )
        })?;
        Ok(JsonBody(value))
    }
}
