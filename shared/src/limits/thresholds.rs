//! Which alert thresholds usage has reached, and which a change of usage crosses.
//!
//! A threshold `t` fires when usage *reaches* `t %` of the limit (`>=`): it is crossed by
//! a change from `before` to `after` when `before < t% of limit <= after`. The level is
//! computed exactly (`limit * t / 100` in `Decimal`), so 80 % of 5 calls is 4 calls and
//! 90 % of 5 calls is 4.5 calls (crossed by the 5th). A limit of 0 fires nothing: it
//! means "none allowed", not a percentage; the check denies such calls instead.

use rust_decimal::Decimal;

/// The usage level at which threshold `t` (a percentage) of `limit` is reached, or
/// `None` when it does not fit in a `Decimal`.
pub fn threshold_level(limit: Decimal, threshold: u8) -> Option<Decimal> {
    let t = Decimal::from(threshold);
    let hundred = Decimal::ONE_HUNDRED;
    // Multiply first (exact for small scales); divide first only when that overflows.
    limit
        .checked_mul(t)
        .and_then(|x| x.checked_div(hundred))
        .or_else(|| limit.checked_div(hundred).and_then(|x| x.checked_mul(t)))
}

/// Whether `used` has reached threshold `t` % of `limit` (`used >= limit × t / 100`,
/// exact, never overflowing). A limit of 0 or below is never reached: it means "none
/// allowed", not a percentage.
pub fn reached(used: Decimal, limit: Decimal, threshold: u8) -> bool {
    limit > Decimal::ZERO && threshold_level(limit, threshold).is_some_and(|level| used >= level)
}

/// The thresholds (ascending, without repeats) that usage crosses going from `before`
/// to `after`. Several at once when one event jumps over them; none when usage does not
/// grow, when it was already past them, or when `limit <= 0`.
pub fn crossed_thresholds(
    thresholds: &[u8],
    limit: Decimal,
    before: Decimal,
    after: Decimal,
) -> Vec<u8> {
    if limit <= Decimal::ZERO {
        return Vec::new();
    }
    let mut crossed: Vec<u8> = thresholds
        .iter()
        .copied()
        .filter(|&t| {
            threshold_level(limit, t).is_some_and(|level| before < level && level <= after)
        })
        .collect();
    crossed.sort_unstable();
    crossed.dedup();
    crossed
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rust_decimal_macros::dec;

    use super::*;

    const DEFAULT: [u8; 3] = [80, 90, 100];

    #[test]
    fn threshold_crossings_table() {
        let cases: [(&str, Decimal, Decimal, Decimal, &[u8]); 12] = [
            (
                "below the first threshold",
                dec!(100),
                dec!(0),
                dec!(79),
                &[],
            ),
            (
                "reaching exactly 80 % fires",
                dec!(100),
                dec!(79),
                dec!(80),
                &[80],
            ),
            (
                "already at 80 % does not fire again",
                dec!(100),
                dec!(80),
                dec!(85),
                &[],
            ),
            (
                "jump over several thresholds at once",
                dec!(100),
                dec!(10),
                dec!(100),
                &[80, 90, 100],
            ),
            (
                "jump past every threshold",
                dec!(100),
                dec!(79.99),
                dec!(250),
                &[80, 90, 100],
            ),
            (
                "two of three",
                dec!(1000),
                dec!(850),
                dec!(1000),
                &[90, 100],
            ),
            (
                "usage that does not grow fires nothing",
                dec!(100),
                dec!(95),
                dec!(95),
                &[],
            ),
            (
                "fractional level: 90 % of 5 is 4.5",
                dec!(5),
                dec!(4),
                dec!(5),
                &[90, 100],
            ),
            (
                "fractional level not yet reached",
                dec!(5),
                dec!(3),
                dec!(4),
                &[80],
            ),
            ("money limits", dec!(2), dec!(1.5999), dec!(1.6), &[80]),
            ("zero limit fires nothing", dec!(0), dec!(0), dec!(10), &[]),
            (
                "negative limit fires nothing",
                dec!(-1),
                dec!(-5),
                dec!(10),
                &[],
            ),
        ];
        for (name, limit, before, after, expected) in cases {
            assert_eq!(
                crossed_thresholds(&DEFAULT, limit, before, after),
                expected,
                "{name}"
            );
        }
    }

    #[test]
    fn custom_thresholds_come_back_sorted_and_unique() {
        assert_eq!(
            crossed_thresholds(&[100, 50, 50, 75], dec!(4), dec!(0), dec!(4)),
            vec![50, 75, 100]
        );
        assert_eq!(
            crossed_thresholds(&[], dec!(4), dec!(0), dec!(4)),
            Vec::<u8>::new()
        );
    }

    #[test]
    fn huge_limits_do_not_panic() {
        assert_eq!(
            crossed_thresholds(&DEFAULT, Decimal::MAX, dec!(0), Decimal::MAX),
            vec![80, 90, 100]
        );
    }

    proptest! {
        /// Splitting a change into two steps fires the same thresholds, each exactly once.
        #[test]
        fn crossings_compose(limit in 1u64..10_000, a in 0u64..20_000, b in 0u64..20_000, c in 0u64..20_000) {
            let mut steps = [a, b, c];
            steps.sort_unstable();
            let [a, b, c] = steps.map(Decimal::from);
            let limit = Decimal::from(limit);
            let mut split = crossed_thresholds(&DEFAULT, limit, a, b);
            split.extend(crossed_thresholds(&DEFAULT, limit, b, c));
            prop_assert_eq!(split, crossed_thresholds(&DEFAULT, limit, a, c));
        }
    }
}
