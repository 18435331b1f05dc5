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

    /// The usage a subscriber's invoice bills: the recorded usage less `elsewhere`, the
    /// part of it another subscriber's invoice bills (`CounterKey::PaidElsewhere`;
    /// docs/billing.md, "One payer per call"). `None` when `elsewhere` is not part of
    /// the usage (more than was recorded: the counters disagree).
    pub fn billed_here(&self, elsewhere: &PeriodUsage) -> Option<PeriodUsage> {
        let mut out = self.clone();
        for (provider, paid) in &elsewhere.by_provider {
            let u = out.by_provider.get_mut(provider)?;
            let r = &mut u.recorded;
            r.calls = r.calls.checked_sub(paid.recorded.calls)?;
            r.tokens = r.tokens.checked_sub(paid.recorded.tokens)?;
            r.cost_usd = r.cost_usd.checked_sub(paid.recorded.cost_usd)?;
            if r.cost_usd.is_sign_negative() && !r.cost_usd.is_zero() {
                return None;
            }
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ProviderId;
    use rust_decimal_macros::dec;

    fn usage(rows: &[(&str, u64, u64, rust_decimal::Decimal)]) -> PeriodUsage {
        PeriodUsage {
            by_provider: rows
                .iter()
                .map(|(p, calls, tokens, cost)| {
                    let recorded = Tally {
                        calls: *calls,
                        tokens: *tokens,
                        cost_usd: *cost,
                    };
                    (
                        ProviderId::parse(*p).unwrap(),
                        ProviderUsage {
                            recorded,
                            ..ProviderUsage::default()
                        },
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn billed_here_is_the_recorded_usage_less_what_another_invoice_bills() {
        let all = usage(&[
            ("gemini", 5, 500, dec!(0.95)),
            ("openai", 2, 20, dec!(0.02)),
        ]);
        let elsewhere = usage(&[("gemini", 3, 300, dec!(0.75))]);
        let here = all.billed_here(&elsewhere).unwrap();
        assert_eq!(
            here,
            usage(&[
                ("gemini", 2, 200, dec!(0.20)),
                ("openai", 2, 20, dec!(0.02))
            ])
        );
        // Everything billed elsewhere: nothing left to bill, the providers kept at zero.
        let gone = all.billed_here(&all).unwrap();
        assert!(gone
            .by_provider
            .values()
            .all(|u| u.recorded == Tally::default()));
        // Nothing elsewhere: all of it.
        assert_eq!(all.billed_here(&PeriodUsage::default()), Some(all.clone()));
        // More elsewhere than recorded: the counters disagree.
        assert_eq!(all.billed_here(&usage(&[("gemini", 6, 0, dec!(0))])), None);
        assert_eq!(all.billed_here(&usage(&[("mistral", 1, 0, dec!(0))])), None);
        assert_eq!(all.billed_here(&usage(&[("gemini", 1, 0, dec!(1))])), None);
    }
}
