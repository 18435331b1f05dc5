//! The price catalog and the cost of an event.
//!
//! - [`cost`]: the cost of usage counts at a set of prices (LiteLLM's semantics, exact).
//! - [`catalog`]: versioned prices per (provider, model), lookup by time, tenant overlays,
//!   the native file format and the shipped default catalog.
//! - [`litellm`]: import of LiteLLM's `model_prices_and_context_window.json`.
//!
//! [`cost`]: mod@cost

pub mod catalog;
pub mod cost;
pub mod litellm;

use rust_decimal::Decimal;

use crate::domain::ProviderId;

pub use catalog::{Catalog, CatalogError, LookupError, PriceVersion};
pub use cost::{check_counts, cost, ContextTier, Prices, TokenRates};

/// Why an event could not be priced (as opposed to being explicitly unpriced).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PricingError {
    /// The cost does not fit a `Decimal` (absurd counts or prices).
    #[error("cost overflows")]
    Overflow,
    /// Counts that cannot describe one call.
    #[error("inconsistent counts: {reason}")]
    InconsistentCounts { reason: &'static str },
    /// The event names no catalog entry unambiguously.
    #[error(transparent)]
    Lookup(#[from] LookupError),
}

impl PricingError {
    /// Stable error code for APIs and the CLI.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Overflow => "overflow",
            Self::InconsistentCounts { .. } => "inconsistent_counts",
            Self::Lookup(LookupError::MissingModel) => "missing_model",
            Self::Lookup(LookupError::UnknownModel { .. }) => "unknown_model",
            Self::Lookup(LookupError::Ambiguous { .. }) => "ambiguous_model",
            Self::Lookup(LookupError::Unpriced { .. }) => "unpriced",
        }
    }
}

/// The result of pricing one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PriceOutcome {
    /// Priced exactly by `version_id`.
    Priced {
        cost_usd: Decimal,
        version_id: String,
        provider: ProviderId,
    },
    /// No price in force for the event's (provider, model): recorded and counted as
    /// unpriced, never as $0; re-priced once a price exists.
    Unpriced {
        provider: ProviderId,
        reason: String,
    },
}

impl PriceOutcome {
    pub fn provider(&self) -> &ProviderId {
        match self {
            Self::Priced { provider, .. } | Self::Unpriced { provider, .. } => provider,
        }
    }

    /// The cost, `None` when unpriced.
    pub fn cost_usd(&self) -> Option<Decimal> {
        match self {
            Self::Priced { cost_usd, .. } => Some(*cost_usd),
            Self::Unpriced { .. } => None,
        }
    }
}
