//! The price catalog: versioned prices per (provider, model), and which version is in
//! force for an event.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::cost::{check_counts, cost, Prices};
use super::{PriceOutcome, PricingError};
use crate::domain::{ModelId, ProviderId};
use crate::usage::UsageCounts;

/// One price version: the prices of (provider, model) from `effective_from` until
/// `effective_to` (exclusive), or open-ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceVersion {
    /// Stable id recorded on every event it prices, e.g. `openai/gpt-4o@2025-01-01T00:00:00Z`.
    pub id: String,
    pub provider: ProviderId,
    /// `None`: a provider-wide price, used for events of this provider that name no
    /// model or a model without an entry of its own (e.g. Tavily searches).
    #[serde(default)]
    pub model: Option<ModelId>,
    /// Other names of the same model (LiteLLM's key without its `provider/` prefix).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<ModelId>,
    pub effective_from: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_to: Option<DateTime<Utc>>,
    pub prices: Prices,
    /// Where the prices come from (a pricing page URL, `litellm`, `tenant`).
    pub source: String,
}

impl PriceVersion {
    /// The conventional id: `provider/model@effective_from` (`provider@…` when provider-wide).
    pub fn conventional_id(
        provider: &ProviderId,
        model: Option<&ModelId>,
        from: DateTime<Utc>,
    ) -> String {
        let at = from.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
        match model {
            Some(m) => format!("{provider}/{m}@{at}"),
            None => format!("{provider}@{at}"),
        }
    }

    /// Whether this version is in force at `at`.
    pub fn in_force_at(&self, at: DateTime<Utc>) -> bool {
        self.effective_from <= at && self.effective_to.is_none_or(|to| at < to)
    }
}

/// Why a catalog could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    #[error("price version `{id}` has a negative price")]
    NegativePrice { id: String },
    #[error("price version `{id}` ends before it starts")]
    EmptyPeriod { id: String },
    #[error("price version id `{id}` is used twice")]
    DuplicateId { id: String },
    #[error(
        "price versions `{first}` and `{second}` start at the same instant for the same model"
    )]
    DuplicateStart { first: String, second: String },
    #[error("price version `{id}` states no price")]
    NoPrices { id: String },
    #[error("catalog file is not valid: {0}")]
    Format(String),
}

impl CatalogError {
    /// The stable code of a catalog that does not build.
    pub fn code(&self) -> &'static str {
        match self {
            CatalogError::NegativePrice { .. } => "negative_price",
            CatalogError::EmptyPeriod { .. } => "empty_period",
            CatalogError::DuplicateId { .. } => "duplicate_id",
            CatalogError::DuplicateStart { .. } => "overlapping_versions",
            CatalogError::NoPrices { .. } => "no_prices",
            CatalogError::Format(_) => "invalid_price_version",
        }
    }
}

/// Why no price version could be chosen for an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// Neither a provider nor a model was given.
    #[error("an event needs a provider or a model")]
    MissingModel,
    /// Provider omitted, and the model names no catalog entry.
    #[error("model `{model}` is not in the catalog; give its provider")]
    UnknownModel { model: ModelId },
    /// The model names several entries (several providers, or several models sharing an alias).
    #[error("model `{model}` names several catalog entries ({candidates}); give its provider")]
    Ambiguous { model: ModelId, candidates: String },
    /// The entry exists (or the provider was given) but no version is in force at that time.
    #[error("no price in force for {what} at {at}")]
    Unpriced {
        provider: ProviderId,
        what: String,
        at: DateTime<Utc>,
    },
}

type Key = (ProviderId, Option<ModelId>);

/// Many price versions, indexed for lookup. Versions added by a tenant
/// ([`Catalog::merged_over`]) take precedence over the shared catalog's.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    versions: Vec<PriceVersion>,
    /// Precedence layer of each version: 0 wins over 1, and so on.
    layer: Vec<u8>,
    by_key: HashMap<Key, Vec<usize>>,
    by_model: HashMap<ModelId, Vec<Key>>,
    by_alias: HashMap<ModelId, Vec<Key>>,
}

/// The file form of a native catalog (see docs/pricing.md).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct NativeFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    versions: Vec<NativeVersion>,
}

/// A version as written in a file: `id` optional (conventional id), prices per unit,
/// with an optional per-million-tokens convenience block.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct NativeVersion {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    provider: ProviderId,
    #[serde(default)]
    model: Option<ModelId>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    aliases: Vec<ModelId>,
    effective_from: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    effective_to: Option<DateTime<Utc>>,
    #[serde(default)]
    prices: Prices,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    per_million_tokens: Option<PerMillion>,
    source: String,
}

/// Token prices in USD per 1,000,000 tokens, converted exactly to per-token prices.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PerMillion {
    #[serde(default, with = "super::cost::price_str")]
    input: Option<rust_decimal::Decimal>,
    #[serde(default, with = "super::cost::price_str")]
    output: Option<rust_decimal::Decimal>,
    #[serde(default, with = "super::cost::price_str")]
    cache_read: Option<rust_decimal::Decimal>,
    #[serde(default, with = "super::cost::price_str")]
    cache_write: Option<rust_decimal::Decimal>,
    #[serde(default, with = "super::cost::price_str")]
    reasoning: Option<rust_decimal::Decimal>,
    /// Long-context tiers with their token prices per million tokens.
    #[serde(default)]
    tiers: Vec<super::cost::ContextTier>,
}

fn per_token(
    id: &str,
    name: &str,
    unit: &mut Option<rust_decimal::Decimal>,
    per_million: Option<rust_decimal::Decimal>,
) -> Result<(), CatalogError> {
    if let Some(pm) = per_million {
        if unit.is_some() {
            return Err(CatalogError::Format(format!(
                "version `{id}` gives the {name} price both per unit and per million tokens"
            )));
        }
        let million = rust_decimal::Decimal::from(1_000_000u32);
        let v = pm.checked_div(million).ok_or_else(|| {
            CatalogError::Format(format!("version `{id}`: {name} price out of range"))
        })?;
        *unit = Some(v.normalize());
    }
    Ok(())
}

impl NativeVersion {
    fn into_version(self) -> Result<PriceVersion, CatalogError> {
        let id = self.id.unwrap_or_else(|| {
            PriceVersion::conventional_id(&self.provider, self.model.as_ref(), self.effective_from)
        });
        let mut prices = self.prices;
        if let Some(pm) = self.per_million_tokens {
            per_token(&id, "input", &mut prices.input_token, pm.input)?;
            per_token(&id, "output", &mut prices.output_token, pm.output)?;
            per_token(
                &id,
                "cache_read",
                &mut prices.cache_read_token,
                pm.cache_read,
            )?;
            per_token(
                &id,
                "cache_write",
                &mut prices.cache_write_token,
                pm.cache_write,
            )?;
            per_token(&id, "reasoning", &mut prices.reasoning_token, pm.reasoning)?;
            if !pm.tiers.is_empty() {
                if !prices.tiers.is_empty() {
                    return Err(CatalogError::Format(format!(
                        "version `{id}` gives tiers both per unit and per million tokens"
                    )));
                }
                for t in pm.tiers {
                    let mut tier = super::cost::ContextTier {
                        threshold: t.threshold,
                        inclusive: t.inclusive,
                        ..Default::default()
                    };
                    per_token(&id, "tier input", &mut tier.input, t.input)?;
                    per_token(&id, "tier output", &mut tier.output, t.output)?;
                    per_token(&id, "tier cache_read", &mut tier.cache_read, t.cache_read)?;
                    per_token(
                        &id,
                        "tier cache_write",
                        &mut tier.cache_write,
                        t.cache_write,
                    )?;
                    per_token(&id, "tier reasoning", &mut tier.reasoning, t.reasoning)?;
                    prices.tiers.push(tier);
                }
            }
        }
        Ok(PriceVersion {
            id,
            provider: self.provider,
            model: self.model,
            aliases: self.aliases,
            effective_from: self.effective_from,
            effective_to: self.effective_to,
            prices,
            source: self.source,
        })
    }
}

const DEFAULT_CATALOG: &str = include_str!("../../data/default_catalog.json");

impl Catalog {
    /// Builds a catalog, validating every version (no negative prices, no empty
    /// periods, unique ids, no two versions of one model starting at the same instant).
    pub fn from_versions(versions: Vec<PriceVersion>) -> Result<Self, CatalogError> {
        let n = versions.len();
        Self::from_layers(versions, vec![0; n])
    }

    fn from_layers(mut versions: Vec<PriceVersion>, layer: Vec<u8>) -> Result<Self, CatalogError> {
        let mut by_key: HashMap<Key, Vec<usize>> = HashMap::new();
        let mut by_model: HashMap<ModelId, Vec<Key>> = HashMap::new();
        let mut by_alias: HashMap<ModelId, Vec<Key>> = HashMap::new();
        let mut ids: HashMap<(&str, u8), usize> = HashMap::new();
        for v in versions.iter_mut() {
            v.prices.sort_tiers();
            if v.prices.has_negative() {
                return Err(CatalogError::NegativePrice { id: v.id.clone() });
            }
            if v.effective_to.is_some_and(|to| to <= v.effective_from) {
                return Err(CatalogError::EmptyPeriod { id: v.id.clone() });
            }
        }
        for (i, v) in versions.iter().enumerate() {
            if ids.insert((v.id.as_str(), layer[i]), i).is_some() {
                return Err(CatalogError::DuplicateId { id: v.id.clone() });
            }
            let key: Key = (v.provider.clone(), v.model.clone());
            let slot = by_key.entry(key.clone()).or_default();
            if let Some(&j) = slot
                .iter()
                .find(|&&j| layer[j] == layer[i] && versions[j].effective_from == v.effective_from)
            {
                return Err(CatalogError::DuplicateStart {
                    first: versions[j].id.clone(),
                    second: v.id.clone(),
                });
            }
            let first_of_key = slot.is_empty();
            slot.push(i);
            if first_of_key {
                if let Some(m) = &v.model {
                    by_model.entry(m.clone()).or_default().push(key.clone());
                }
            }
            for a in &v.aliases {
                let keys = by_alias.entry(a.clone()).or_default();
                if !keys.contains(&key) {
                    keys.push(key.clone());
                }
            }
        }
        Ok(Self {
            versions,
            layer,
            by_key,
            by_model,
            by_alias,
        })
    }

    /// Parses a native catalog file (JSON, docs/pricing.md).
    pub fn from_native_json(text: &str) -> Result<Self, CatalogError> {
        let file: NativeFile =
            serde_json::from_str(text).map_err(|e| CatalogError::Format(e.to_string()))?;
        let versions = file
            .versions
            .into_iter()
            .map(NativeVersion::into_version)
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(v) = versions.iter().find(|v| v.prices.is_empty()) {
            return Err(CatalogError::NoPrices { id: v.id.clone() });
        }
        Self::from_versions(versions)
    }

    /// Writes the catalog in the native file format (per-unit prices).
    pub fn to_native_json(&self) -> String {
        let file = NativeFile {
            description: None,
            versions: self
                .versions
                .iter()
                .map(|v| NativeVersion {
                    id: Some(v.id.clone()),
                    provider: v.provider.clone(),
                    model: v.model.clone(),
                    aliases: v.aliases.clone(),
                    effective_from: v.effective_from,
                    effective_to: v.effective_to,
                    prices: v.prices.clone(),
                    per_million_tokens: None,
                    source: v.source.clone(),
                })
                .collect(),
        };
        serde_json::to_string_pretty(&file).unwrap_or_default()
    }

    /// The catalog shipped with meter (`shared/data/default_catalog.json`).
    pub fn default_catalog() -> Result<Self, CatalogError> {
        Self::from_native_json(DEFAULT_CATALOG)
    }

    /// Every version, in insertion order (own versions before the base's after a merge).
    pub fn versions(&self) -> &[PriceVersion] {
        &self.versions
    }

    pub fn len(&self) -> usize {
        self.versions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.versions.is_empty()
    }

    /// This catalog's versions layered over `base`: for the same (provider, model), a
    /// version of `self` in force wins over any version of `base`; where `self` has none
    /// in force, `base` still prices. Used for a tenant's own versions over the shared catalog.
    pub fn merged_over(&self, base: &Catalog) -> Result<Catalog, CatalogError> {
        let top = self
            .layer
            .iter()
            .copied()
            .max()
            .map_or(0, |m| m.saturating_add(1));
        let versions: Vec<PriceVersion> = self
            .versions
            .iter()
            .chain(base.versions.iter())
            .cloned()
            .collect();
        let layer = self
            .layer
            .iter()
            .copied()
            .chain(base.layer.iter().map(|l| l.saturating_add(top)))
            .collect();
        Self::from_layers(versions, layer)
    }

    /// The version of `key` in force at `at`: the lowest layer that has one, and within
    /// it the latest `effective_from`.
    fn in_force(&self, key: &Key, at: DateTime<Utc>) -> Option<&PriceVersion> {
        let idx = self.by_key.get(key)?;
        idx.iter()
            .copied()
            .filter(|&i| self.versions[i].in_force_at(at))
            .min_by(|&a, &b| {
                self.layer[a].cmp(&self.layer[b]).then(
                    self.versions[b]
                        .effective_from
                        .cmp(&self.versions[a].effective_from),
                )
            })
            .map(|i| &self.versions[i])
    }

    fn one_key<'a>(model: &ModelId, keys: &'a [Key]) -> Result<&'a Key, LookupError> {
        match keys {
            [k] => Ok(k),
            _ => Err(LookupError::Ambiguous {
                model: model.clone(),
                candidates: keys
                    .iter()
                    .map(|(p, m)| match m {
                        Some(m) => format!("{p}/{m}"),
                        None => p.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    /// Which (provider, model) entry an event names.
    fn resolve_key(
        &self,
        provider: Option<&ProviderId>,
        model: Option<&ModelId>,
    ) -> Result<Key, LookupError> {
        match (provider, model) {
            (None, None) => Err(LookupError::MissingModel),
            (Some(p), None) => Ok((p.clone(), None)),
            (Some(p), Some(m)) => {
                let exact = (p.clone(), Some(m.clone()));
                if self.by_key.contains_key(&exact) {
                    return Ok(exact);
                }
                let aliased: Vec<Key> = self
                    .by_alias
                    .get(m)
                    .map(|ks| ks.iter().filter(|(kp, _)| kp == p).cloned().collect())
                    .unwrap_or_default();
                if !aliased.is_empty() {
                    return Self::one_key(m, &aliased).cloned();
                }
                // No entry for the model: the provider-wide price, if any.
                Ok((p.clone(), None))
            }
            (None, Some(m)) => {
                if let Some(keys) = self.by_model.get(m) {
                    return Self::one_key(m, keys).cloned();
                }
                if let Some(keys) = self.by_alias.get(m) {
                    return Self::one_key(m, keys).cloned();
                }
                Err(LookupError::UnknownModel { model: m.clone() })
            }
        }
    }

    /// The version in force at `at` for an event of `provider` (optional when `model`
    /// names exactly one entry) and `model` (optional: the provider-wide price).
    ///
    /// An exact model id beats an alias; a model of the given provider without an
    /// entry of its own falls back to the provider-wide price.
    pub fn lookup(
        &self,
        provider: Option<&ProviderId>,
        model: Option<&ModelId>,
        at: DateTime<Utc>,
    ) -> Result<&PriceVersion, LookupError> {
        let key = self.resolve_key(provider, model)?;
        self.in_force(&key, at)
            .ok_or_else(|| LookupError::Unpriced {
                what: match model {
                    Some(m) => format!("{}/{m}", key.0),
                    None => key.0.to_string(),
                },
                provider: key.0.clone(),
                at,
            })
    }

    /// Prices an event: `Priced` with the exact cost and the version that priced it, or
    /// `Unpriced` when no price is in force (never $0, never a default rate).
    pub fn price(
        &self,
        provider: Option<&ProviderId>,
        model: Option<&ModelId>,
        at: DateTime<Utc>,
        counts: &UsageCounts,
    ) -> Result<PriceOutcome, PricingError> {
        check_counts(counts)?;
        match self.lookup(provider, model, at) {
            Ok(v) => Ok(PriceOutcome::Priced {
                cost_usd: cost(&v.prices, counts)?,
                version_id: v.id.clone(),
                provider: v.provider.clone(),
            }),
            Err(LookupError::Unpriced { provider, what, at }) => Ok(PriceOutcome::Unpriced {
                reason: LookupError::Unpriced {
                    provider: provider.clone(),
                    what,
                    at,
                }
                .to_string(),
                provider,
            }),
            Err(e) => Err(PricingError::Lookup(e)),
        }
    }
}

#[cfg(test)]
mod tests;
