//! Tests of the cost function, the catalog and the LiteLLM importer.

use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

use super::*;
use crate::domain::{ModelId, ProviderId};
use crate::usage::UsageCounts;

fn d(s: &str) -> Decimal {
    Decimal::from_str(s)
        .or_else(|_| Decimal::from_scientific(s))
        .unwrap()
}

fn at(y: i32, m: u32, day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, day, 0, 0, 0).unwrap()
}

fn p(s: &str) -> ProviderId {
    ProviderId::parse(s).unwrap()
}

fn m(s: &str) -> ModelId {
    ModelId::parse(s).unwrap()
}

fn counts(input: u64, cached: u64, write: u64, output: u64, reasoning: u64) -> UsageCounts {
    UsageCounts {
        input_tokens: input,
        cached_input_tokens: cached,
        cache_write_tokens: write,
        output_tokens: output,
        reasoning_tokens: reasoning,
        ..Default::default()
    }
}

/// $1/$2/$0.5/$4/$8 per token (input/output/cache read/cache write/reasoning) and $10/20/30/40 per unit.
fn full_prices() -> Prices {
    Prices {
        input_token: Some(dec!(1)),
        output_token: Some(dec!(2)),
        cache_read_token: Some(dec!(0.5)),
        cache_write_token: Some(dec!(4)),
        reasoning_token: Some(dec!(8)),
        request: Some(dec!(10)),
        search: Some(dec!(20)),
        image: Some(dec!(30)),
        page: Some(dec!(40)),
        tiers: vec![],
    }
}

#[test]
fn every_component_is_billed_at_its_own_price() {
    let cases: [(&str, UsageCounts, Decimal); 11] = [
        ("nothing", UsageCounts::default(), dec!(0)),
        ("uncached input", counts(3, 0, 0, 0, 0), dec!(3)),
        (
            "cache reads leave the uncached rest at input",
            counts(3, 2, 0, 0, 0),
            dec!(2),
        ),
        (
            "cache writes at the write price",
            counts(3, 0, 2, 0, 0),
            dec!(9),
        ),
        (
            "reads + writes + uncached",
            counts(10, 4, 3, 0, 0),
            dec!(3) + dec!(2) + dec!(12),
        ),
        ("output", counts(0, 0, 0, 5, 0), dec!(10)),
        (
            "reasoning is part of output, at its price",
            counts(0, 0, 0, 5, 2),
            dec!(6) + dec!(16),
        ),
        (
            "requests",
            UsageCounts {
                requests: 2,
                ..Default::default()
            },
            dec!(20),
        ),
        (
            "searches",
            UsageCounts {
                searches: 2,
                ..Default::default()
            },
            dec!(40),
        ),
        (
            "images",
            UsageCounts {
                images: 2,
                ..Default::default()
            },
            dec!(60),
        ),
        (
            "pages",
            UsageCounts {
                pages: 2,
                ..Default::default()
            },
            dec!(80),
        ),
    ];
    for (name, c, want) in cases {
        assert_eq!(cost(&full_prices(), &c).unwrap(), want, "{name}");
    }
}

#[test]
fn missing_cache_prices_fall_back_to_the_input_price_and_reasoning_to_output() {
    let prices = Prices {
        input_token: Some(d("2.5e-6")),
        output_token: Some(d("1e-5")),
        ..Default::default()
    };
    // 1000 prompt (600 cached, 100 written) + 500 completion (200 reasoning), all at base rates
    let c = counts(1000, 600, 100, 500, 200);
    assert_eq!(cost(&prices, &c).unwrap().to_string(), "0.0075");
    let with_cache = Prices {
        cache_read_token: Some(d("1.25e-6")),
        ..prices
    };
    // 300·2.5e-6 + 600·1.25e-6 + 100·2.5e-6 + 500·1e-5
    assert_eq!(cost(&with_cache, &c).unwrap().to_string(), "0.00675");
}

#[test]
fn missing_token_and_unit_prices_bill_nothing() {
    let prices = Prices {
        search: Some(dec!(0.008)),
        ..Default::default()
    };
    let c = UsageCounts {
        input_tokens: 1000,
        output_tokens: 1000,
        searches: 3,
        images: 5,
        ..Default::default()
    };
    assert_eq!(cost(&prices, &c).unwrap().to_string(), "0.024");
}

fn tiered(inclusive: bool) -> Prices {
    Prices {
        input_token: Some(dec!(1)),
        output_token: Some(dec!(10)),
        cache_read_token: Some(dec!(0.1)),
        tiers: vec![ContextTier {
            threshold: 100,
            inclusive,
            input: Some(dec!(2)),
            output: Some(dec!(20)),
            cache_read: None,
            cache_write: None,
            reasoning: None,
        }],
        ..Default::default()
    }
}

#[test]
fn tier_applies_strictly_above_threshold() {
    // prompt of n tokens (10 cached) + 1 output token
    let cases = [
        (99, dec!(89) + dec!(1) + dec!(10)),
        (100, dec!(90) + dec!(1) + dec!(10)),
        // above: every token at the tier's prices; the tier has no cache-read price, so the base one stays
        (101, dec!(182) + dec!(1) + dec!(20)),
    ];
    for (n, want) in cases {
        assert_eq!(
            cost(&tiered(false), &counts(n, 10, 0, 1, 0)).unwrap(),
            want,
            "n={n}"
        );
    }
}

#[test]
fn inclusive_tier_applies_from_the_threshold() {
    let cases = [
        (99, dec!(89) + dec!(1) + dec!(10)),
        (100, dec!(180) + dec!(1) + dec!(20)),
        (101, dec!(182) + dec!(1) + dec!(20)),
    ];
    for (n, want) in cases {
        assert_eq!(
            cost(&tiered(true), &counts(n, 10, 0, 1, 0)).unwrap(),
            want,
            "n={n}"
        );
    }
}

#[test]
fn tiers_apply_in_ascending_order_and_missing_rates_keep_the_rate_so_far() {
    let prices = Prices {
        input_token: Some(dec!(1)),
        output_token: Some(dec!(10)),
        // given out of order on purpose
        tiers: vec![
            ContextTier {
                threshold: 200,
                input: Some(dec!(3)),
                ..Default::default()
            },
            ContextTier {
                threshold: 100,
                input: Some(dec!(2)),
                output: Some(dec!(20)),
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    // 201 tokens: input from the 200 tier, output from the 100 tier, cache reads at the resolved input
    let c = counts(201, 1, 0, 1, 0);
    assert_eq!(cost(&prices, &c).unwrap(), dec!(600) + dec!(3) + dec!(20));
    let rates = prices.token_rates(150);
    assert_eq!(
        (rates.input, rates.output, rates.cache_read, rates.reasoning),
        (dec!(2), dec!(20), dec!(2), dec!(20))
    );
}

#[test]
fn inconsistent_counts_are_errors() {
    let bad = [
        counts(10, 6, 5, 0, 0),
        counts(10, 11, 0, 0, 0),
        counts(0, 0, 0, 3, 4),
    ];
    for c in bad {
        assert!(
            matches!(
                cost(&full_prices(), &c),
                Err(PricingError::InconsistentCounts { .. })
            ),
            "{c:?}"
        );
    }
}

#[test]
fn huge_counts_at_huge_prices_overflow_without_panicking() {
    let prices = Prices {
        input_token: Some(Decimal::MAX),
        ..Default::default()
    };
    assert_eq!(
        cost(&prices, &counts(u64::MAX, 0, 0, 0, 0)),
        Err(PricingError::Overflow)
    );
    let prices = Prices {
        input_token: Some(Decimal::MAX),
        output_token: Some(Decimal::MAX),
        ..Default::default()
    };
    assert_eq!(
        cost(&prices, &counts(1, 0, 0, 1, 0)),
        Err(PricingError::Overflow)
    );
}

#[test]
fn max_counts_at_real_prices_are_exact() {
    let prices = Prices {
        input_token: Some(d("3.5e-7")),
        output_token: Some(d("1.5e-5")),
        ..Default::default()
    };
    let n = crate::usage::MAX_COUNT;
    assert_eq!(
        cost(&prices, &counts(n, 0, 0, n, 0)).unwrap(),
        dec!(15350000)
    );
}

fn linear_prices() -> impl Strategy<Value = Prices> {
    // prices with up to 12 decimals, as real per-token prices have
    let price = (0u64..10_000_000, 0u32..=12).prop_map(|(m, s)| Decimal::new(m as i64, s));
    (
        proptest::option::of(price.clone()),
        proptest::option::of(price.clone()),
        proptest::option::of(price.clone()),
        proptest::option::of(price.clone()),
        proptest::option::of(price.clone()),
        proptest::option::of(price.clone()),
        proptest::option::of(price),
    )
        .prop_map(|(i, o, cr, cw, r, s, pg)| Prices {
            input_token: i,
            output_token: o,
            cache_read_token: cr,
            cache_write_token: cw,
            reasoning_token: r,
            search: s,
            page: pg,
            ..Default::default()
        })
}

fn valid_counts() -> impl Strategy<Value = UsageCounts> {
    (0u64..10_000_000, 0u64..10_000_000, 0u64..100).prop_flat_map(|(input, output, units)| {
        (
            Just(input),
            0..=input,
            Just(output),
            0..=output,
            0..=units,
            0..=units,
        )
            .prop_flat_map(move |(input, cached, output, reasoning, searches, pages)| {
                (0..=input - cached).prop_map(move |write| UsageCounts {
                    input_tokens: input,
                    cached_input_tokens: cached,
                    cache_write_tokens: write,
                    output_tokens: output,
                    reasoning_tokens: reasoning,
                    searches,
                    pages,
                    ..Default::default()
                })
            })
    })
}

fn add(a: UsageCounts, b: &UsageCounts) -> UsageCounts {
    UsageCounts {
        input_tokens: a.input_tokens + b.input_tokens,
        output_tokens: a.output_tokens + b.output_tokens,
        cached_input_tokens: a.cached_input_tokens + b.cached_input_tokens,
        cache_write_tokens: a.cache_write_tokens + b.cache_write_tokens,
        reasoning_tokens: a.reasoning_tokens + b.reasoning_tokens,
        requests: a.requests + b.requests,
        searches: a.searches + b.searches,
        images: a.images + b.images,
        pages: a.pages + b.pages,
    }
}

proptest! {
    #[test]
    fn sum_of_quotes_equals_quote_of_summed_counts_without_tiers(
        prices in linear_prices(),
        events in proptest::collection::vec(valid_counts(), 1..20),
    ) {
        let sum_of_costs = events
            .iter()
            .map(|c| cost(&prices, c).unwrap())
            .fold(Decimal::ZERO, |a, b| a + b);
        let summed = events.iter().fold(UsageCounts::default(), add);
        prop_assert_eq!(sum_of_costs, cost(&prices, &summed).unwrap());
    }

    #[test]
    fn quoting_twice_gives_the_same_string(prices in linear_prices(), c in valid_counts()) {
        prop_assert_eq!(cost(&prices, &c).unwrap().to_string(), cost(&prices, &c).unwrap().to_string());
    }

    #[test]
    fn cost_never_panics(input in any::<u64>(), cached in any::<u64>(), output in any::<u64>(), reasoning in any::<u64>()) {
        let _ = cost(&full_prices(), &counts(input, cached, 0, output, reasoning));
    }
}

// ---------------------------------------------------------------- catalog

fn version(provider: &str, model: Option<&str>, from: DateTime<Utc>, input: &str) -> PriceVersion {
    let provider = p(provider);
    let model = model.map(m);
    PriceVersion {
        id: PriceVersion::conventional_id(&provider, model.as_ref(), from),
        provider,
        model,
        aliases: vec![],
        effective_from: from,
        effective_to: None,
        prices: Prices {
            input_token: Some(d(input)),
            ..Default::default()
        },
        source: "test".into(),
    }
}

#[test]
fn lookup_picks_the_version_in_force_at_the_event_time() {
    let mut ended = version("openai", Some("gpt-x"), at(2024, 1, 1), "1");
    ended.effective_to = Some(at(2024, 6, 1));
    let catalog = Catalog::from_versions(vec![
        ended,
        version("openai", Some("gpt-x"), at(2025, 1, 1), "2"),
        version("openai", Some("gpt-x"), at(2025, 7, 1), "3"),
    ])
    .unwrap();
    let (op, gx) = (p("openai"), m("gpt-x"));
    let price_at = |t| {
        catalog
            .lookup(Some(&op), Some(&gx), t)
            .map(|v| v.prices.input_token)
    };
    assert_eq!(price_at(at(2024, 3, 1)), Ok(Some(dec!(1))));
    assert!(
        matches!(price_at(at(2024, 6, 1)), Err(LookupError::Unpriced { .. })),
        "effective_to is exclusive"
    );
    assert!(matches!(
        price_at(at(2023, 1, 1)),
        Err(LookupError::Unpriced { .. })
    ));
    assert_eq!(price_at(at(2025, 1, 1)), Ok(Some(dec!(2))));
    assert_eq!(price_at(at(2025, 6, 30)), Ok(Some(dec!(2))));
    assert_eq!(price_at(at(2026, 1, 1)), Ok(Some(dec!(3))));
    assert_eq!(
        catalog
            .lookup(Some(&op), Some(&gx), at(2025, 8, 1))
            .unwrap()
            .id,
        "openai/gpt-x@2025-07-01T00:00:00Z"
    );
}

#[test]
fn exact_model_beats_alias_and_provider_can_be_omitted_when_unambiguous() {
    let mut aliased = version("azure", Some("azure/gpt-x"), at(2025, 1, 1), "2");
    aliased.aliases = vec![m("gpt-x")];
    let mut only_alias = version("azure", Some("azure/gpt-y"), at(2025, 1, 1), "5");
    only_alias.aliases = vec![m("gpt-y")];
    let catalog = Catalog::from_versions(vec![
        version("openai", Some("gpt-x"), at(2025, 1, 1), "1"),
        aliased,
        only_alias,
        version("openai", Some("shared"), at(2025, 1, 1), "3"),
        version("mistral", Some("shared"), at(2025, 1, 1), "4"),
    ])
    .unwrap();
    let t = at(2025, 2, 1);
    let input = |prov: Option<&str>, model: &str| {
        catalog
            .lookup(prov.map(p).as_ref(), Some(&m(model)), t)
            .map(|v| v.prices.input_token.unwrap())
    };
    assert_eq!(
        input(None, "gpt-x"),
        Ok(dec!(1)),
        "exact id beats another provider's alias"
    );
    assert_eq!(
        input(Some("azure"), "gpt-x"),
        Ok(dec!(2)),
        "alias within the given provider"
    );
    assert_eq!(
        input(None, "gpt-y"),
        Ok(dec!(5)),
        "a unique alias names its entry"
    );
    assert_eq!(input(Some("mistral"), "shared"), Ok(dec!(4)));
    assert!(matches!(
        input(None, "shared"),
        Err(LookupError::Ambiguous { .. })
    ));
    assert_eq!(
        input(None, "nope"),
        Err(LookupError::UnknownModel { model: m("nope") })
    );
    assert_eq!(
        catalog.lookup(None, None, t).map(|v| v.id.clone()),
        Err(LookupError::MissingModel)
    );
    assert!(matches!(
        input(Some("openai"), "nope"),
        Err(LookupError::Unpriced { .. })
    ));
}

#[test]
fn provider_wide_price_covers_events_without_a_model_entry() {
    let catalog = Catalog::default_catalog().unwrap();
    let c = UsageCounts {
        searches: 2,
        ..Default::default()
    };
    for model in [None, Some(m("search-advanced"))] {
        let out = catalog
            .price(Some(&p("tavily")), model.as_ref(), at(2025, 3, 1), &c)
            .unwrap();
        assert_eq!(out.cost_usd(), Some(dec!(0.016)));
    }
}

#[test]
fn unpriced_is_an_explicit_outcome_never_zero() {
    let catalog = Catalog::default_catalog().unwrap();
    let c = counts(1000, 0, 0, 10, 0);
    let out = catalog
        .price(Some(&p("openai")), Some(&m("gpt-99")), at(2025, 3, 1), &c)
        .unwrap();
    assert!(
        matches!(&out, PriceOutcome::Unpriced { provider, .. } if provider.as_str() == "openai")
    );
    assert_eq!(out.cost_usd(), None);
    let before = catalog
        .price(Some(&p("openai")), Some(&m("gpt-4o")), at(2024, 12, 31), &c)
        .unwrap();
    assert!(matches!(before, PriceOutcome::Unpriced { .. }));
    // inconsistent counts are an error even where there is no price
    assert!(matches!(
        catalog.price(
            Some(&p("openai")),
            Some(&m("gpt-99")),
            at(2025, 3, 1),
            &counts(1, 2, 0, 0, 0)
        ),
        Err(PricingError::InconsistentCounts { .. })
    ));
}

#[test]
fn tenant_versions_take_precedence_where_in_force() {
    let shared =
        Catalog::from_versions(vec![version("openai", Some("gpt-x"), at(2025, 1, 1), "1")])
            .unwrap();
    let mut tenant_v = version("openai", Some("gpt-x"), at(2025, 6, 1), "0.5");
    tenant_v.source = "tenant".into();
    let tenant =
        Catalog::from_versions(vec![tenant_v, version("acme", None, at(2025, 1, 1), "7")]).unwrap();
    let merged = tenant.merged_over(&shared).unwrap();
    let input = |t| {
        merged
            .lookup(Some(&p("openai")), Some(&m("gpt-x")), t)
            .map(|v| v.prices.input_token.unwrap())
    };
    assert_eq!(
        input(at(2025, 3, 1)),
        Ok(dec!(1)),
        "shared price before the tenant's starts"
    );
    assert_eq!(input(at(2025, 7, 1)), Ok(dec!(0.5)));
    // a tenant version that starts earlier than the shared one still wins once both are in force
    let early_tenant = Catalog::from_versions(vec![version(
        "openai",
        Some("gpt-x"),
        at(2024, 1, 1),
        "0.1",
    )])
    .unwrap();
    let merged = early_tenant.merged_over(&shared).unwrap();
    let v = merged
        .lookup(Some(&p("openai")), Some(&m("gpt-x")), at(2025, 7, 1))
        .unwrap();
    assert_eq!(v.prices.input_token, Some(dec!(0.1)));
}

#[test]
fn catalog_rejects_invalid_versions() {
    let mut neg = version("openai", Some("a"), at(2025, 1, 1), "-1");
    neg.id = "neg".into();
    assert!(matches!(
        Catalog::from_versions(vec![neg]),
        Err(CatalogError::NegativePrice { .. })
    ));
    let mut empty = version("openai", Some("a"), at(2025, 1, 1), "1");
    empty.effective_to = Some(at(2025, 1, 1));
    assert!(matches!(
        Catalog::from_versions(vec![empty]),
        Err(CatalogError::EmptyPeriod { .. })
    ));
    let a = version("openai", Some("a"), at(2025, 1, 1), "1");
    let mut b = a.clone();
    b.id = "other".into();
    assert!(matches!(
        Catalog::from_versions(vec![a.clone(), b]),
        Err(CatalogError::DuplicateStart { .. })
    ));
    assert!(matches!(
        Catalog::from_versions(vec![a.clone(), a]),
        Err(CatalogError::DuplicateId { .. })
    ));
}

#[test]
fn default_catalog_has_the_spec_list_with_sources() {
    let catalog = Catalog::default_catalog().unwrap();
    assert_eq!(catalog.len(), 15);
    for v in catalog.versions() {
        assert!(v.source.starts_with("https://"), "{} cites a source", v.id);
        assert_eq!(v.effective_from, at(2025, 1, 1));
        assert!(v.provider.is_known(), "{}", v.provider);
    }
    let t = at(2025, 3, 1);
    let quote = |prov: &str, model: Option<&str>, c: UsageCounts| {
        catalog
            .price(Some(&p(prov)), model.map(m).as_ref(), t, &c)
            .unwrap()
            .cost_usd()
            .unwrap()
            .to_string()
    };
    let million = |input, cached, write, output| counts(input, cached, write, output, 0);
    let cases = [
        (
            "gemini",
            Some("gemini-2.0-flash-lite"),
            million(1_000_000, 0, 0, 1_000_000),
            "0.375",
        ),
        (
            "gemini",
            Some("gemini-2.5-flash"),
            million(2_000_000, 1_000_000, 0, 1_000_000),
            "2.83",
        ),
        (
            "gemini",
            Some("gemini-2.5-flash-lite"),
            million(2_000_000, 1_000_000, 0, 0),
            "0.11",
        ),
        (
            "gemini",
            Some("gemini-2.5-pro"),
            million(200_000, 100_000, 0, 1_000_000),
            "10.1375",
        ),
        (
            "gemini",
            Some("gemini-2.5-pro"),
            million(200_001, 100_000, 0, 1_000_000),
            "15.2750025",
        ),
        (
            "openai",
            Some("gpt-4o"),
            million(1_000_000, 500_000, 0, 100_000),
            "2.875",
        ),
        (
            "openai",
            Some("gpt-4o-mini"),
            million(1_000_000, 0, 0, 1_000_000),
            "0.75",
        ),
        (
            "anthropic",
            Some("claude-sonnet-4-5"),
            million(3_000_000, 1_000_000, 1_000_000, 0),
            "7.05",
        ),
        (
            "anthropic",
            Some("claude-haiku-4-5"),
            million(2_000_000, 1_000_000, 0, 1_000_000),
            "6.1",
        ),
        (
            "mistral",
            Some("mistral-large-latest"),
            million(1_000_000, 0, 0, 1_000_000),
            "2",
        ),
        (
            "mistral",
            Some("mistral-small-latest"),
            million(1_000_000, 0, 0, 1_000_000),
            "0.75",
        ),
        (
            "tavily",
            None,
            UsageCounts {
                searches: 1,
                ..Default::default()
            },
            "0.008",
        ),
        (
            "serper",
            None,
            UsageCounts {
                searches: 1,
                ..Default::default()
            },
            "0.001",
        ),
        (
            "metaphor",
            None,
            UsageCounts {
                searches: 1,
                ..Default::default()
            },
            "0.005",
        ),
        (
            "firecrawl",
            None,
            UsageCounts {
                pages: 1,
                ..Default::default()
            },
            "0.002",
        ),
        (
            "stability",
            Some("sd3.5-large-turbo"),
            UsageCounts {
                images: 1,
                ..Default::default()
            },
            "0.04",
        ),
    ];
    for (prov, model, c, want) in cases {
        assert_eq!(quote(prov, model, c), want, "{prov} {model:?}");
    }
}

#[test]
fn native_format_round_trips_and_rejects_ambiguous_per_million() {
    let catalog = Catalog::default_catalog().unwrap();
    let again = Catalog::from_native_json(&catalog.to_native_json()).unwrap();
    assert_eq!(again.versions(), catalog.versions());
    let both = r#"{"versions":[{"provider":"openai","model":"x","effective_from":"2025-01-01T00:00:00Z",
        "source":"s","prices":{"input_token":"0.000001"},"per_million_tokens":{"input":"1"}}]}"#;
    assert!(matches!(
        Catalog::from_native_json(both),
        Err(CatalogError::Format(_))
    ));
    let number = r#"{"versions":[{"provider":"openai","model":"x","effective_from":"2025-01-01T00:00:00Z",
        "source":"s","prices":{"input_token":0.000001}}]}"#;
    assert!(
        matches!(
            Catalog::from_native_json(number),
            Err(CatalogError::Format(_))
        ),
        "prices are strings"
    );
    let none = r#"{"versions":[{"provider":"openai","model":"x","effective_from":"2025-01-01T00:00:00Z","source":"s"}]}"#;
    assert!(matches!(
        Catalog::from_native_json(none),
        Err(CatalogError::NoPrices { .. })
    ));
}

// ---------------------------------------------------------------- LiteLLM import

const SUBSET: &str = include_str!("../../../tests/data/litellm_subset.json");

#[test]
fn litellm_numbers_are_parsed_from_their_text() {
    let text = r#"{"m": {"litellm_provider": "openai", "input_cost_per_token": 3.5e-07,
        "output_cost_per_token": 1E-6, "cache_read_input_token_cost": 0.0000001,
        "input_cost_per_token_above_128k_tokens": 0.1, "output_cost_per_token_above_0.5k_tokens": "2e-6"}}"#;
    let (versions, summary) = litellm::import(text, at(2025, 1, 1)).unwrap();
    assert_eq!(summary.imported, 1);
    let prices = &versions[0].prices;
    assert_eq!(prices.input_token, Some(d("0.00000035")));
    assert_eq!(prices.output_token, Some(d("0.000001")));
    assert_eq!(prices.cache_read_token, Some(d("0.0000001")));
    let thresholds: Vec<u64> = prices.tiers.iter().map(|t| t.threshold).collect();
    assert_eq!(thresholds, [500, 128_000]);
    assert_eq!(prices.tiers[0].output, Some(d("0.000002")));
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
    let (versions, s) = litellm::import(text, at(2025, 1, 1)).unwrap();
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
    let (catalog, s) = litellm::import_catalog(SUBSET, at(1970, 1, 1)).unwrap();
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
            Some(&p("xai")),
            Some(&m("grok-code-fast-1")),
            at(2025, 1, 1),
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
    let (catalog, _) = litellm::import_catalog(SUBSET, at(1970, 1, 1)).unwrap();
    let t = at(2025, 6, 1);
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
    for (prov, model, c, want) in cases {
        let out = catalog
            .price(prov.map(p).as_ref(), Some(&m(model)), t, &c)
            .unwrap();
        assert_eq!(
            out.cost_usd().map(|d| d.to_string()).as_deref(),
            Some(want),
            "{prov:?} {model}"
        );
    }
    // exact key (Vertex) beats the `gemini/` entry's alias when no provider is given
    let v = catalog.lookup(None, Some(&m("gemini-2.5-pro")), t).unwrap();
    assert_eq!(v.provider.as_str(), "vertex_ai-language-models");
    // an `alias_of` entry names its target
    let v = catalog
        .lookup(None, Some(&m("bedrock/claude-opus-latest")), t)
        .unwrap();
    assert_eq!(
        v.model.as_ref().map(ModelId::as_str),
        Some("global.anthropic.claude-opus-5-5")
    );
    // a skipped entry is unpriced, not $0
    let out = catalog
        .price(
            Some(&p("azure")),
            Some(&m("azure/speech/azure-tts")),
            t,
            &counts(10, 0, 0, 0, 0),
        )
        .unwrap();
    assert!(matches!(out, PriceOutcome::Unpriced { .. }));
}
