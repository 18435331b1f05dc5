//! Tests of the cost function: every component at its own price, fallbacks, long-context
//! tiers, inconsistent counts, overflow, and sums of quotes (proptest).

use proptest::prelude::*;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

use super::*;
use crate::testing::{counts, dec};
use crate::usage::UsageCounts;

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
        input_token: Some(dec("2.5e-6")),
        output_token: Some(dec("1e-5")),
        ..Default::default()
    };
    // 1000 prompt (600 cached, 100 written) + 500 completion (200 reasoning), all at base rates
    let c = counts(1000, 600, 100, 500, 200);
    assert_eq!(cost(&prices, &c).unwrap().to_string(), "0.0075");
    let with_cache = Prices {
        cache_read_token: Some(dec("1.25e-6")),
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
        input_token: Some(dec("3.5e-7")),
        output_token: Some(dec("1.5e-5")),
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
