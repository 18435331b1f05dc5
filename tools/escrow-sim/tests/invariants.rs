//! The three claims of docs/dynamodb.md ("Hot scopes and the per-partition ceiling"), run
//! through the simulation: never a cent over the limit, throughput rising with the shard
//! count, and how close to the limit a scope gets before a denial. Everything asserted is on
//! the simulated clock, which is deterministic for a seed; no wall-clock time is asserted.

use escrow_sim::sim::{run, Config, Pick, Report};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

const SHARDS: [usize; 5] = [1, 2, 4, 8, 16];

/// 32 clients against L = $20, amounts up to $0.05, grants up to $0.50: about 800
/// admissions per run, small enough for many seeds in a debug build.
fn small(shards: usize, seed: u64) -> Config {
    Config {
        clients: 32,
        users: 32,
        limit: dec!(20),
        chunk: dec!(0.5),
        ..Config::standard(shards, seed)
    }
}

fn assert_never_over(r: &Report, what: &str) {
    assert_eq!(r.invariant_violations, 0, "{what}: {:?}", r.first_violation);
    assert!(
        r.within_limit,
        "{what}: admitted {} of {}",
        r.admitted_amount, r.limit
    );
    assert!(r.admitted_amount <= r.limit, "{what}");
    assert_eq!(r.used, r.admitted_amount, "{what}");
    assert!(
        r.exhausted,
        "{what}: the budget did not run out by {} s",
        r.end_s
    );
    assert!(r.denials > 0, "{what}: never denied");
}

#[test]
fn never_admits_more_than_the_limit_for_many_seeds() {
    for seed in 0..40 {
        for shards in SHARDS {
            let r = run(&small(shards, seed)).unwrap();
            assert_never_over(&r, &format!("seed {seed}, {shards} shards"));
        }
    }
}

#[test]
fn never_over_the_limit_with_any_policy_or_unit() {
    type Variant = Box<dyn Fn(Config) -> Config>;
    let variants: Vec<(&str, Variant)> = vec![
        (
            "fixed chunk, no probe, no drain",
            Box::new(|c| Config {
                adaptive: false,
                probe: 0,
                drain: false,
                ..c
            }),
        ),
        (
            "probe every sibling",
            Box::new(|c| Config { probe: 99, ..c }),
        ),
        (
            "users pinned to shards by hash",
            Box::new(|c| Config {
                pick: Pick::Hash,
                ..c
            }),
        ),
        ("one heavy user", Box::new(|c| Config { users: 1, ..c })),
        (
            "only events (transactions holding the shard)",
            Box::new(|c| Config {
                event_pct: 100,
                ..c
            }),
        ),
        (
            "calls: integers, L = 500, up to 3 a request",
            Box::new(|c| Config {
                scale: 0,
                limit: dec!(500),
                max_amount: dec!(3),
                chunk: dec!(10),
                ..c
            }),
        ),
        (
            "tiny capacity: throttling everywhere",
            Box::new(|mut c: Config| {
                c.capacity.wcu_per_s = 50;
                c.capacity.rcu_per_s = 150;
                c
            }),
        ),
    ];
    for (name, variant) in &variants {
        for seed in 0..8 {
            for shards in SHARDS {
                let r = run(&variant(small(shards, seed))).unwrap();
                assert_never_over(&r, &format!("{name}: seed {seed}, {shards} shards"));
            }
        }
    }
}

#[test]
fn admitted_throughput_rises_with_the_shard_count() {
    // The standard load (256 clients, 1,000 WCU/s per partition) with a smaller limit.
    let reports: Vec<Report> = SHARDS
        .iter()
        .map(|&n| {
            run(&Config {
                limit: dec!(300),
                ..Config::standard(n, 1)
            })
            .unwrap()
        })
        .collect();
    for r in &reports {
        assert_never_over(r, &format!("{} shards", r.shards));
    }
    // One item: (1 + 2) / 2 = 1.5 WCU per admission at 1,000 WCU/s ⇒ at most ~667/s.
    assert!(reports[0].ops_per_s <= 700.0, "{}", reports[0].ops_per_s);
    for pair in reports.windows(2) {
        assert!(
            pair[1].ops_per_s >= 1.5 * pair[0].ops_per_s,
            "{} shards: {} ops/s, {} shards: {} ops/s",
            pair[0].shards,
            pair[0].ops_per_s,
            pair[1].shards,
            pair[1].ops_per_s
        );
    }
    // Every shard in its own partition, each at most 1,000 WCU/s.
    let last = &reports[4];
    assert!(last.ops_per_s <= 16.0 * 1000.0, "{}", last.ops_per_s);
}

#[test]
fn a_single_item_denies_within_one_request_of_the_limit() {
    for seed in 0..20 {
        let r = run(&small(1, seed)).unwrap();
        let left = r.left_at_first_denial.expect("denied");
        assert!(
            left < dec!(0.05),
            "seed {seed}: {left} left at the first denial"
        );
    }
}

#[test]
fn probing_every_sibling_denies_within_one_request_of_the_limit() {
    for seed in 0..10 {
        for shards in SHARDS {
            let r = run(&Config {
                probe: shards,
                ..small(shards, seed)
            })
            .unwrap();
            let left = r.left_at_first_denial.expect("denied");
            assert!(
                left < dec!(0.05),
                "seed {seed}, {shards} shards: {left} left at the first denial"
            );
        }
    }
}

#[test]
fn stranded_allowance_at_the_first_denial_is_bounded_by_the_unprobed_shards() {
    // Fixed grants of `chunk`: a shard holds less than one grant, and a denial saw the pool,
    // the home shard and K siblings hold less than the request, so what is left is below
    // max amount + (N − 1 − K) · chunk.
    for seed in 0..10 {
        for shards in SHARDS {
            for probe in [0, 1, 2] {
                let cfg = Config {
                    adaptive: false,
                    probe,
                    ..small(shards, seed)
                };
                let unprobed = shards.saturating_sub(1 + probe);
                let bound = cfg.max_amount + cfg.chunk * Decimal::from(unprobed);
                let r = run(&cfg).unwrap();
                let left = r.left_at_first_denial.expect("denied");
                assert!(
                    left < bound,
                    "seed {seed}, {shards} shards, probe {probe}: {left} left, bound {bound}"
                );
            }
        }
    }
}

#[test]
fn after_the_drain_the_scope_is_spent_to_within_one_request() {
    for seed in 0..20 {
        for shards in SHARDS {
            let r = run(&Config {
                adaptive: false,
                probe: 0,
                ..small(shards, seed)
            })
            .unwrap();
            assert!(
                r.final_left < dec!(0.05),
                "seed {seed}, {shards} shards: {} left at the end",
                r.final_left
            );
            if shards > 1 {
                assert!(r.drains >= 1, "seed {seed}, {shards} shards: no drain");
            }
        }
    }
}
