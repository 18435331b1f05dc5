//! The byte bound of an inline reservation (issue 18, SPEC §12: ≤ 4 KB per item for a
//! subscriber with 10 providers and 8 open reservations). A reservation over budgets
//! keeps its budget holds in its map (`b`: one counter key, window end and held tally
//! each, about 65–100 bytes with short ids, up to ≈ 450 with 128-character user, org and
//! team ids), so 8 of them inline could pass the bound. A reservation whose map
//! (with its credit, on prepaid plans) would pass [`MAX_INLINE_MAP_BYTES`] therefore
//! spills to its own item (`RSV#<id>`) at once, in the same one `TransactWriteItems`
//! that a reservation over budgets writes anyway; the state item then holds at most 8
//! maps of that size beside its counters. Measured by `tests/emulator/state_size.rs`.

use super::item_size::value_size;
use super::items;
use crate::domain::{OrgId, Reservation};

/// The most bytes (DynamoDB's item size rules) of one inline reservation's map value:
/// 8 of them with their names (≈ 35 bytes each) and a state item of 10 providers'
/// counters (≈ 1.1 KB) stay within 4 KB. A plan-only reservation's map is ≈ 80 bytes;
/// one with three budget holds of short ids ≈ 260.
pub(super) const MAX_INLINE_MAP_BYTES: usize = 320;

/// Whether reservation `r` (with credit held in wallet of `credit_org`, or the user's when
/// `credit` is set) is too large to be kept inline: it spills at once.
pub(super) fn spills(r: &Reservation, credit: bool, credit_org: Option<&OrgId>) -> bool {
    let mut size = value_size(&items::reservation_map(r));
    if credit {
        // `cr`: the held credit (a decimal of up to ~28 digits).
        size += super::prepaid::INLINE_CREDIT.len() + 16;
    }
    if let Some(o) = credit_org {
        size += super::org_wallets::INLINE_CREDIT_ORG.len() + o.as_str().len() + 1;
    }
    size > MAX_INLINE_MAP_BYTES
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{BudgetHold, TenantId, UserId};
    use crate::testing::{at, reservation};
    use crate::usage::Tally;

    fn with_holds(key_len: usize, n: usize) -> Reservation {
        let t = TenantId::parse("t").unwrap();
        let mut r = reservation(
            &t,
            &UserId::parse("ann").unwrap(),
            1500,
            "0.0123",
            at(2025, 3, 10, 13),
        );
        r.budget_holds = (0..n)
            .map(|i| BudgetHold {
                counter: format!("{i}{}", "k".repeat(key_len)),
                window_end: at(2026, 4, 1, 0),
                held: Tally {
                    calls: 1,
                    tokens: 1500,
                    cost_usd: "0.0123".parse().unwrap(),
                },
            })
            .collect();
        r
    }

    #[test]
    fn plan_only_and_short_budget_holds_stay_inline_long_ones_spill() {
        assert!(!spills(&with_holds(0, 0), false, None));
        assert!(!spills(&with_holds(45, 3), true, None));
        assert!(spills(&with_holds(300, 3), false, None));
        assert!(spills(&with_holds(45, 6), false, None));
    }
}
