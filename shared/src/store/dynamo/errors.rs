//! SDK errors as store errors: every failure to get an answer is `Unavailable`.

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

use crate::store::StoreError;

/// An SDK failure of `operation` (after the SDK's own retries).
pub fn sdk_err<E, R>(operation: &str, e: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let detail = match (e.code(), e.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_owned(),
        _ => e.to_string(), // timeout, dispatch or response errors: no service error code
    };
    StoreError::Unavailable(format!("DynamoDB {operation} failed: {detail}"))
}

/// A request that could not be built (a bug: required fields are always set).
pub fn build_err(e: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::Unavailable(format!("DynamoDB request could not be built: {e}"))
}
