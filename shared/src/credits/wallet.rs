//! Balances, expiry, the prepaid check, the projected depletion date, and [`Wallet`]: one
//! wallet's whole state with its transitions.
//!
//! - `balance_usd = Σ remaining of the grants that count − overdrawn_usd` (negative when
//!   usage overran the wallet);
//! - `available_usd = balance_usd − held_usd` (open reservations hold credit);
//! - a grant stops counting at its `expires_at` exactly: every figure here is a function
//!   of the instant, so a check at or after the expiry sees it with no write; the
//!   aggregation records the expiry later ([`expired`]).

use chrono::{DateTime, TimeDelta, Utc};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::grants::check_amount;
use super::{
    draw, draw_cmp, exact_add, exact_sub, exact_sum, CreditError, Draws, Grant, WalletAlarms,
    WalletEvent,
};
use crate::domain::money::normalized;
use crate::domain::GrantId;
use crate::limits::Requirement;

/// The metric a prepaid check denied for want of credit reports.
pub const CREDITS_METRIC: &str = "credits_usd";

/// A wallet's figures at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct WalletBalance {
    /// Σ remaining of the grants that count.
    #[serde(serialize_with = "normalized")]
    pub grants_usd: Decimal,
    /// Usage recorded beyond the grants, not billed yet.
    #[serde(serialize_with = "normalized")]
    pub overdrawn_usd: Decimal,
    /// `grants_usd − overdrawn_usd`.
    #[serde(serialize_with = "normalized")]
    pub balance_usd: Decimal,
    /// Credit held by open reservations.
    #[serde(serialize_with = "normalized")]
    pub held_usd: Decimal,
    /// `balance_usd − held_usd`: what a check may still admit.
    #[serde(serialize_with = "normalized")]
    pub available_usd: Decimal,
}

/// The figures of a wallet with `grants`, `overdrawn` and `held` at `at`, exactly.
pub fn wallet_view(
    grants: &[Grant],
    overdrawn: Decimal,
    held: Decimal,
    at: DateTime<Utc>,
) -> Result<WalletBalance, CreditError> {
    let grants_usd = exact_sum(
        grants
            .iter()
            .filter(|g| g.counts(at))
            .map(|g| g.remaining_usd),
    )?;
    let balance_usd = exact_sub(grants_usd, overdrawn)?;
    let available_usd = exact_sub(balance_usd, held)?;
    Ok(WalletBalance {
        grants_usd,
        overdrawn_usd: overdrawn,
        balance_usd,
        held_usd: held,
        available_usd,
    })
}

/// The grants that have expired at `at` (`expires_at <= at`) and were not voided, soonest
/// expiry first; their `remaining_usd` is what stopped counting at `expires_at`, the
/// amount the aggregation records as expired (it keeps track of which it recorded).
pub fn expired(grants: &[Grant], at: DateTime<Utc>) -> Vec<&Grant> {
    let mut out: Vec<&Grant> = grants
        .iter()
        .filter(|g| g.voided_at.is_none() && g.is_expired(at))
        .collect();
    out.sort_by(|a, b| a.expires_at.cmp(&b.expires_at).then(draw_cmp(a, b)));
    out
}

/// The prepaid check as a [`Requirement`] on a cost limit equal to `available`: a wallet
/// acts like a `cost_usd` cap of its available credit with nothing used, so this is
/// [`crate::limits::requirement`] of `cost_usd` at that cap. The increment is the
/// estimate (0 without one); strict (`<`) without an estimate or when `available <= 0`.
/// Evaluate it as `allows(0, available)`. In terms of stored values (`available = balance −
/// held`), for a store that evaluates it atomically with the hold: `held < balance` and
/// `held + estimate <= balance` (`held + 0 < balance` without an estimate).
pub fn credit_requirement(available: Decimal, estimated_cost: Option<Decimal>) -> Requirement {
    Requirement {
        increment: estimated_cost.unwrap_or(Decimal::ZERO),
        strict: estimated_cost.is_none() || available <= Decimal::ZERO,
    }
}

/// Whether a prepaid wallet with `available` credit admits a call: with an estimate, when
/// it does not exceed `available` (and `available > 0`: a depleted wallet admits nothing,
/// not even a call estimated at $0, as a cost cap of 0 does); without one, when
/// `available > 0`. A negative estimate is never admitted (the check refuses it first).
/// Denied calls report metric [`CREDITS_METRIC`].
pub fn credit_allows(available: Decimal, estimated_cost: Option<Decimal>) -> bool {
    if estimated_cost.is_some_and(|e| e < Decimal::ZERO) {
        return false;
    }
    credit_requirement(available, estimated_cost).allows(Decimal::ZERO, available)
}

const WEEK_SECONDS: i64 = 7 * 24 * 3600;

/// When `available` credit runs out if spending continues at the last 7 days' `burn`:
/// `now + available × 7 days / burn`, rounded down to the second (the wallet is empty by
/// then, not after). `None` when nothing was burned (`burn <= 0`) or the date is beyond
/// what can be represented; `now` when nothing is available any more. Exact: the seconds
/// are the integer part of the exact quotient, not of a rounded one.
pub fn projected_depletion(
    available: Decimal,
    burn_last_7_days: Decimal,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    if burn_last_7_days <= Decimal::ZERO {
        return None;
    }
    if available <= Decimal::ZERO {
        return Some(now);
    }
    let seconds = floor_div(
        available.checked_mul(Decimal::from(WEEK_SECONDS))?,
        burn_last_7_days,
    )?;
    now.checked_add_signed(TimeDelta::try_seconds(seconds.to_i64()?)?)
}

/// `⌊n / d⌋` for `n >= 0`, `d > 0`, exactly: `Decimal` division rounds to 28 significant
/// digits, which can round a quotient just below an integer up to it; the candidate is
/// corrected until `q × d <= n < (q + 1) × d`.
fn floor_div(n: Decimal, d: Decimal) -> Option<Decimal> {
    let mut q = n.checked_div(d)?.floor();
    for _ in 0..4 {
        if q.checked_mul(d)? > n {
            q -= Decimal::ONE;
        } else if (q + Decimal::ONE).checked_mul(d)? <= n {
            q += Decimal::ONE;
        } else {
            return Some(q);
        }
    }
    None
}

/// Checks a wallet's `low_balance_usd` (`None`: no low-balance alarm): `> 0`, at most
/// 10^15, at most 6 decimal places.
pub fn validate_low_balance(low_balance_usd: Option<Decimal>) -> Result<(), CreditError> {
    match low_balance_usd {
        Some(low) => check_amount("low_balance_usd", low),
        None => Ok(()),
    }
}

/// One wallet's state: its grants, its overdraft, the credit held by open reservations,
/// its low-balance level and its alarms. Every transition takes the instant it happens at,
/// is all or nothing (on an error nothing changed), and returns the alarms it fires.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wallet {
    pub grants: Vec<Grant>,
    /// Usage recorded beyond the grants and not billed yet (`>= 0`).
    #[serde(with = "rust_decimal::serde::str")]
    pub overdrawn_usd: Decimal,
    /// Credit held by open reservations (`>= 0`).
    #[serde(with = "rust_decimal::serde::str")]
    pub held_usd: Decimal,
    #[serde(default, with = "rust_decimal::serde::str_option")]
    pub low_balance_usd: Option<Decimal>,
    pub alarms: WalletAlarms,
}

/// What recording one cost did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spent {
    pub draws: Draws,
    pub events: Vec<WalletEvent>,
}

/// The answer of [`Wallet::admit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admit {
    /// The estimate (0 without one) is now held.
    Held {
        held_usd: Decimal,
        events: Vec<WalletEvent>,
    },
    /// Not enough credit: nothing changed. Report metric [`CREDITS_METRIC`].
    Denied { available_usd: Decimal },
}

fn non_negative(field: &'static str, amount: Decimal) -> Result<(), CreditError> {
    if amount < Decimal::ZERO {
        return Err(CreditError::NegativeAmount { field });
    }
    Ok(())
}

impl Wallet {
    /// The wallet's figures at `at`.
    pub fn view(&self, at: DateTime<Utc>) -> Result<WalletBalance, CreditError> {
        wallet_view(&self.grants, self.overdrawn_usd, self.held_usd, at)
    }

    /// `available_usd` at `at`.
    pub fn available(&self, at: DateTime<Utc>) -> Result<Decimal, CreditError> {
        Ok(self.view(at)?.available_usd)
    }

    /// Runs `change` on a copy, observes the alarms at `at`, and commits only if both
    /// succeed.
    fn transition<T>(
        &mut self,
        at: DateTime<Utc>,
        change: impl FnOnce(&mut Wallet) -> Result<T, CreditError>,
    ) -> Result<(T, Vec<WalletEvent>), CreditError> {
        let mut next = self.clone();
        let out = change(&mut next)?;
        let available = next.available(at)?;
        let events = next.alarms.observe(available, next.low_balance_usd);
        *self = next;
        Ok((out, events))
    }

    /// Records usage of `cost` at `at`: draws it from the grants in order, and adds what
    /// they could not cover to the overdraft.
    pub fn spend(&mut self, cost: Decimal, at: DateTime<Utc>) -> Result<Spent, CreditError> {
        let (draws, events) = self.transition(at, |w| w.spend_inner(cost, at))?;
        Ok(Spent { draws, events })
    }

    fn spend_inner(&mut self, cost: Decimal, at: DateTime<Utc>) -> Result<Draws, CreditError> {
        let draws = draw(&self.grants, cost, at)?;
        draws.apply(&mut self.grants)?;
        self.overdrawn_usd = exact_add(self.overdrawn_usd, draws.shortfall_usd)?;
        Ok(draws)
    }

    /// A prepaid check with a reservation at `at`: when [`credit_allows`] the estimate,
    /// holds it (0 without one); otherwise changes nothing.
    pub fn admit(
        &mut self,
        estimated_cost: Option<Decimal>,
        at: DateTime<Utc>,
    ) -> Result<Admit, CreditError> {
        if let Some(e) = estimated_cost {
            non_negative("estimated_cost", e)?;
        }
        let available = self.available(at)?;
        if !credit_allows(available, estimated_cost) {
            return Ok(Admit::Denied {
                available_usd: available,
            });
        }
        let amount = estimated_cost.unwrap_or(Decimal::ZERO);
        let (_, events) = self.transition(at, |w| {
            w.held_usd = exact_add(w.held_usd, amount)?;
            Ok(())
        })?;
        Ok(Admit::Held {
            held_usd: amount,
            events,
        })
    }

    /// Releases `held` credit of a reservation that ends without usage (or expires).
    pub fn release(
        &mut self,
        held: Decimal,
        at: DateTime<Utc>,
    ) -> Result<Vec<WalletEvent>, CreditError> {
        Ok(self.transition(at, |w| w.release_inner(held))?.1)
    }

    fn release_inner(&mut self, held: Decimal) -> Result<(), CreditError> {
        non_negative("held_usd", held)?;
        if held > self.held_usd {
            return Err(CreditError::Overflow);
        }
        self.held_usd = exact_sub(self.held_usd, held)?;
        Ok(())
    }

    /// Settles a reservation: releases its `held` credit and records its actual `cost`,
    /// in one transition (the alarms see only the result).
    pub fn settle(
        &mut self,
        held: Decimal,
        cost: Decimal,
        at: DateTime<Utc>,
    ) -> Result<Spent, CreditError> {
        let (draws, events) = self.transition(at, |w| {
            w.release_inner(held)?;
            w.spend_inner(cost, at)
        })?;
        Ok(Spent { draws, events })
    }

    /// Adds a new grant (from [`super::put_grant`]'s `Created`). A grant id already in
    /// the wallet is a [`CreditError::GrantConflict`].
    pub fn add_grant(
        &mut self,
        grant: Grant,
        at: DateTime<Utc>,
    ) -> Result<Vec<WalletEvent>, CreditError> {
        if self.grants.iter().any(|g| g.id == grant.id) {
            return Err(CreditError::GrantConflict(grant.id.to_string()));
        }
        Ok(self
            .transition(at, |w| {
                w.grants.push(grant);
                Ok(())
            })?
            .1)
    }

    /// Voids grant `id` at `at` ([`Grant::void`]): the amount removed from the balance
    /// and the alarms it fires.
    pub fn void(
        &mut self,
        id: &GrantId,
        at: DateTime<Utc>,
    ) -> Result<(Decimal, Vec<WalletEvent>), CreditError> {
        self.transition(at, |w| {
            let g = w
                .grants
                .iter_mut()
                .find(|g| &g.id == id)
                .ok_or_else(|| CreditError::UnknownGrant(id.to_string()))?;
            Ok(g.void(at))
        })
    }

    /// Sets the low-balance level (validated). Setting a level is not a crossing: nothing
    /// fires for it, and the alarm is armed iff available is not below the new level.
    pub fn set_low_balance(
        &mut self,
        low_balance_usd: Option<Decimal>,
        at: DateTime<Utc>,
    ) -> Result<(), CreditError> {
        validate_low_balance(low_balance_usd)?;
        let available = self.available(at)?;
        self.low_balance_usd = low_balance_usd;
        self.alarms = self.alarms.with_low_balance(available, low_balance_usd);
        Ok(())
    }

    /// Takes `billed` (what an invoice billed of the overdraft, at most the overdraft)
    /// off the overdraft: the debt is now the invoice's.
    pub fn settle_overdraft(
        &mut self,
        billed: Decimal,
        at: DateTime<Utc>,
    ) -> Result<Vec<WalletEvent>, CreditError> {
        Ok(self
            .transition(at, |w| {
                non_negative("billed_usd", billed)?;
                if billed > w.overdrawn_usd {
                    return Err(CreditError::Overflow);
                }
                w.overdrawn_usd = exact_sub(w.overdrawn_usd, billed)?;
                Ok(())
            })?
            .1)
    }

    /// Re-evaluates the alarms at `at` with no other change: what a grant expiring since
    /// the last change fires (the aggregation calls it when it records expiries).
    pub fn observe(&mut self, at: DateTime<Utc>) -> Result<Vec<WalletEvent>, CreditError> {
        Ok(self.transition(at, |_| Ok(()))?.1)
    }
}
