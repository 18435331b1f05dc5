//! Fuzzers: arbitrary and structure-aware input into every parser of untrusted
//! text. The property of each: it never panics; a rejection is an error value (for the
//! request parsers an `ApiError` with a 4xx status); what it accepts meets the documented
//! bounds.
//!
//! proptest drives them (cargo-fuzz needs nightly and libFuzzer, which CI does not have).
//! A normal test run tries `PROPTEST_CASES` cases per target (default 256);
//! `scripts/fuzz [seconds]` sets `FUZZ_SECONDS` and each target then runs batches of
//! `PROPTEST_CASES` fresh random cases until its time is up. A failure is shrunk, its seed
//! saved in `fuzz/regressions/<target>.txt` (replayed first on every run) and reported.
//! Regressions found: see `regressions.rs` and docs/reliability.md.

mod budgets;
mod gen;
mod regressions;
mod wallets;

use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use meter_core::domain::PlanName;
use meter_core::http::{admin, wire, ApiError};
use meter_core::pricing::{self, litellm};
use meter_core::usage::{normalise, UsageCounts, MAX_COUNT};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestRunner};
use serde_json::Value;

/// Runs `test` on values of `strategy`: `PROPTEST_CASES` cases (default 256), repeated
/// with fresh seeds for `FUZZ_SECONDS` seconds when that is set. Panics on a failure.
///
/// Runs on a thread with a 256 MiB stack: the deep value trees of the structure-aware
/// strategies need more than a test thread's 2 MiB in a debug build.
fn fuzz<S: Strategy>(
    name: &'static str,
    regressions: &'static str,
    strategy: impl FnOnce() -> S + Send + 'static,
    test: impl Fn(S::Value) -> Result<bool, TestCaseError> + Send + 'static,
) {
    let runner = std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(move || fuzz_here(name, regressions, strategy(), test))
        .unwrap();
    if let Err(panic) = runner.join() {
        std::panic::resume_unwind(panic);
    }
}

fn fuzz_here<S: Strategy>(
    name: &str,
    regressions: &'static str,
    strategy: S,
    test: impl Fn(S::Value) -> Result<bool, TestCaseError>,
) {
    let accepted = std::sync::atomic::AtomicU64::new(0);
    let counted = |v: S::Value| {
        if test(v)? {
            accepted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(())
    };
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(256);
    let budget = std::env::var("FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .map(Duration::from_secs_f64);
    let started = Instant::now();
    let mut total = 0u64;
    loop {
        let mut runner = TestRunner::new(Config {
            cases,
            failure_persistence: Some(Box::new(FileFailurePersistence::Direct(regressions))),
            max_shrink_iters: 4096,
            ..Config::default()
        });
        if let Err(e) = runner.run(&strategy, counted) {
            panic!("fuzz target {name} failed after {total} cases: {e}");
        }
        total += u64::from(cases);
        if budget.is_none_or(|b| started.elapsed() >= b) {
            break;
        }
    }
    println!(
        "fuzz {name}: {total} cases in {:.1} s, {} accepted, 0 failures",
        started.elapsed().as_secs_f64(),
        accepted.into_inner()
    );
}

/// A fixed "now" inside the timestamp window of the generators.
fn now() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 15, 12, 0, 0).unwrap()
}

/// A rejection is a client error, never a 500.
fn client_error(e: &meter_core::service::Error) -> Result<(), TestCaseError> {
    let e = ApiError::from(e.clone());
    let status = e.status().as_u16();
    prop_assert!((400..500).contains(&status), "{e:?} answers {status}");
    prop_assert!(!e.code().is_empty());
    Ok(())
}

fn counts_in_bounds(c: &UsageCounts) -> Result<(), TestCaseError> {
    for v in [
        c.input_tokens,
        c.output_tokens,
        c.cached_input_tokens,
        c.cache_write_tokens,
        c.reasoning_tokens,
        c.requests,
        c.searches,
        c.images,
        c.pages,
    ] {
        prop_assert!(v <= MAX_COUNT, "count {v} above {MAX_COUNT}: {c:?}");
    }
    Ok(())
}

fn check_body(body: &Value) -> Result<bool, TestCaseError> {
    match wire::parse_check(body) {
        Ok(c) => {
            prop_assert!((1..=wire::MAX_RESERVATION_TTL).contains(&c.reservation_ttl_seconds));
            counts_in_bounds(&c.estimated_counts())?;
            Ok(true)
        }
        Err(e) => client_error(&e).map(|_| false),
    }
}

fn usage_body(body: &Value) -> Result<bool, TestCaseError> {
    match wire::parse_usage(body, now()) {
        Ok(events) => {
            prop_assert!((1..=wire::MAX_BATCH).contains(&events.len()));
            for e in &events {
                counts_in_bounds(&e.counts)?;
                prop_assert!(pricing::check_counts(&e.counts).is_ok(), "{e:?}");
                let t = e.timestamp.unwrap_or_else(now);
                prop_assert!(t <= now() + wire::MAX_CLOCK_SKEW);
                prop_assert!(t >= now() - wire::MAX_EVENT_AGE);
            }
            Ok(true)
        }
        Err(e) => client_error(&e).map(|_| false),
    }
}

/// `true` if the subscription, plan or price-version parser accepted the body.
fn admin_bodies(body: &Value) -> Result<bool, TestCaseError> {
    let mut accepted = false;
    match admin::parse_subscription(body) {
        Ok(_) => accepted = true,
        Err(e) => client_error(&e)?,
    }
    let name = PlanName::parse("fuzz").unwrap();
    match admin::parse_plan(&name, body) {
        Ok(plan) => {
            prop_assert_eq!(plan.name, name);
            accepted = true;
        }
        Err(e) => client_error(&e)?,
    }
    match admin::parse_price_versions(body) {
        Ok(versions) => {
            prop_assert!((1..=admin::MAX_PRICE_VERSIONS).contains(&versions.len()));
            // What is accepted goes on to the catalog: that must not panic either.
            let _ = pricing::Catalog::from_versions(versions);
            accepted = true;
        }
        Err(e) => client_error(&e)?,
    }
    Ok(accepted)
}

fn provider_usage(value: &Value) -> Result<bool, TestCaseError> {
    let parsed = normalise::parse_usage(value);
    if let Ok(c) = &parsed {
        counts_in_bounds(c)?;
    }
    if let Value::Object(map) = value {
        if let Ok(c) = normalise::event_counts(map) {
            counts_in_bounds(&c.counts)?;
        }
    }
    Ok(parsed.is_ok())
}

/// Imports, builds the catalog, and prices `counts` at every imported version: a cost is
/// never negative and an overflow is an error value.
/// `true` if at least one entry was imported.
fn litellm_text(text: &str, counts: &UsageCounts) -> Result<bool, TestCaseError> {
    let Ok((versions, summary)) = litellm::import(text, now()) else {
        return Ok(false);
    };
    let imported = !versions.is_empty();
    prop_assert_eq!(
        summary.imported + summary.aliases + summary.skipped_total(),
        summary.entries
    );
    for v in &versions {
        prop_assert!(!v.prices.has_negative(), "{v:?}");
        if let Ok(c) = pricing::cost(&v.prices, counts) {
            prop_assert!(!c.is_sign_negative() || c.is_zero(), "{c} for {v:?}");
        }
    }
    let _ = pricing::Catalog::from_versions(versions);
    Ok(imported)
}

#[test]
fn fuzz_check_body_from_arbitrary_json() {
    fuzz(
        "check/json",
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fuzz/regressions/check_json.txt"
        ),
        gen::json,
        |v| check_body(&v),
    );
}

#[test]
fn fuzz_check_body_structure_aware() {
    fuzz(
        "check/structured",
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fuzz/regressions/check_structured.txt"
        ),
        gen::check_body,
        |v| check_body(&v),
    );
}

#[test]
fn fuzz_usage_body_from_arbitrary_json() {
    fuzz(
        "usage/json",
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fuzz/regressions/usage_json.txt"
        ),
        gen::json,
        |v| usage_body(&v),
    );
}

#[test]
fn fuzz_usage_body_structure_aware() {
    fuzz(
        "usage/structured",
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fuzz/regressions/usage_structured.txt"
        ),
        gen::usage_body,
        |v| usage_body(&v),
    );
}

#[test]
fn fuzz_request_parsers_from_mutated_bytes() {
    fuzz(
        "bodies/bytes",
        concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/regressions/bytes.txt"),
        gen::mutated_bytes,
        |bytes| {
            // Bytes that are not JSON are refused by the extractor before any parser.
            let Ok(v) = serde_json::from_slice::<Value>(&bytes) else {
                return Ok(false);
            };
            let check = check_body(&v)?;
            let usage = usage_body(&v)?;
            let admin = admin_bodies(&v)?;
            let usage_object = provider_usage(&v)?;
            Ok(check || usage || admin || usage_object)
        },
    );
}

#[test]
fn fuzz_admin_bodies_from_arbitrary_json() {
    fuzz(
        "admin/json",
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fuzz/regressions/admin_json.txt"
        ),
        gen::json,
        |v| admin_bodies(&v),
    );
}

#[test]
fn fuzz_admin_bodies_structure_aware() {
    fuzz(
        "admin/structured",
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fuzz/regressions/admin_structured.txt"
        ),
        gen::admin_body,
        |v| admin_bodies(&v),
    );
}

#[test]
fn fuzz_provider_usage_objects() {
    fuzz(
        "usage-object/structured",
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fuzz/regressions/usage_object.txt"
        ),
        || prop_oneof![gen::usage_object(), gen::json()],
        |v| provider_usage(&v),
    );
}

#[test]
fn fuzz_litellm_import_structure_aware() {
    fuzz(
        "litellm/structured",
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fuzz/regressions/litellm_structured.txt"
        ),
        || (gen::litellm_text(), gen::usage_counts()),
        |(text, counts)| litellm_text(&text, &counts),
    );
}

#[test]
fn fuzz_litellm_import_from_mutated_text() {
    fuzz(
        "litellm/bytes",
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fuzz/regressions/litellm_bytes.txt"
        ),
        || (gen::mutated_litellm_text(), gen::usage_counts()),
        |(text, counts)| litellm_text(&text, &counts),
    );
}
