//! Prepaid credits: wallets, grants with expiry and priority, the order cost is
//! drawn in, balances, the prepaid check, low-balance alarms, credits on postpaid invoices
//! and the projected depletion date. Pure: no async, no I/O, no clock (every rule takes
//! the instant it is evaluated at).
//!
//! - [`grants`]: a [`Grant`] and the PUT body that creates it ([`GrantRequest`]:
//!   validation, idempotency by `grant_id`), voiding;
//! - [`draws`]: the draw order and [`draw`]: which grants pay a cost, and how much;
//! - [`wallet`]: balances ([`wallet_view`]), expiry ([`expired`]), the prepaid check
//!   ([`credit_allows`]), the projected depletion date, and [`Wallet`], the whole state
//!   of one wallet with its transitions (spend, hold, release, settle, grant, void);
//! - [`alarms`]: `wallet.low_balance` and `wallet.depleted`, once per crossing;
//! - [`invoice`]: credits applied to a postpaid invoice (`credits_applied`).
//!
//! # The model
//!
//! A wallet belongs to a [`Subscriber`] and holds grants. A grant *counts* at instant `at`
//! when it is not voided and has not expired (`expires_at > at`): an expired grant stops
//! counting at its `expires_at` exactly, with no write needed, so a check sees it at once.
//!
//! Recorded usage draws its cost from the counting grants in the draw order (priority
//! ascending, then soonest expiry with none last, then oldest by `created_at`, then by
//! id). Each grant gives at most its `remaining_usd`, so **no grant ever goes below
//! zero**. What the grants cannot cover (the *shortfall*: usage that already happened on
//! an exhausted wallet is still recorded) is added to the wallet's `overdrawn_usd`, a debt
//! of the wallet rather than of one grant:
//!
//! - one mechanism whether the wallet has grants or none at all;
//! - the debt cannot vanish when the grant that would carry it expires or is voided;
//! - later grants never have to absorb another grant's negative remainder to keep the
//!   "no grant below zero except the last one drawn" invariant (it holds in its strongest
//!   form: none below zero);
//! - the overdraft is exactly what the next invoice bills as overage, and the
//!   service clears what it billed ([`Wallet::settle_overdraft`]).
//!
//! So for every cost: `Σ draws + shortfall = cost` exactly, and
//! `balance_usd = Σ remaining of counting grants − overdrawn_usd` (negative when usage
//! overran the wallet). Reservations hold credit: `available_usd = balance_usd − held_usd`,
//! and the prepaid check admits a call when its estimate fits in `available_usd`.

use std::fmt;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::domain::{OrgId, UserId};

pub mod alarms;
pub mod draws;
pub mod grants;
pub mod invoice;
pub mod wallet;

pub use alarms::{crossings, WalletAlarms, WalletEvent};
pub use draws::{draw, draw_cmp, draw_order, Draw, Draws};
pub use grants::{
    put_grant, Grant, GrantKind, GrantRequest, GrantStatus, PutGrant, UnknownKind,
    DEFAULT_PRIORITY, MAX_DECIMALS, MAX_NOTE_LEN, MAX_PRIORITY,
};
pub use invoice::{
    apply_credits, apply_to_invoice, CreditsApplied, InvoiceAmounts, CREDITS_APPLIED,
};
pub use wallet::{
    credit_allows, credit_requirement, expired, projected_depletion, validate_low_balance,
    wallet_view, Admit, Spent, Wallet, WalletBalance, CREDITS_METRIC,
};

#[cfg(test)]
mod alarms_tests;
#[cfg(test)]
mod draws_tests;
#[cfg(test)]
mod grants_tests;
#[cfg(test)]
mod invoice_tests;
#[cfg(test)]
mod properties;
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod wallet_tests;

/// Whose wallet: a user's or an org's.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Subscriber {
    User(UserId),
    Org(OrgId),
}

impl Subscriber {
    /// `user` or `org`, as the wallet's path spells it (`/wallet/user/{id}`).
    pub fn kind(&self) -> &'static str {
        match self {
            Subscriber::User(_) => "user",
            Subscriber::Org(_) => "org",
        }
    }

    /// The user or org id.
    pub fn id(&self) -> &str {
        match self {
            Subscriber::User(u) => u.as_str(),
            Subscriber::Org(o) => o.as_str(),
        }
    }
}

/// `user/<id>` or `org/<id>` (the wallet's path).
impl fmt::Display for Subscriber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind(), self.id())
    }
}

/// The inverse of `Display`: `user/<id>` or `org/<id>` (a stored wallet key, a cursor).
impl std::str::FromStr for Subscriber {
    type Err = String;

    fn from_str(key: &str) -> Result<Self, String> {
        match key.split_once('/') {
            Some(("user", id)) => UserId::parse(id)
                .map(Subscriber::User)
                .map_err(|e| e.to_string()),
            Some(("org", id)) => OrgId::parse(id)
                .map(Subscriber::Org)
                .map_err(|e| e.to_string()),
            _ => Err(format!("`{key}` is not `user/<id>` or `org/<id>`")),
        }
    }
}

/// Why a credits rule refused its input. Nothing is changed when one is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreditError {
    #[error("{field} must be greater than 0")]
    AmountNotPositive { field: &'static str },
    #[error("{field} must be at most 10^15")]
    AmountTooLarge { field: &'static str },
    #[error("{field} has more than 6 decimal places")]
    TooManyDecimals { field: &'static str },
    #[error("expires_at must be in the future")]
    ExpiryInThePast,
    #[error("priority must be a whole number from 0 to {}", grants::MAX_PRIORITY)]
    PriorityOutOfRange,
    #[error("{field} is longer than {max} characters")]
    TooLong { field: &'static str, max: usize },
    #[error("grant {0} exists with another body")]
    GrantConflict(String),
    #[error("{field} must not be negative")]
    NegativeAmount { field: &'static str },
    #[error("unknown grant {0}")]
    UnknownGrant(String),
    /// A sum or difference does not fit in a `Decimal` exactly (more than 28 significant
    /// digits, or beyond its range): refused rather than rounded.
    #[error("a wallet amount overflows or cannot be held exactly")]
    Overflow,
}

impl CreditError {
    /// The stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            CreditError::AmountNotPositive { .. } => "amount_not_positive",
            CreditError::AmountTooLarge { .. } => "amount_too_large",
            CreditError::TooManyDecimals { .. } => "too_many_decimals",
            CreditError::ExpiryInThePast => "expiry_in_the_past",
            CreditError::PriorityOutOfRange => "priority_out_of_range",
            CreditError::TooLong { .. } => "too_long",
            CreditError::GrantConflict(_) => "grant_conflict",
            CreditError::NegativeAmount { .. } => "negative_amount",
            CreditError::UnknownGrant(_) => "unknown_grant",
            CreditError::Overflow => "overflow",
        }
    }

    /// The request field the error is about (`""` when none).
    pub fn field(&self) -> &'static str {
        match self {
            CreditError::AmountNotPositive { field }
            | CreditError::AmountTooLarge { field }
            | CreditError::TooManyDecimals { field }
            | CreditError::TooLong { field, .. }
            | CreditError::NegativeAmount { field } => field,
            CreditError::ExpiryInThePast => "expires_at",
            CreditError::PriorityOutOfRange => "priority",
            CreditError::GrantConflict(_) | CreditError::UnknownGrant(_) => "grant_id",
            CreditError::Overflow => "",
        }
    }
}

/// `a + b`, exactly: the mantissas are added at the larger scale in `i128`; a result
/// that does not fit a `Decimal` (96-bit mantissa) at that scale is an error, never
/// rounded (`Decimal`'s own `+` rounds a sum that needs more than 28 significant digits).
pub(crate) fn exact_add(a: Decimal, b: Decimal) -> Result<Decimal, CreditError> {
    let scale = a.scale().max(b.scale());
    let sum = mantissa_at(a, scale)?
        .checked_add(mantissa_at(b, scale)?)
        .ok_or(CreditError::Overflow)?;
    Decimal::try_from_i128_with_scale(sum, scale).map_err(|_| CreditError::Overflow)
}

/// `a - b`, exactly (see [`exact_add`]).
pub(crate) fn exact_sub(a: Decimal, b: Decimal) -> Result<Decimal, CreditError> {
    exact_add(a, -b)
}

/// `d`'s mantissa at `scale >= d.scale()` (at most 28, so the factor fits an `i128`).
fn mantissa_at(d: Decimal, scale: u32) -> Result<i128, CreditError> {
    let factor = 10i128
        .checked_pow(scale - d.scale())
        .ok_or(CreditError::Overflow)?;
    d.mantissa()
        .checked_mul(factor)
        .ok_or(CreditError::Overflow)
}

/// `Σ amounts`, exactly.
pub(crate) fn exact_sum(
    amounts: impl IntoIterator<Item = Decimal>,
) -> Result<Decimal, CreditError> {
    amounts.into_iter().try_fold(Decimal::ZERO, exact_add)
}
