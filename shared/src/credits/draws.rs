//! The order cost is drawn from grants in, and [`draw`]: which grants pay one cost.
//!
//! Order: priority ascending; then soonest `expires_at`, grants without expiry
//! last; then oldest `created_at`; then `grant_id` (so the order is total and the same on
//! every node). Only grants that count at the instant of the draw take part: voided grants
//! and grants with `expires_at <= at` are skipped, and so are grants with nothing left.
//!
//! A draw takes from each grant in turn the lesser of what is left of the cost and the
//! grant's `remaining_usd`, so every grant it touches but the last is drained to exactly
//! 0 and no grant goes below 0. What no grant covers is the [`Draws::shortfall_usd`],
//! which the wallet carries as `overdrawn_usd` (see the [module docs](super)).

use std::cmp::Ordering;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{exact_add, exact_sub, exact_sum, CreditError, Grant};
use crate::domain::GrantId;

/// Compares two grants in draw order (first drawn first).
pub fn draw_cmp(a: &Grant, b: &Grant) -> Ordering {
    let expiry = match (a.expires_at, b.expires_at) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    };
    a.priority
        .cmp(&b.priority)
        .then(expiry)
        .then(a.created_at.cmp(&b.created_at))
        .then_with(|| a.id.cmp(&b.id))
}

/// The grants that count at `at`, in draw order (including those with nothing left).
pub fn draw_order(grants: &[Grant], at: DateTime<Utc>) -> Vec<&Grant> {
    let mut order: Vec<&Grant> = grants.iter().filter(|g| g.counts(at)).collect();
    order.sort_by(|a, b| draw_cmp(a, b));
    order
}

/// What one cost took from one grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Draw {
    pub grant_id: GrantId,
    /// `> 0`, at most the grant's remaining before the draw.
    #[serde(with = "rust_decimal::serde::str")]
    pub amount_usd: Decimal,
}

/// Which grants pay one cost: `Σ draws[i].amount_usd + shortfall_usd = cost`, exactly.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Draws {
    /// In draw order; each grant at most once; no zero draws.
    pub draws: Vec<Draw>,
    /// What the counting grants could not cover (`>= 0`): added to the wallet's
    /// `overdrawn_usd`.
    #[serde(with = "rust_decimal::serde::str")]
    pub shortfall_usd: Decimal,
}

impl Draws {
    /// What the grants paid: `Σ draws` (checked: draws read back from storage are not
    /// trusted to fit).
    pub fn drawn_usd(&self) -> Result<Decimal, CreditError> {
        exact_sum(self.draws.iter().map(|d| d.amount_usd))
    }

    /// The whole cost: `Σ draws + shortfall`.
    pub fn total_usd(&self) -> Result<Decimal, CreditError> {
        exact_add(self.drawn_usd()?, self.shortfall_usd)
    }

    /// Takes every draw off its grant's `remaining_usd`, exactly. All or nothing: when a
    /// draw names a grant not in `grants` ([`CreditError::UnknownGrant`]), names one twice,
    /// is not positive, or takes more than the grant's remaining ([`CreditError::Overflow`]:
    /// these draws were not made from these grants), no grant is changed. The shortfall is
    /// the caller's to add to the wallet's overdraft.
    pub fn apply(&self, grants: &mut [Grant]) -> Result<(), CreditError> {
        let mut updates: Vec<(usize, Decimal)> = Vec::with_capacity(self.draws.len());
        for d in &self.draws {
            let i = grants
                .iter()
                .position(|g| g.id == d.grant_id)
                .ok_or_else(|| CreditError::UnknownGrant(d.grant_id.to_string()))?;
            let g = &grants[i];
            if d.amount_usd <= Decimal::ZERO
                || d.amount_usd > g.remaining_usd
                || updates.iter().any(|(j, _)| *j == i)
            {
                return Err(CreditError::Overflow);
            }
            updates.push((i, exact_sub(g.remaining_usd, d.amount_usd)?));
        }
        for (i, remaining) in updates {
            grants[i].remaining_usd = remaining;
        }
        Ok(())
    }
}

/// Which of `grants` pay `cost` at `at`, in draw order. A cost of 0 draws nothing; a
/// negative cost is refused ([`CreditError::NegativeAmount`]), and so is a cost whose
/// remainder cannot be held exactly ([`CreditError::Overflow`]: more than 28 significant
/// digits). Nothing is changed: apply
/// the result with [`Draws::apply`] (or use [`super::Wallet::spend`]).
pub fn draw(grants: &[Grant], cost: Decimal, at: DateTime<Utc>) -> Result<Draws, CreditError> {
    if cost < Decimal::ZERO {
        return Err(CreditError::NegativeAmount { field: "cost_usd" });
    }
    let mut left = cost;
    let mut draws = Vec::new();
    for g in draw_order(grants, at) {
        if left <= Decimal::ZERO {
            break;
        }
        if g.remaining_usd <= Decimal::ZERO {
            continue;
        }
        let take = left.min(g.remaining_usd);
        left = exact_sub(left, take)?;
        // Refuse here, not in `apply`, a draw that would leave an inexact remainder.
        exact_sub(g.remaining_usd, take)?;
        draws.push(Draw {
            grant_id: g.id.clone(),
            amount_usd: take,
        });
    }
    Ok(Draws {
        draws,
        shortfall_usd: left,
    })
}
