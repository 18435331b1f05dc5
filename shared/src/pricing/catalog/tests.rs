//! Tests of the catalog: lookup by time, model, alias and provider, tenant overlays,
//! validation, the shipped default catalog and the native file format.

use chrono::{DateTime, Utc};
use rust_decimal_macros::dec;

use super::*;
use crate::pricing::Prices;
use crate::testing::{at, counts, dec, model, provider};
use crate::usage::UsageCounts;

fn version(prov: &str, name: Option<&str>, from: DateTime<Utc>, input: &str) -> PriceVersion {
    let provider = provider(prov);
    let model = name.map(model);
    PriceVersion {
        id: PriceVersion::conventional_id(&provider, model.as_ref(), from),
        provider,
        model,
        aliases: vec![],
        effective_from: from,
        effective_to: None,
        prices: Prices {
            input_token: Some(dec(input)),
            ..Default::default()
        },
        source: "test".into(),
    }
}

#[test]
fn lookup_picks_the_version_in_force_at_the_event_time() {
    let mut ended = version("openai", Some("gpt-x"), at(2024, 1, 1, 0), "1");
    ended.effective_to = Some(at(2024, 6, 1, 0));
    let catalog = Catalog::from_versions(vec![
        ended,
        version("openai", Some("gpt-x"), at(2025, 1, 1, 0), "2"),
        version("openai", Some("gpt-x"), at(2025, 7, 1, 0), "3"),
    ])
    .unwrap();
    let (op, gx) = (provider("openai"), model("gpt-x"));
    let price_at = |t| {
        catalog
            .lookup(Some(&op), Some(&gx), t)
            .map(|v| v.prices.input_token)
    };
    assert_eq!(price_at(at(2024, 3, 1, 0)), Ok(Some(dec!(1))));
    assert!(
        matches!(
            price_at(at(2024, 6, 1, 0)),
            Err(LookupError::Unpriced { .. })
        ),
        "effective_to is exclusive"
    );
    assert!(matches!(
        price_at(at(2023, 1, 1, 0)),
        Err(LookupError::Unpriced { .. })
    ));
    assert_eq!(price_at(at(2025, 1, 1, 0)), Ok(Some(dec!(2))));
    assert_eq!(price_at(at(2025, 6, 30, 0)), Ok(Some(dec!(2))));
    assert_eq!(price_at(at(2026, 1, 1, 0)), Ok(Some(dec!(3))));
    assert_eq!(
        catalog
            .lookup(Some(&op), Some(&gx), at(2025, 8, 1, 0))
            .unwrap()
            .id,
        "openai/gpt-x@2025-07-01T00:00:00Z"
    );
}

#[test]
fn exact_model_beats_alias_and_provider_can_be_omitted_when_unambiguous() {
    let mut aliased = version("azure", Some("azure/gpt-x"), at(2025, 1, 1, 0), "2");
    aliased.aliases = vec![model("gpt-x")];
    let mut only_alias = version("azure", Some("azure/gpt-y"), at(2025, 1, 1, 0), "5");
    only_alias.aliases = vec![model("gpt-y")];
    let catalog = Catalog::from_versions(vec![
        version("openai", Some("gpt-x"), at(2025, 1, 1, 0), "1"),
        aliased,
        only_alias,
        version("openai", Some("shared"), at(2025, 1, 1, 0), "3"),
        version("mistral", Some("shared"), at(2025, 1, 1, 0), "4"),
    ])
    .unwrap();
    let t = at(2025, 2, 1, 0);
    let input = |prov: Option<&str>, name: &str| {
        catalog
            .lookup(prov.map(provider).as_ref(), Some(&model(name)), t)
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
        Err(LookupError::UnknownModel {
            model: model("nope")
        })
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
    for model in [None, Some(model("search-advanced"))] {
        let out = catalog
            .price(
                Some(&provider("tavily")),
                model.as_ref(),
                at(2025, 3, 1, 0),
                &c,
            )
            .unwrap();
        assert_eq!(out.cost_usd(), Some(dec!(0.016)));
    }
}

#[test]
fn unpriced_is_an_explicit_outcome_never_zero() {
    let catalog = Catalog::default_catalog().unwrap();
    let c = counts(1000, 0, 0, 10, 0);
    let out = catalog
        .price(
            Some(&provider("openai")),
            Some(&model("gpt-99")),
            at(2025, 3, 1, 0),
            &c,
        )
        .unwrap();
    assert!(
        matches!(&out, PriceOutcome::Unpriced { provider, .. } if provider.as_str() == "openai")
    );
    assert_eq!(out.cost_usd(), None);
    let before = catalog
        .price(
            Some(&provider("openai")),
            Some(&model("gpt-4o")),
            at(2024, 12, 31, 0),
            &c,
        )
        .unwrap();
    assert!(matches!(before, PriceOutcome::Unpriced { .. }));
    // inconsistent counts are an error even where there is no price
    assert!(matches!(
        catalog.price(
            Some(&provider("openai")),
            Some(&model("gpt-99")),
            at(2025, 3, 1, 0),
            &counts(1, 2, 0, 0, 0)
        ),
        Err(PricingError::InconsistentCounts { .. })
    ));
}

#[test]
fn tenant_versions_take_precedence_where_in_force() {
    let shared = Catalog::from_versions(vec![version(
        "openai",
        Some("gpt-x"),
        at(2025, 1, 1, 0),
        "1",
    )])
    .unwrap();
    let mut tenant_v = version("openai", Some("gpt-x"), at(2025, 6, 1, 0), "0.5");
    tenant_v.source = "tenant".into();
    let tenant = Catalog::from_versions(vec![
        tenant_v,
        version("acme", None, at(2025, 1, 1, 0), "7"),
    ])
    .unwrap();
    let merged = tenant.merged_over(&shared).unwrap();
    let input = |t| {
        merged
            .lookup(Some(&provider("openai")), Some(&model("gpt-x")), t)
            .map(|v| v.prices.input_token.unwrap())
    };
    assert_eq!(
        input(at(2025, 3, 1, 0)),
        Ok(dec!(1)),
        "shared price before the tenant's starts"
    );
    assert_eq!(input(at(2025, 7, 1, 0)), Ok(dec!(0.5)));
    // a tenant version that starts earlier than the shared one still wins once both are in force
    let early_tenant = Catalog::from_versions(vec![version(
        "openai",
        Some("gpt-x"),
        at(2024, 1, 1, 0),
        "0.1",
    )])
    .unwrap();
    let merged = early_tenant.merged_over(&shared).unwrap();
    let v = merged
        .lookup(
            Some(&provider("openai")),
            Some(&model("gpt-x")),
            at(2025, 7, 1, 0),
        )
        .unwrap();
    assert_eq!(v.prices.input_token, Some(dec!(0.1)));
}

#[test]
fn catalog_rejects_invalid_versions() {
    let mut neg = version("openai", Some("a"), at(2025, 1, 1, 0), "-1");
    neg.id = "neg".into();
    assert!(matches!(
        Catalog::from_versions(vec![neg]),
        Err(CatalogError::NegativePrice { .. })
    ));
    let mut empty = version("openai", Some("a"), at(2025, 1, 1, 0), "1");
    empty.effective_to = Some(at(2025, 1, 1, 0));
    assert!(matches!(
        Catalog::from_versions(vec![empty]),
        Err(CatalogError::EmptyPeriod { .. })
    ));
    let a = version("openai", Some("a"), at(2025, 1, 1, 0), "1");
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
        assert_eq!(v.effective_from, at(2025, 1, 1, 0));
        assert!(v.provider.is_known(), "{}", v.provider);
    }
    let t = at(2025, 3, 1, 0);
    let quote = |prov: &str, name: Option<&str>, c: UsageCounts| {
        catalog
            .price(Some(&provider(prov)), name.map(model).as_ref(), t, &c)
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
