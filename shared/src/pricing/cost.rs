//! The cost of one event under one set of prices: LiteLLM's `generic_cost_per_token`
//! in exact decimal arithmetic.
//!
//! How a cached token is priced, in order:
//! 1. The base rates of [`Prices`] are the starting point.
//! 2. Every long-context [`ContextTier`] whose threshold the prompt passes (`input_tokens > T`,
//!    or `>= T` for an inclusive tier), taken in ascending threshold order, replaces the
//!    rates it declares; a rate it does not declare keeps the rate resolved so far.
//! 3. A missing input or output rate bills nothing; a missing cache-read or cache-write
//!    rate bills at the resolved input rate; a missing reasoning rate bills at the
//!    resolved output rate.
//! 4. Uncached prompt tokens = input − cache reads − cache writes; plain completion
//!    tokens = output − reasoning.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::PricingError;
use crate::usage::UsageCounts;

/// Serde for an optional price: a JSON string holding the exact decimal, never a JSON
/// number (which would pass through binary floating point on the way in).
pub(crate) mod price_str {
    use rust_decimal::Decimal;
    use serde::{Deserialize, Deserializer, Serializer};
    use std::str::FromStr;

    pub fn serialize<S: Serializer>(v: &Option<Decimal>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(d) => s.serialize_str(&d.to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        match text {
            None => Ok(None),
            Some(t) => Decimal::from_str(&t)
                .or_else(|_| Decimal::from_scientific(&t))
                .map(Some)
                .map_err(|_| serde::de::Error::custom(format!("`{t}` is not a decimal price"))),
        }
    }
}

/// A long-context tier: above `threshold` prompt tokens, these rates replace the base
/// rates for every token of the request. A rate left `None` keeps the rate resolved so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContextTier {
    /// Prompt size (in tokens, cache reads and writes included) the tier starts above.
    pub threshold: u64,
    /// `true`: the tier applies from `input_tokens >= threshold` (xAI); `false`: strictly above.
    #[serde(default)]
    pub inclusive: bool,
    #[serde(default, with = "price_str", skip_serializing_if = "Option::is_none")]
    pub input: Option<Decimal>,
    #[serde(default, with = "price_str", skip_serializing_if = "Option::is_none")]
    pub output: Option<Decimal>,
    #[serde(default, with = "price_str", skip_serializing_if = "Option::is_none")]
    pub cache_read: Option<Decimal>,
    #[serde(default, with = "price_str", skip_serializing_if = "Option::is_none")]
    pub cache_write: Option<Decimal>,
    #[serde(default, with = "price_str", skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<Decimal>,
}

impl ContextTier {
    /// Whether a prompt of `input_tokens` tokens is billed at this tier.
    pub fn applies_to(&self, input_tokens: u64) -> bool {
        if self.inclusive {
            input_tokens >= self.threshold
        } else {
            input_tokens > self.threshold
        }
    }

    fn rates(&self) -> [Option<Decimal>; 5] {
        [
            self.input,
            self.output,
            self.cache_read,
            self.cache_write,
            self.reasoning,
        ]
    }
}

/// Prices of one price version, USD per unit. Every component is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prices {
    /// Per uncached prompt token.
    #[serde(default, with = "price_str", skip_serializing_if = "Option::is_none")]
    pub input_token: Option<Decimal>,
    /// Per completion token.
    #[serde(default, with = "price_str", skip_serializing_if = "Option::is_none")]
    pub output_token: Option<Decimal>,
    /// Per cached prompt token read (defaults to the input price).
    #[serde(default, with = "price_str", skip_serializing_if = "Option::is_none")]
    pub cache_read_token: Option<Decimal>,
    /// Per prompt token written to the cache (defaults to the input price).
    #[serde(default, with = "price_str", skip_serializing_if = "Option::is_none")]
    pub cache_write_token: Option<Decimal>,
    /// Per reasoning token (part of the completion; defaults to the output price).
    #[serde(default, with = "price_str", skip_serializing_if = "Option::is_none")]
    pub reasoning_token: Option<Decimal>,
    #[serde(default, with = "price_str", skip_serializing_if = "Option::is_none")]
    pub request: Option<Decimal>,
    /// Per search query (LiteLLM `input_cost_per_query`).
    #[serde(default, with = "price_str", skip_serializing_if = "Option::is_none")]
    pub search: Option<Decimal>,
    /// Per generated image (LiteLLM `output_cost_per_image`).
    #[serde(default, with = "price_str", skip_serializing_if = "Option::is_none")]
    pub image: Option<Decimal>,
    /// Per page scraped or read.
    #[serde(default, with = "price_str", skip_serializing_if = "Option::is_none")]
    pub page: Option<Decimal>,
    /// Long-context tiers, ascending by threshold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tiers: Vec<ContextTier>,
}

impl Prices {
    /// Every price of the version, tiers included.
    fn all_rates(&self) -> impl Iterator<Item = Decimal> + '_ {
        [
            self.input_token,
            self.output_token,
            self.cache_read_token,
            self.cache_write_token,
            self.reasoning_token,
            self.request,
            self.search,
            self.image,
            self.page,
        ]
        .into_iter()
        .chain(self.tiers.iter().flat_map(ContextTier::rates))
        .flatten()
    }

    /// Whether the version states at least one price.
    pub fn is_empty(&self) -> bool {
        self.all_rates().next().is_none()
    }

    /// Whether every stated price is zero.
    pub fn is_all_zero(&self) -> bool {
        self.all_rates().all(|d| d.is_zero())
    }

    /// Whether any price is negative.
    pub fn has_negative(&self) -> bool {
        self.all_rates()
            .any(|d| d.is_sign_negative() && !d.is_zero())
    }

    /// Sorts the tiers by threshold (stable, so equal thresholds keep their order).
    pub fn sort_tiers(&mut self) {
        self.tiers.sort_by_key(|t| t.threshold);
    }

    /// The per-token rates a prompt of `input_tokens` tokens is billed at.
    pub fn token_rates(&self, input_tokens: u64) -> TokenRates {
        let mut input = self.input_token;
        let mut output = self.output_token;
        let mut cache_read = self.cache_read_token;
        let mut cache_write = self.cache_write_token;
        let mut reasoning = self.reasoning_token;
        let mut apply = |t: &ContextTier| {
            if t.applies_to(input_tokens) {
                input = t.input.or(input);
                output = t.output.or(output);
                cache_read = t.cache_read.or(cache_read);
                cache_write = t.cache_write.or(cache_write);
                reasoning = t.reasoning.or(reasoning);
            }
        };
        if self.tiers.is_sorted_by_key(|t| t.threshold) {
            self.tiers.iter().for_each(&mut apply);
        } else {
            let mut sorted: Vec<&ContextTier> = self.tiers.iter().collect();
            sorted.sort_by_key(|t| t.threshold);
            sorted.into_iter().for_each(&mut apply);
        }
        let input = input.unwrap_or(Decimal::ZERO);
        let output = output.unwrap_or(Decimal::ZERO);
        TokenRates {
            input,
            output,
            cache_read: cache_read.unwrap_or(input),
            cache_write: cache_write.unwrap_or(input),
            reasoning: reasoning.unwrap_or(output),
        }
    }
}

/// The resolved per-token rates of one request (tiers applied, defaults filled in).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenRates {
    pub input: Decimal,
    pub output: Decimal,
    pub cache_read: Decimal,
    pub cache_write: Decimal,
    pub reasoning: Decimal,
}

fn term(count: u64, rate: Decimal) -> Result<Decimal, PricingError> {
    if count == 0 {
        return Ok(Decimal::ZERO);
    }
    Decimal::from(count)
        .checked_mul(rate)
        .ok_or(PricingError::Overflow)
}

fn unit_term(count: u64, rate: Option<Decimal>) -> Result<Decimal, PricingError> {
    rate.map_or(Ok(Decimal::ZERO), |r| term(count, r))
}

/// Uncached prompt tokens and plain (non-reasoning) completion tokens.
fn split_counts(counts: &UsageCounts) -> Result<(u64, u64), PricingError> {
    let uncached = counts
        .input_tokens
        .checked_sub(counts.cached_input_tokens)
        .and_then(|n| n.checked_sub(counts.cache_write_tokens))
        .ok_or(PricingError::InconsistentCounts {
            reason: "cached_input_tokens + cache_write_tokens exceed input_tokens",
        })?;
    let plain_output = counts
        .output_tokens
        .checked_sub(counts.reasoning_tokens)
        .ok_or(PricingError::InconsistentCounts {
            reason: "reasoning_tokens exceed output_tokens",
        })?;
    Ok((uncached, plain_output))
}

/// Checks that cache reads + writes fit in the prompt and reasoning in the completion.
pub fn check_counts(counts: &UsageCounts) -> Result<(), PricingError> {
    split_counts(counts).map(|_| ())
}

/// The exact cost in USD of `counts` at `prices` (normalised: no trailing zeros).
///
/// Errors: [`PricingError::InconsistentCounts`] when cache reads + writes exceed the
/// prompt or reasoning exceeds the completion; [`PricingError::Overflow`] when the
/// result does not fit a `Decimal`. Never panics.
pub fn cost(prices: &Prices, counts: &UsageCounts) -> Result<Decimal, PricingError> {
    let (uncached, plain_output) = split_counts(counts)?;
    let r = prices.token_rates(counts.input_tokens);
    let terms = [
        term(uncached, r.input)?,
        term(counts.cached_input_tokens, r.cache_read)?,
        term(counts.cache_write_tokens, r.cache_write)?,
        term(plain_output, r.output)?,
        term(counts.reasoning_tokens, r.reasoning)?,
        unit_term(counts.requests, prices.request)?,
        unit_term(counts.searches, prices.search)?,
        unit_term(counts.images, prices.image)?,
        unit_term(counts.pages, prices.page)?,
    ];
    let mut total = Decimal::ZERO;
    for t in terms {
        total = total.checked_add(t).ok_or(PricingError::Overflow)?;
    }
    Ok(total.normalize())
}

#[cfg(test)]
mod tests;
