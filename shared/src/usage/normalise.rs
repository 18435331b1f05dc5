//! Reading provider usage objects and estimating tokens from characters.
//! (Placeholder signatures; the implementation lands with the pricing work.)

use super::UsageCounts;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageObjectError(pub String);

pub fn estimate_tokens(chars: u64) -> u64 {
    chars.div_ceil(4)
}

pub fn parse_usage_object(_v: &serde_json::Value) -> Result<UsageCounts, UsageObjectError> {
    Err(UsageObjectError("not implemented".into()))
}
