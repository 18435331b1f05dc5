//! Benchmarks of the check decision (`limits::decide`) and of reading usage objects
//! (`usage::normalise`), the pure work behind every `POST /check` and `POST /usage`.

use std::hint::black_box;

use chrono::{TimeZone, Utc};
use criterion::{criterion_group, criterion_main, Criterion};
use meter_core::domain::{PlanName, ProviderId};
use meter_core::http::wire;
use meter_core::limits::{decide, default_plans, CallEstimate, Limits};
use meter_core::usage::normalise::{event_counts, parse_usage};
use meter_core::usage::{PeriodUsage, ProviderUsage, Tally};
use rust_decimal_macros::dec;
use serde_json::{json, Value};

fn plan_limits(name: &str) -> Limits {
    let name = PlanName::parse(name).unwrap();
    default_plans()
        .into_iter()
        .find(|p| p.name == name)
        .unwrap()
        .limits
}

/// A user half-way through their Pro limits on two providers, with an open hold.
fn usage() -> PeriodUsage {
    let mut u = PeriodUsage::default();
    for (p, calls) in [("gemini", 2_400u64), ("openai", 900)] {
        u.by_provider.insert(
            ProviderId::parse(p).unwrap(),
            ProviderUsage {
                recorded: Tally {
                    calls,
                    tokens: calls * 1_000,
                    cost_usd: dec!(31.25),
                },
                held: Tally {
                    calls: 1,
                    tokens: 2_000,
                    cost_usd: dec!(0.01),
                },
                ..Default::default()
            },
        );
    }
    u
}

fn decide_benches(c: &mut Criterion) {
    let pro = plan_limits("pro");
    let enterprise = plan_limits("enterprise");
    let usage = usage();
    let request = CallEstimate {
        provider: ProviderId::parse("gemini").unwrap(),
        estimated_tokens: 1_500,
        estimated_cost: Some(dec!(0.002)),
    };
    let empty = PeriodUsage::default();
    c.bench_function("decide/pro_two_providers", |b| {
        b.iter(|| decide(black_box(&pro), black_box(&usage), black_box(&request)))
    });
    c.bench_function("decide/enterprise_cost_cap_only", |b| {
        b.iter(|| {
            decide(
                black_box(&enterprise),
                black_box(&usage),
                black_box(&request),
            )
        })
    });
    c.bench_function("decide/pro_no_usage", |b| {
        b.iter(|| decide(black_box(&pro), black_box(&empty), black_box(&request)))
    });
}

fn parse_benches(c: &mut Criterion) {
    let openai = json!({
        "prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500,
        "prompt_tokens_details": {"cached_tokens": 1024},
        "completion_tokens_details": {"reasoning_tokens": 128}
    });
    let anthropic = json!({
        "input_tokens": 50, "cache_read_input_tokens": 1000,
        "cache_creation_input_tokens": 200, "output_tokens": 400
    });
    let gemini = json!({"usageMetadata": {
        "promptTokenCount": 900, "candidatesTokenCount": 200,
        "cachedContentTokenCount": 512, "thoughtsTokenCount": 64, "totalTokenCount": 1164
    }});
    c.bench_function("parse_usage/openai", |b| {
        b.iter(|| parse_usage(black_box(&openai)))
    });
    c.bench_function("parse_usage/anthropic", |b| {
        b.iter(|| parse_usage(black_box(&anthropic)))
    });
    c.bench_function("parse_usage/gemini", |b| {
        b.iter(|| parse_usage(black_box(&gemini)))
    });
    let event = json!({
        "event_id": "ev-1", "user_id": "u-1", "provider": "openai", "model": "gpt-4o",
        "usage": openai, "latency_ms": 420, "status_code": 200
    });
    let Value::Object(event_map) = &event else {
        unreachable!()
    };
    c.bench_function("event_counts/with_usage_object", |b| {
        b.iter(|| event_counts(black_box(event_map)))
    });
    // The whole body of a 100-event POST /usage: JSON text → validated events.
    let now = Utc.with_ymd_and_hms(2025, 6, 1, 0, 0, 0).unwrap();
    let batch: Vec<Value> = (0..100)
        .map(|i| {
            json!({
                "event_id": format!("ev-{i}"), "user_id": "u-1", "provider": "gemini",
                "model": "gemini-2.5-flash", "input_tokens": 100 + i, "output_tokens": 50,
                "latency_ms": 300, "status_code": 200
            })
        })
        .collect();
    let text = serde_json::to_vec(&json!({ "events": batch })).unwrap();
    c.bench_function("wire/parse_usage_batch_100_from_text", |b| {
        b.iter(|| {
            let body: Value = serde_json::from_slice(black_box(&text)).unwrap();
            wire::parse_usage(&body, now)
        })
    });
}

criterion_group!(limits, decide_benches, parse_benches);
criterion_main!(limits);
