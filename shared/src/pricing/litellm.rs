//! Import of LiteLLM's `model_prices_and_context_window.json`.
//!
//! Every number is parsed from its JSON text (`1e-06`, `3.5e-07`, `0.000002`) straight
//! into a `Decimal`, never through `f64`. What is imported, and how it maps onto
//! [`Prices`], mirrors LiteLLM's `generic_cost_per_token` (see docs/pricing.md):
//!
//! | LiteLLM field | meter price |
//! | --- | --- |
//! | `input_cost_per_token` / `output_cost_per_token` | input / output token |
//! | `cache_read_input_token_cost` / `cache_creation_input_token_cost` | cache read / write |
//! | `output_cost_per_reasoning_token` | reasoning token |
//! | `<field>_above_<N>[k]_tokens` (the four token fields) | a [`ContextTier`] at N (inclusive for `xai`) |
//! | `tiered_pricing` (token ranges) | one strict tier per range start |
//! | `input_cost_per_query` / `output_cost_per_image` / `input_cost_per_request` / `ocr_cost_per_page` | search / image / request / page |
//!
//! Service-tier, batch, regional, audio/image/video-token, per-second, per-character
//! and per-pixel prices are not meter units and are ignored; an entry left with no
//! price at all, or with prices that depend on what meter cannot see (time of day,
//! result counts), is skipped and counted in [`ImportSummary`] — never guessed.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::value::RawValue;

use super::catalog::{Catalog, CatalogError, PriceVersion};
use super::cost::{ContextTier, Prices};
use crate::domain::{ModelId, ProviderId};

/// What an import did: entries read, imported, and skipped by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImportSummary {
    pub entries: usize,
    pub imported: usize,
    /// `alias_of` entries added as aliases of the entry they name.
    pub aliases: usize,
    pub skipped: BTreeMap<&'static str, usize>,
}

impl ImportSummary {
    pub fn skipped_total(&self) -> usize {
        self.skipped.values().sum()
    }
}

/// Why a file could not be imported at all.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("not a LiteLLM price map (a JSON object of model entries): {0}")]
    Json(String),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

/// Providers whose long-context thresholds LiteLLM applies from `>=` rather than `>`.
const INCLUSIVE_THRESHOLD_PROVIDERS: [&str; 1] = ["xai"];
/// LiteLLM bills Fireworks cache reads at half the input price when no price is listed.
const FIREWORKS_DEFAULT_CACHE_READ_RATIO: Decimal = Decimal::from_parts(5, 0, 0, false, 1);

const TOKEN_PREFIXES: [&str; 4] = [
    "input_cost_per_token",
    "output_cost_per_token",
    "cache_read_input_token_cost",
    "cache_creation_input_token_cost",
];
/// Suffixes of service-tier and batch variants, which LiteLLM keeps out of the standard tiers.
const NON_STANDARD_SUFFIXES: [&str; 6] = [
    "_ultrafast",
    "_balanced",
    "_priority",
    "_flex",
    "_fast",
    "_batches",
];

type Entry = BTreeMap<String, Box<RawValue>>;

enum Skip {
    Reason(&'static str),
}

fn skip<T>(reason: &'static str) -> Result<T, Skip> {
    Err(Skip::Reason(reason))
}

/// A JSON number (or numeric string, as LiteLLM accepts) as an exact decimal; `None` for
/// null or absent.
fn parse_decimal(raw: &RawValue) -> Result<Option<Decimal>, Skip> {
    let text = raw.get().trim();
    if text == "null" {
        return Ok(None);
    }
    let text = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text);
    let d = Decimal::from_str(text)
        .or_else(|_| Decimal::from_scientific(text))
        .or_else(|_| Decimal::from_scientific(&text.replace('E', "e")));
    match d {
        Ok(d) if d.is_sign_negative() && !d.is_zero() => skip("negative_price"),
        Ok(d) => Ok(Some(d.normalize())),
        Err(_) => skip("unparsable_price"),
    }
}

fn price(entry: &Entry, key: &str) -> Result<Option<Decimal>, Skip> {
    entry.get(key).map_or(Ok(None), |raw| parse_decimal(raw))
}

fn string(entry: &Entry, key: &str) -> Option<String> {
    entry
        .get(key)
        .and_then(|raw| serde_json::from_str::<String>(raw.get()).ok())
}

/// `128k` → 128000, `200000` → 200000; LiteLLM parses these as floats, we accept the
/// forms that name a whole number of tokens.
fn parse_threshold(s: &str) -> Option<u64> {
    let (num, mult) = match s.strip_suffix('k') {
        Some(n) => (n, 1000u64),
        None => (s, 1),
    };
    if let Ok(n) = num.parse::<u64>() {
        return n.checked_mul(mult);
    }
    let d = Decimal::from_str(num)
        .ok()?
        .checked_mul(Decimal::from(mult))?;
    if d.fract().is_zero() && !d.is_sign_negative() {
        u64::try_from(d).ok()
    } else {
        None
    }
}

/// The threshold strings LiteLLM's `_get_token_base_cost` finds among the entry's keys.
fn threshold_strings(entry: &Entry) -> Result<BTreeSet<String>, Skip> {
    let mut out = BTreeSet::new();
    for key in entry.keys() {
        let standard = TOKEN_PREFIXES
            .iter()
            .any(|p| key.starts_with(&format!("{p}_above_")))
            && key.contains("_tokens")
            && !NON_STANDARD_SUFFIXES.iter().any(|s| key.ends_with(s));
        if !standard || price(entry, key)?.is_none() {
            continue;
        }
        let Some((_, rest)) = key.rsplit_once("_above_") else {
            continue;
        };
        let t = rest.split("_tokens").next().unwrap_or_default();
        out.insert(t.to_owned());
    }
    Ok(out)
}

fn threshold_tiers(entry: &Entry, inclusive: bool) -> Result<Vec<ContextTier>, Skip> {
    let mut tiers = Vec::new();
    for t in threshold_strings(entry)? {
        let Some(threshold) = parse_threshold(&t) else {
            return skip("unparsable_threshold");
        };
        tiers.push(ContextTier {
            threshold,
            inclusive,
            input: price(entry, &format!("input_cost_per_token_above_{t}_tokens"))?,
            output: price(entry, &format!("output_cost_per_token_above_{t}_tokens"))?,
            cache_read: price(
                entry,
                &format!("cache_read_input_token_cost_above_{t}_tokens"),
            )?,
            cache_write: price(
                entry,
                &format!("cache_creation_input_token_cost_above_{t}_tokens"),
            )?,
            reasoning: None,
        });
    }
    tiers.sort_by_key(|t| t.threshold);
    if tiers.windows(2).any(|w| w[0].threshold == w[1].threshold) {
        return skip("conflicting_thresholds");
    }
    Ok(tiers)
}

/// LiteLLM's `tiered_pricing` list (Dashscope style): one tier is chosen by
/// `start < input_tokens <= end` and prices every token; above the last range the last
/// tier applies. Representable as strict tiers at each range start when the ranges start
/// at 0, are contiguous, and every tier has an input price.
fn list_tiers(raw: &RawValue, base: &Prices) -> Result<Vec<ContextTier>, Skip> {
    let list: Vec<Entry> = match serde_json::from_str(raw.get()) {
        Ok(l) => l,
        Err(_) => return skip("unrepresentable_tiered_pricing"),
    };
    let mut ranged = Vec::new();
    for t in list {
        let Some(range) = t.get("range") else {
            return skip("result_count_tiered_pricing");
        };
        let bounds: Vec<Box<RawValue>> = match serde_json::from_str(range.get()) {
            Ok(b) => b,
            Err(_) => return skip("unrepresentable_tiered_pricing"),
        };
        let [start, end] = bounds.as_slice() else {
            return skip("unrepresentable_tiered_pricing");
        };
        let as_tokens = |r: &RawValue| {
            parse_decimal(r)
                .ok()
                .flatten()
                .filter(|d| d.fract().is_zero())
                .and_then(|d| u64::try_from(d).ok())
        };
        let (Some(start), Some(end)) = (as_tokens(start), as_tokens(end)) else {
            return skip("unrepresentable_tiered_pricing");
        };
        ranged.push((start, end, t));
    }
    ranged.sort_by_key(|r| r.0);
    let contiguous = ranged
        .windows(2)
        .all(|w| w[0].1 == w[1].0 && w[0].0 < w[0].1);
    if ranged.is_empty() || ranged[0].0 != 0 || !contiguous {
        return skip("unrepresentable_tiered_pricing");
    }
    let mut tiers = Vec::new();
    for (start, _, t) in ranged {
        let Some(input) = price(&t, "input_cost_per_token")? else {
            return skip("unrepresentable_tiered_pricing");
        };
        let tier_output = price(&t, "output_cost_per_token")?;
        let output = tier_output.or(base.output_token).unwrap_or(Decimal::ZERO);
        let reasoning = match (price(&t, "output_cost_per_reasoning_token")?, tier_output) {
            (Some(r), _) => r,
            (None, Some(o)) => o,
            (None, None) => base.reasoning_token.unwrap_or(output),
        };
        tiers.push(ContextTier {
            threshold: start,
            inclusive: false,
            input: Some(input),
            output: Some(output),
            cache_read: Some(price(&t, "cache_read_input_token_cost")?.unwrap_or(input)),
            cache_write: Some(price(&t, "cache_creation_input_token_cost")?.unwrap_or(input)),
            reasoning: Some(reasoning),
        });
    }
    Ok(tiers)
}

fn has_any(entry: &Entry, keys: &[&str]) -> bool {
    keys.iter()
        .any(|k| entry.get(*k).is_some_and(|v| v.get().trim() != "null"))
}

fn convert(key: &str, entry: &Entry, effective_from: DateTime<Utc>) -> Result<PriceVersion, Skip> {
    let Some(provider_text) = string(entry, "litellm_provider") else {
        return skip("no_provider");
    };
    let Ok(provider) = ProviderId::parse(provider_text.trim().to_ascii_lowercase()) else {
        return skip("invalid_provider_id");
    };
    let Ok(model) = ModelId::parse(key) else {
        return skip("invalid_model_id");
    };
    if entry.contains_key("off_peak_pricing") {
        return skip("time_of_day_pricing");
    }
    let mut prices = Prices {
        input_token: price(entry, "input_cost_per_token")?,
        output_token: price(entry, "output_cost_per_token")?,
        cache_read_token: price(entry, "cache_read_input_token_cost")?,
        cache_write_token: price(entry, "cache_creation_input_token_cost")?,
        reasoning_token: price(entry, "output_cost_per_reasoning_token")?,
        request: price(entry, "input_cost_per_request")?,
        search: price(entry, "input_cost_per_query")?,
        image: price(entry, "output_cost_per_image")?,
        page: price(entry, "ocr_cost_per_page")?,
        tiers: Vec::new(),
    };
    if let Some(raw) = entry.get("tiered_pricing") {
        prices.tiers = list_tiers(raw, &prices)?;
    } else {
        // LiteLLM bills the output of image-generation chat models at the image-token
        // price when the output price is zero or absent.
        if prices.output_token.is_none_or(|o| o.is_zero()) {
            if let Some(img) = price(entry, "output_cost_per_image_token")? {
                prices.output_token = Some(img);
            }
        }
        let inclusive = INCLUSIVE_THRESHOLD_PROVIDERS.contains(&provider.as_str());
        prices.tiers = threshold_tiers(entry, inclusive)?;
    }
    if provider.as_str() == "fireworks_ai" && prices.cache_read_token.is_none() {
        prices.cache_read_token = prices
            .input_token
            .and_then(|i| i.checked_mul(FIREWORKS_DEFAULT_CACHE_READ_RATIO))
            .map(|d| d.normalize());
    }
    // Prices in units meter does not count: an entry priced only in them (or whose
    // meter-unit prices are all zero beside them) would be quoted at a made-up $0.
    let unsupported = if has_any(
        entry,
        &[
            "input_cost_per_second",
            "output_cost_per_second",
            "cost_per_second",
        ],
    ) {
        Some("per_second_pricing_only")
    } else if has_any(
        entry,
        &["input_cost_per_character", "output_cost_per_character"],
    ) {
        Some("per_character_pricing_only")
    } else if has_any(entry, &["input_cost_per_pixel", "output_cost_per_pixel"]) {
        Some("per_pixel_pricing_only")
    } else {
        None
    };
    if prices.is_empty() {
        return skip(unsupported.unwrap_or("no_supported_prices"));
    }
    if let Some(reason) = unsupported.filter(|_| prices.is_all_zero()) {
        return skip(reason);
    }
    let alias = key
        .strip_prefix(&format!("{provider}/"))
        .filter(|rest| !rest.is_empty())
        .and_then(|rest| ModelId::parse(rest).ok());
    Ok(PriceVersion {
        id: PriceVersion::conventional_id(&provider, Some(&model), effective_from),
        provider,
        model: Some(model),
        aliases: alias.into_iter().collect(),
        effective_from,
        effective_to: None,
        prices,
        source: "litellm".to_owned(),
    })
}

/// Reads a LiteLLM price map into price versions effective from `effective_from`,
/// skipping (and counting by reason) every entry it cannot represent exactly.
pub fn import(
    json_text: &str,
    effective_from: DateTime<Utc>,
) -> Result<(Vec<PriceVersion>, ImportSummary), ImportError> {
    let map: BTreeMap<String, Box<RawValue>> =
        serde_json::from_str(json_text).map_err(|e| ImportError::Json(e.to_string()))?;
    let mut summary = ImportSummary::default();
    let mut versions = Vec::new();
    let mut alias_entries: Vec<(&String, String)> = Vec::new();
    for (key, raw) in &map {
        summary.entries += 1;
        if key == "sample_spec" {
            *summary.skipped.entry("sample_spec").or_default() += 1;
            continue;
        }
        let Ok(entry) = serde_json::from_str::<Entry>(raw.get()) else {
            *summary.skipped.entry("not_an_object").or_default() += 1;
            continue;
        };
        if !entry.contains_key("litellm_provider") {
            if let Some(target) = string(&entry, "alias_of") {
                alias_entries.push((key, target));
                continue;
            }
        }
        match convert(key, &entry, effective_from) {
            Ok(v) => {
                summary.imported += 1;
                versions.push(v);
            }
            Err(Skip::Reason(r)) => *summary.skipped.entry(r).or_default() += 1,
        }
    }
    // `{"alias_of": "<key>"}` entries: another name for an imported entry.
    let index: BTreeMap<&str, usize> = versions
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.model.as_ref().map(|m| (m.as_str(), i)))
        .collect();
    let mut resolved = Vec::new();
    for (key, target) in alias_entries {
        match (index.get(target.as_str()), ModelId::parse(key.as_str())) {
            (Some(&i), Ok(alias)) => resolved.push((i, alias)),
            (None, _) => {
                *summary
                    .skipped
                    .entry("alias_of_unimported_entry")
                    .or_default() += 1
            }
            (_, Err(_)) => *summary.skipped.entry("invalid_model_id").or_default() += 1,
        }
    }
    for (i, alias) in resolved {
        if !versions[i].aliases.contains(&alias) {
            versions[i].aliases.push(alias);
        }
        summary.aliases += 1;
    }
    Ok((versions, summary))
}

/// [`import`], built into a [`Catalog`].
pub fn import_catalog(
    json_text: &str,
    effective_from: DateTime<Utc>,
) -> Result<(Catalog, ImportSummary), ImportError> {
    let (versions, summary) = import(json_text, effective_from)?;
    Ok((Catalog::from_versions(versions)?, summary))
}

#[cfg(test)]
mod tests;
