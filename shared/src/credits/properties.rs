//! Property tests: exact draws, balances, the draw order, idempotent grants, alarms once
//! per crossing, reservations that never admit more than is available, depletion dates.

use chrono::{DateTime, Duration, Utc};
use proptest::prelude::*;
use rust_decimal::Decimal;

use super::test_support::*;
use super::*;

/// A grant amount: up to $100,000 with up to 6 decimal places (what a PUT accepts).
fn amount() -> impl Strategy<Value = Decimal> {
    (1i64..=100_000_000_000, 0u32..=6).prop_map(|(m, s)| Decimal::new(m, s))
}

/// A usage cost: up to $50 with up to 10 decimal places, sometimes 0.
fn cost() -> impl Strategy<Value = Decimal> {
    prop_oneof![
        1 => Just(Decimal::ZERO),
        9 => (0i64..=500_000_000_000, 0u32..=10).prop_map(|(m, s)| Decimal::new(m, s)),
    ]
}

/// Random grants: priorities from a small range (to force ties), some expiring within
/// the run, some voided, creation times spread over the first hours.
fn grants() -> impl Strategy<Value = Vec<Grant>> {
    proptest::collection::vec(
        (
            amount(),
            -2i32..=2,
            proptest::option::of(1i64..=60),
            0i64..=5,
            proptest::option::of(0i64..=40),
            prop_oneof![
                Just(GrantKind::Purchase),
                Just(GrantKind::Promo),
                Just(GrantKind::Refund),
                Just(GrantKind::Adjustment)
            ],
        ),
        0..8,
    )
    .prop_map(|specs| {
        specs
            .into_iter()
            .enumerate()
            .map(|(i, (amount, priority, expires, created, voided, kind))| {
                let mut g = grant(&format!("g{i}"), "1");
                g.amount_usd = amount;
                g.remaining_usd = amount;
                g.priority = priority;
                g.kind = kind;
                g.expires_at = expires.map(h);
                g.created_at = h(created);
                g.voided_at = voided.map(h);
                g
            })
            .collect()
    })
}

/// Costs at non-decreasing hours from 0 to at most 64.
fn spends() -> impl Strategy<Value = Vec<(Decimal, DateTime<Utc>)>> {
    proptest::collection::vec((cost(), 0i64..=2), 0..40).prop_map(|steps| {
        let mut hour = 0;
        steps
            .into_iter()
            .map(|(c, step)| {
                hour += step;
                (c, h(hour))
            })
            .collect()
    })
}

fn sum(xs: impl IntoIterator<Item = Decimal>) -> Decimal {
    xs.into_iter().sum()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Σ draws + Σ shortfalls = Σ costs exactly; every grant's remaining fell by exactly
    /// what was drawn from it; no grant below zero; draws only from grants that counted
    /// at the instant, in draw order, all but the last one drained.
    #[test]
    fn draws_are_exact_ordered_and_never_take_a_grant_below_zero(
        initial in grants(),
        spends in spends(),
    ) {
        let mut w = Wallet { grants: initial.clone(), ..Wallet::default() };
        let mut drawn_from = vec![Decimal::ZERO; initial.len()];
        let mut all_draws = Decimal::ZERO;
        let mut all_short = Decimal::ZERO;
        for (c, at) in &spends {
            let before = w.grants.clone();
            let s = w.spend(*c, *at).unwrap();
            prop_assert_eq!(s.draws.total_usd().unwrap(), *c);
            // The order: drawn grants are a prefix of the grants with something left, in
            // draw order; every one but the last drawn is drained; a shortfall means all
            // of them are.
            let order: Vec<&Grant> = draw_order(&before, *at)
                .into_iter()
                .filter(|g| g.remaining_usd > Decimal::ZERO)
                .collect();
            prop_assert!(s.draws.draws.len() <= order.len());
            for (k, x) in s.draws.draws.iter().enumerate() {
                prop_assert_eq!(&x.grant_id, &order[k].id);
                prop_assert!(order[k].counts(*at));
                prop_assert!(x.amount_usd > Decimal::ZERO);
                if k + 1 < s.draws.draws.len() || s.draws.shortfall_usd > Decimal::ZERO {
                    prop_assert_eq!(x.amount_usd, order[k].remaining_usd);
                }
            }
            if s.draws.shortfall_usd > Decimal::ZERO {
                prop_assert_eq!(s.draws.draws.len(), order.len());
            }
            for x in &s.draws.draws {
                let i = initial.iter().position(|g| g.id == x.grant_id).unwrap();
                drawn_from[i] += x.amount_usd;
            }
            all_draws += s.draws.drawn_usd().unwrap();
            all_short += s.draws.shortfall_usd;
            prop_assert!(w.grants.iter().all(|g| g.remaining_usd >= Decimal::ZERO));
        }
        prop_assert_eq!(all_draws + all_short, sum(spends.iter().map(|(c, _)| *c)));
        prop_assert_eq!(w.overdrawn_usd, all_short);
        for (i, g) in w.grants.iter().enumerate() {
            prop_assert_eq!(g.remaining_usd, initial[i].remaining_usd - drawn_from[i]);
        }
    }

    /// Without expiry or voids, the balance is the initial balance minus every cost,
    /// exactly, whether or not it went below zero.
    #[test]
    fn the_balance_is_the_initial_balance_minus_the_costs(
        initial in grants(),
        spends in spends(),
    ) {
        let initial: Vec<Grant> = initial
            .into_iter()
            .map(|mut g| {
                g.expires_at = g.expires_at.map(|e| e + Duration::days(365));
                g.voided_at = None;
                g
            })
            .collect();
        let mut w = Wallet { grants: initial, ..Wallet::default() };
        let start = w.view(h(0)).unwrap().balance_usd;
        let mut spent = Decimal::ZERO;
        for (c, at) in &spends {
            w.spend(*c, *at).unwrap();
            spent += *c;
            let v = w.view(*at).unwrap();
            prop_assert_eq!(v.balance_usd, start - spent);
            prop_assert_eq!(v.available_usd, v.balance_usd);
            prop_assert_eq!(v.grants_usd - v.overdrawn_usd, v.balance_usd);
        }
    }

    /// A grant request and the grant it created are the same body, whatever was drawn
    /// since; PUT again is `Unchanged`; any other field is a conflict.
    #[test]
    fn a_grant_request_is_idempotent_by_its_body(
        a in amount(),
        expires in proptest::option::of(1i64..=1000),
        priority in 0..=MAX_PRIORITY,
        note in proptest::option::of("[ -~]{0,40}"),
        drawn in 0u32..=100,
        change in 0usize..5,
    ) {
        let req = GrantRequest {
            amount_usd: a,
            expires_at: expires.map(h),
            priority,
            kind: GrantKind::Refund,
            note,
        };
        let PutGrant::Created(mut g) = put_grant(None, gid("g"), req.clone(), h(0)).unwrap() else {
            panic!("a new grant");
        };
        prop_assert!(req.same_as(&g));
        g.remaining_usd = a * Decimal::from(100 - drawn) / Decimal::ONE_HUNDRED;
        prop_assert_eq!(
            put_grant(Some(&g), gid("g"), req.clone(), h(2000)).unwrap(),
            PutGrant::Unchanged(g.clone())
        );
        let mut other = req.clone();
        match change {
            0 => other.amount_usd += Decimal::new(1, 6),
            1 => other.expires_at = Some(h(expires.unwrap_or(0) + 1)),
            2 => other.priority = if priority == MAX_PRIORITY { priority - 1 } else { priority + 1 },
            3 => other.kind = GrantKind::Promo,
            _ => other.note = Some(format!("{}!", other.note.clone().unwrap_or_default())),
        }
        prop_assert!(!other.same_as(&g));
        prop_assert_eq!(
            put_grant(Some(&g), gid("g"), other, h(1)).unwrap_err().code(),
            "grant_conflict"
        );
    }

    /// The alarm state machine fires exactly what `crossings` fires between consecutive
    /// levels; and each alarm fires at most once between two rises past its level.
    #[test]
    fn alarms_fire_once_per_crossing(
        start in -20i64..=20,
        levels in proptest::collection::vec(-20i64..=20, 0..60),
        low in proptest::option::of(1i64..=10),
    ) {
        let low = low.map(Decimal::from);
        let start = Decimal::from(start);
        let mut alarms = WalletAlarms::initial(start, low);
        let mut before = start;
        // Whether each alarm may fire: it rose to its level since it last fired.
        let mut low_may = low.is_some_and(|l| start >= l);
        let mut depleted_may = start > Decimal::ZERO;
        for level in levels {
            let after = Decimal::from(level);
            let events = alarms.observe(after, low);
            prop_assert_eq!(&events, &crossings(before, after, low));
            for e in &events {
                match e {
                    WalletEvent::LowBalance { .. } => {
                        prop_assert!(low_may);
                        low_may = false;
                    }
                    WalletEvent::Depleted { .. } => {
                        prop_assert!(depleted_may);
                        depleted_may = false;
                    }
                }
            }
            low_may |= low.is_some_and(|l| after >= l);
            depleted_may |= after > Decimal::ZERO;
            before = after;
        }
    }

    /// Reserve-and-settle flows on a $10 wallet: each admitted estimate fitted what was
    /// available when it was admitted; at the end nothing is held and the balance is
    /// $10 minus the exact sum of the actual costs.
    #[test]
    fn reservations_never_admit_more_than_is_available(
        flows in proptest::collection::vec((cost(), cost(), any::<bool>()), 0..60),
    ) {
        let mut w = Wallet::default();
        w.add_grant(grant("purchase", "10"), h(0)).unwrap();
        let mut open: Vec<(Decimal, Decimal)> = Vec::new();
        let mut recorded = Decimal::ZERO;
        for (estimate, actual, settle_one) in flows {
            if settle_one && !open.is_empty() {
                let (held, actual) = open.remove(0);
                w.settle(held, actual, h(1)).unwrap();
                recorded += actual;
            }
            let available = w.available(h(1)).unwrap();
            match w.admit(Some(estimate), h(1)).unwrap() {
                Admit::Held { held_usd, .. } => {
                    prop_assert!(held_usd <= available && available > Decimal::ZERO);
                    open.push((held_usd, actual));
                }
                Admit::Denied { available_usd } => {
                    prop_assert_eq!(available_usd, available);
                    prop_assert!(estimate > available || available <= Decimal::ZERO);
                }
            }
            prop_assert_eq!(w.held_usd, sum(open.iter().map(|(held, _)| *held)));
        }
        for (held, actual) in open {
            w.settle(held, actual, h(2)).unwrap();
            recorded += actual;
        }
        let v = w.view(h(2)).unwrap();
        prop_assert_eq!(v.held_usd, Decimal::ZERO);
        prop_assert_eq!(v.balance_usd, Decimal::from(10) - recorded);
        prop_assert!(w.grants[0].remaining_usd >= Decimal::ZERO);
    }

    /// The projected date is the last whole second by which the available credit is
    /// burned at the week's rate: `s × burn <= available × 1 week < (s + 1) × burn`; no
    /// date only when that second is past the last date chrono can hold. (Amounts are
    /// bounded so that the test's own products are exact `Decimal`s.)
    #[test]
    fn the_projected_depletion_date_is_exact_to_the_second(
        a in (1i64..=1_000_000_000_000_000, 0u32..=6).prop_map(|(m, s)| Decimal::new(m, s)),
        b in (1i64..=1_000_000_000_000_000, 0u32..=10).prop_map(|(m, s)| Decimal::new(m, s)),
    ) {
        let now = h(0);
        let n = a * Decimal::from(7 * 24 * 3600);
        match projected_depletion(a, b, now) {
            Some(at) => {
                let s = Decimal::from((at - now).num_seconds());
                prop_assert!(s * b <= n);
                prop_assert!((s + Decimal::ONE) * b > n);
            }
            None => {
                let last = (DateTime::<Utc>::MAX_UTC - now).num_seconds();
                prop_assert!((Decimal::from(last) + Decimal::ONE) * b <= n);
            }
        }
    }
}
