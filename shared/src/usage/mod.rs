//! Usage counts: the one internal shape every provider's usage is read into.
//!
//! Conventions (LiteLLM's, which operators already trust):
//! - `input_tokens` is the whole prompt: uncached tokens, cache reads (`cached_input_tokens`)
//!   and cache writes (`cache_write_tokens`) all included.
//! - `output_tokens` is the whole completion, `reasoning_tokens` included.

use serde::{Deserialize, Serialize};

pub mod normalise;

/// Largest count accepted for any single field of one event (10^12).
pub const MAX_COUNT: u64 = 1_000_000_000_000;

/// Token and unit counts of one call. All unsigned; absent fields are zero.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UsageCounts {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_input_tokens: u64,
    pub cache_write_tokens: u64,
    pub reasoning_tokens: u64,
    pub requests: u64,
    pub searches: u64,
    pub images: u64,
    pub pages: u64,
}

impl UsageCounts {
    /// Tokens counted against `tokens:` limits: the whole prompt (cache reads and
    /// writes are part of it) plus the whole completion.
    pub fn total_tokens(&self) -> u64 {
        self.input_tokens.saturating_add(self.output_tokens)
    }
}

/// Calls, tokens and cost accumulated for one provider (or all of them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    pub calls: u64,
    pub tokens: u64,
    #[serde(with = "rust_decimal::serde::str")]
    pub cost_usd: rust_decimal::Decimal,
}

/// What one provider accumulated in one period: recorded usage plus quality figures.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderUsage {
    /// Recorded events (priced and unpriced).
    pub recorded: Tally,
    /// Usage held by open reservations (counts against limits, not yet recorded).
    pub held: Tally,
    /// Recorded events that had no price in force (their cost is not in `recorded.cost_usd`).
    pub unpriced_calls: u64,
    /// Recorded events whose cost came from estimated token counts.
    pub estimated_calls: u64,
    /// Recorded events with `status_code >= 400`.
    pub error_calls: u64,
    /// Sum and count of `latency_ms` over events that reported one.
    pub latency_ms_sum: u64,
    pub latency_count: u64,
}

/// A user's usage in one period, per provider. Totals are sums over providers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeriodUsage {
    pub by_provider: std::collections::BTreeMap<crate::domain::ProviderId, ProviderUsage>,
}

impl PeriodUsage {
    /// The counters that limits and billing read (recorded, held, unpriced), without the
    /// display-only counts (estimated, errors, latency): what a check reads.
    pub fn limits_only(&self) -> PeriodUsage {
        PeriodUsage {
            by_provider: self
                .by_provider
                .iter()
                .map(|(p, u)| {
                    (
                        p.clone(),
                        ProviderUsage {
                            recorded: u.recorded.clone(),
                            held: u.held.clone(),
                            unpriced_calls: u.unpriced_calls,
                            ..ProviderUsage::default()
                        },
                    )
                })
                .filter(|(_, u)| *u != ProviderUsage::default())
                .collect(),
        }
    }

    /// The usage with its holds dropped: what was recorded, for display and billing.
    pub fn recorded_only(&self) -> PeriodUsage {
        PeriodUsage {
            by_provider: self
                .by_provider
                .iter()
                .map(|(p, u)| {
                    (
                        p.clone(),
                        ProviderUsage {
                            held: Tally::default(),
                            ..u.clone()
                        },
                    )
                })
                .collect(),
        }
    }
}
