//! SDK errors as store errors: every failure to get an answer is `Unavailable`.

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::store::StoreError;

/// An SDK failure of `operation` (after the SDK's own retries).
pub fn sdk_err<E, R>(operation: &str, e: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let code = e.code().unwrap_or("no code").to_owned();
    StoreError::Unavailable(format!("DynamoDB {operation} failed ({code}): {}", DisplayErrorContext(&e)))
}

/// A request that could not be built (a bug: required fields are always set).
pub fn build_err(e: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::Unavailable(format!("DynamoDB request could not be built: {e}"))
}
