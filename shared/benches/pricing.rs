//! Benchmarks of the cost function and catalog lookup.

use std::hint::black_box;

use chrono::{TimeZone, Utc};
use criterion::{criterion_group, criterion_main, Criterion};
use meter_core::domain::{ModelId, ProviderId};
use meter_core::pricing::{cost, litellm, Catalog};
use meter_core::usage::UsageCounts;

const SUBSET: &str = include_str!("../../tests/data/litellm_subset.json");

fn counts(input: u64) -> UsageCounts {
    UsageCounts {
        input_tokens: input,
        output_tokens: 2_000,
        cached_input_tokens: input / 2,
        cache_write_tokens: 100,
        reasoning_tokens: 500,
        ..Default::default()
    }
}

fn benches(c: &mut Criterion) {
    let catalog = Catalog::default_catalog().expect("default catalog");
    let at = Utc.with_ymd_and_hms(2025, 6, 1, 0, 0, 0).unwrap();
    let gemini = ProviderId::parse("gemini").unwrap();
    let pro = ModelId::parse("gemini-2.5-pro").unwrap();
    let prices = catalog
        .lookup(Some(&gemini), Some(&pro), at)
        .unwrap()
        .prices
        .clone();

    c.bench_function("cost/base_rates", |b| {
        b.iter(|| cost(black_box(&prices), black_box(&counts(10_000))))
    });
    c.bench_function("cost/above_tier", |b| {
        b.iter(|| cost(black_box(&prices), black_box(&counts(250_000))))
    });
    c.bench_function("lookup/provider_and_model", |b| {
        b.iter(|| catalog.lookup(black_box(Some(&gemini)), black_box(Some(&pro)), at))
    });
    c.bench_function("lookup/model_only", |b| {
        b.iter(|| catalog.lookup(None, black_box(Some(&pro)), at))
    });
    c.bench_function("price/catalog_price", |b| {
        b.iter(|| catalog.price(Some(&gemini), Some(&pro), at, black_box(&counts(10_000))))
    });
    c.bench_function("import/litellm_subset", |b| {
        b.iter(|| litellm::import(black_box(SUBSET), at))
    });
}

criterion_group!(pricing, benches);
criterion_main!(pricing);
