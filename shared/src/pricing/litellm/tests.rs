//! Tests of the LiteLLM import: numbers parsed from their text, entries skipped and
//! counted, and the committed subset's imports and quotes.

use super::*;
use crate::domain::ModelId;
use crate::pricing::PriceOutcome;
use crate::testing::{at, counts, dec, model, provider};
use crate::usage::UsageCounts;

const SUBSET: &str = include_str!("../../../../tests/data/litellm_subset.json");

#[test]
fn litellm_numbers_are_parsed_from_their_text() {
    let text = r#"{"m": {"litellm_provider": "openai", "input_cost_per_token": 3.5e-07,
        "output_cost_per_token": 1E-6, "cache_read_input_token_cost": 0.0000001,
        "input_cost_per_token_above_128k_tokens": 0.1, "output_cost_per_token_above_0.5k_tokens": "2e-6"}}"#;
    let (versions, summary) = import(text, at(2025, 1, 1, 0)).unwrap();
    assert_eq!(summary.imported, 1);
    let prices = &versions[0].prices;
    assert_eq!(prices.input_token, Some(dec("0.00000035")));
    assert_eq!(prices.output_token, Some(dec("0.000001")));
    assert_eq!(prices.cache_read_token, Some(dec("0.0000001")));
    let thresholds: Vec<u64> = prices.tiers.iter().map(|t| t.threshold).collect();
    assert_eq!(thresholds, [500, 128_000]);
    assert_eq!(prices.tiers[0].output, Some(dec("0.000002")));
}

#[test]
fn litellm_entries_that_cannot_be_represented_are_skipped_and_counted() {
    let text = r#"{
        "sample_spec": {"input_cost_per_token": 0, "litellm_provider": "one of litellm_provider"},
        "neg": {"litellm_provider": "openai", "input_cost_per_token": -1e-6},
        "NoProvider": {"input_cost_per_token": 1e-6},
        "bad id": {"litellm_provider": "openai", "input_cost_per_token": 1e-6},
        "Bad/Prov": {"litellm_provider": "bad provider", "input_cost_per_token": 1e-6},
        "tts": {"litellm_provider": "openai", "input_cost_per_character": 1.5e-5},
        "whisper": {"litellm_provider": "openai", "input_cost_per_second": 1e-4},
        "ok": {"litellm_provider": "OpenAI", "output_cost_per_token": 1e-6},
        "gappy": {"litellm_provider": "dashscope", "tiered_pricing": [
            {"input_cost_per_token": 1e-7, "range": [0, 1000]},
            {"input_cost_per_token": 2e-7, "range": [2000, 3000]}]}
    }"#;
    let (versions, s) = import(text, at(2025, 1, 1, 0)).unwrap();
    assert_eq!(versions.len(), 1);
    assert_eq!(
        versions[0].provider.as_str(),
        "openai",
        "provider ids are lower-cased"
    );
    assert_eq!((s.entries, s.imported, s.skipped_total()), (9, 1, 8));
    for (reason, n) in [
        ("sample_spec", 1),
        ("negative_price", 1),
        ("no_provider", 1),
        ("invalid_model_id", 1),
        ("invalid_provider_id", 1),
        ("per_character_pricing_only", 1),
        ("per_second_pricing_only", 1),
        ("unrepresentable_tiered_pricing", 1),
    ] {
        assert_eq!(s.skipped.get(reason), Some(&n), "{reason}");
    }
}

#[test]
fn litellm_subset_imports_with_every_feature() {
    let (catalog, s) = import_catalog(SUBSET, at(1970, 1, 1, 0)).unwrap();
    assert_eq!(s.entries, 36);
    assert_eq!(s.imported, 27);
    assert_eq!(s.aliases, 1);
    let expected_skips = [
        ("invalid_model_id", 1),
        ("no_supported_prices", 1),
        ("per_character_pricing_only", 1),
        ("per_pixel_pricing_only", 1),
        ("per_second_pricing_only", 1),
        ("result_count_tiered_pricing", 1),
        ("sample_spec", 1),
        ("time_of_day_pricing", 1),
    ];
    assert_eq!(s.skipped, expected_skips.into_iter().collect());
    let xai = catalog
        .lookup(
            Some(&provider("xai")),
            Some(&model("grok-code-fast-1")),
            at(2025, 1, 1, 0),
        )
        .unwrap();
    assert!(
        xai.prices.tiers.iter().all(|t| t.inclusive),
        "xai thresholds are inclusive"
    );
    assert_eq!(xai.id, "xai/xai/grok-code-fast-1@1970-01-01T00:00:00Z");
}

#[test]
fn litellm_subset_quotes_match_hand_computed_costs() {
    let (catalog, _) = import_catalog(SUBSET, at(1970, 1, 1, 0)).unwrap();
    let t = at(2025, 6, 1, 0);
    let units = |requests, searches, images, pages| UsageCounts {
        requests,
        searches,
        images,
        pages,
        ..Default::default()
    };
    let with_output = |mut c: UsageCounts, output| {
        c.output_tokens = output;
        c
    };
    let cases: Vec<(Option<&str>, &str, UsageCounts, &str)> = vec![
        (
            Some("openai"),
            "gpt-4o",
            counts(1000, 200, 0, 500, 0),
            "0.00725",
        ),
        // alias (key without `gemini/`), 200k tier: strictly above vs at the threshold
        (
            Some("gemini"),
            "gemini-2.5-pro",
            counts(200_001, 1000, 0, 100, 0),
            "0.4992525",
        ),
        (
            Some("gemini"),
            "gemini-2.5-pro",
            counts(200_000, 1000, 0, 100, 0),
            "0.249875",
        ),
        // xai: inclusive threshold
        (
            Some("xai"),
            "grok-code-fast-1",
            counts(200_000, 0, 0, 10, 0),
            "0.40004",
        ),
        (
            Some("xai"),
            "grok-code-fast-1",
            counts(199_999, 0, 0, 10, 0),
            "0.200019",
        ),
        // tiered_pricing list: range (0, 256000] then (256000, 1000000]
        (
            Some("dashscope"),
            "qwen-flash",
            counts(256_000, 0, 0, 1000, 0),
            "0.0132",
        ),
        (
            Some("dashscope"),
            "qwen-flash",
            counts(256_001, 0, 0, 1000, 0),
            "0.06600025",
        ),
        // reasoning price
        (
            Some("dashscope"),
            "qwen-turbo",
            counts(100, 0, 0, 1000, 400),
            "0.000325",
        ),
        (Some("tavily"), "search", units(0, 3, 0, 0), "0.024"),
        (
            None,
            "stability/sd3.5-large-turbo",
            units(0, 0, 2, 0),
            "0.08",
        ),
        // cache read and cache write prices
        (
            Some("anthropic"),
            "claude-sonnet-4-5",
            counts(10_000, 6000, 2000, 100, 0),
            "0.0168",
        ),
        // Fireworks: cache reads at half the input price when none is listed (as LiteLLM)
        (
            Some("fireworks_ai"),
            "fireworks-ai-4.1b-to-16b",
            counts(1000, 500, 0, 0, 0),
            "0.00015",
        ),
        // image-generation model: output at the image-token price
        (
            Some("azure"),
            "gpt-image-1",
            counts(10, 0, 0, 100, 0),
            "0.00405",
        ),
        (
            Some("azure_ai"),
            "mistral-ocr-4-0",
            units(0, 0, 0, 10),
            "0.04",
        ),
        (
            Some("perplexity"),
            "sonar-small-online",
            with_output(units(1, 0, 0, 0), 1000),
            "0.00528",
        ),
        // two thresholds (32k, 256k); the 256k tier keeps the base cache-read price
        (
            Some("kyma"),
            "qwen3.7-flash",
            counts(256_001, 1, 0, 10, 0),
            "0.0691308081",
        ),
        (
            Some("kyma"),
            "qwen3.7-flash",
            counts(32_001, 0, 0, 10, 0),
            "0.004325535",
        ),
        // 272k tier with a cache-write price
        (
            Some("openai"),
            "gpt-6-sol",
            counts(272_001, 0, 1, 1, 0),
            "1.08802",
        ),
        // 128k tier
        (
            None,
            "empiriolabs/qwen3-5-122b-a10b",
            counts(128_001, 0, 0, 1, 0),
            "0.036738581",
        ),
    ];
    for (prov, name, c, want) in cases {
        let out = catalog
            .price(prov.map(provider).as_ref(), Some(&model(name)), t, &c)
            .unwrap();
        assert_eq!(
            out.cost_usd().map(|d| d.to_string()).as_deref(),
            Some(want),
            "{prov:?} {name}"
        );
    }
    // exact key (Vertex) beats the `gemini/` entry's alias when no provider is given
    let v = catalog
        .lookup(None, Some(&model("gemini-2.5-pro")), t)
        .unwrap();
    assert_eq!(v.provider.as_str(), "vertex_ai-language-models");
    // an `alias_of` entry names its target
    let v = catalog
        .lookup(None, Some(&model("bedrock/claude-opus-latest")), t)
        .unwrap();
    assert_eq!(
        v.model.as_ref().map(ModelId::as_str),
        Some("global.anthropic.claude-opus-5-5")
    );
    // a skipped entry is unpriced, not $0
    let out = catalog
        .price(
            Some(&provider("azure")),
            Some(&model("azure/speech/azure-tts")),
            t,
            &counts(10, 0, 0, 0, 0),
        )
        .unwrap();
    assert!(matches!(out, PriceOutcome::Unpriced { .. }));
}
