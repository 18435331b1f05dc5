//! Grants: one deposit of prepaid credit, the PUT body that creates it, and voiding.
//!
//! A grant is created by `PUT …/grants/{grant_id}`, idempotent by `grant_id`
//! ([`put_grant`]): the same body again changes nothing (whatever has been drawn since,
//! and even once its expiry has passed), another body is a conflict. The body's meaning is
//! a [`GrantRequest`]; [`GrantRequest::validate`] is every rule a new grant passes.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::CreditError;
use crate::domain::GrantId;
use crate::limits::MAX_AMOUNT;

/// The priority of a grant that names none (lower burns first).
pub const DEFAULT_PRIORITY: i32 = 10;
/// The highest priority a grant may have (priorities are `0..=MAX_PRIORITY`).
pub const MAX_PRIORITY: i32 = 1000;
/// The most characters a grant's note may have.
pub const MAX_NOTE_LEN: usize = 1024;
/// The most decimal places a grant amount or a low-balance level may have (trailing
/// zeros do not count: `1.5000000` is `1.5`).
pub const MAX_DECIMALS: u32 = 6;

/// Why credit was granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantKind {
    Purchase,
    Promo,
    Refund,
    Adjustment,
}

impl GrantKind {
    pub const ALL: [GrantKind; 4] = [
        GrantKind::Purchase,
        GrantKind::Promo,
        GrantKind::Refund,
        GrantKind::Adjustment,
    ];

    /// The kind as JSON and the CLI spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            GrantKind::Purchase => "purchase",
            GrantKind::Promo => "promo",
            GrantKind::Refund => "refund",
            GrantKind::Adjustment => "adjustment",
        }
    }
}

impl fmt::Display for GrantKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parsing a kind that is not one of `purchase`, `promo`, `refund`, `adjustment`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown grant kind: expected purchase, promo, refund or adjustment")]
pub struct UnknownKind;

impl FromStr for GrantKind {
    type Err = UnknownKind;
    fn from_str(s: &str) -> Result<Self, UnknownKind> {
        GrantKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or(UnknownKind)
    }
}

/// One grant of credit in a wallet, as stored.
///
/// `remaining_usd` starts at `amount_usd` and only decreases, by exactly what is drawn
/// from it; it never goes below zero (a wallet's shortfall is its `overdrawn_usd`). An
/// expired or voided grant keeps its `remaining_usd` as the amount that stopped counting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub id: GrantId,
    #[serde(with = "rust_decimal::serde::str")]
    pub amount_usd: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub remaining_usd: Decimal,
    /// The instant the grant stops counting; `None`: never.
    pub expires_at: Option<DateTime<Utc>>,
    /// Lower burns first.
    pub priority: i32,
    pub kind: GrantKind,
    pub note: Option<String>,
    pub created_at: DateTime<Utc>,
    /// When the grant was voided (what was left of it removed).
    pub voided_at: Option<DateTime<Utc>>,
    /// The amount the aggregation recorded as expired (what was left at `expires_at`;
    /// `remaining_usd` is then 0). `None` until it is recorded.
    #[serde(
        default,
        with = "rust_decimal::serde::str_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub expired_usd: Option<Decimal>,
}

/// Where a grant stands at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantStatus {
    /// Counts toward the balance and can be drawn from.
    Active,
    /// Past its `expires_at`.
    Expired,
    /// Voided.
    Voided,
}

impl Grant {
    /// Whether the grant has expired at `at` (`expires_at <= at`: it stops counting at
    /// its instant exactly).
    pub fn is_expired(&self, at: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|e| e <= at)
    }

    /// Whether the grant counts toward the balance at `at` (not voided, not expired).
    pub fn counts(&self, at: DateTime<Utc>) -> bool {
        self.voided_at.is_none() && !self.is_expired(at)
    }

    /// Voided first (a void is final), then expired, else active.
    pub fn status(&self, at: DateTime<Utc>) -> GrantStatus {
        if self.voided_at.is_some() {
            GrantStatus::Voided
        } else if self.is_expired(at) {
            GrantStatus::Expired
        } else {
            GrantStatus::Active
        }
    }

    /// What was drawn from the grant so far.
    pub fn used_usd(&self) -> Decimal {
        self.amount_usd - self.remaining_usd
    }

    /// Voids the grant at `at`: what is left of it stops counting. Returns the amount
    /// removed from the balance: its remaining when it still counted, 0 when it had
    /// expired or was voided already (voiding again changes nothing: the first
    /// `voided_at` stays).
    pub fn void(&mut self, at: DateTime<Utc>) -> Decimal {
        if !self.counts(at) {
            if self.voided_at.is_none() {
                self.voided_at = Some(at);
            }
            return Decimal::ZERO;
        }
        self.voided_at = Some(at);
        self.remaining_usd
    }
}

/// What `PUT …/grants/{grant_id}` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRequest {
    pub amount_usd: Decimal,
    pub expires_at: Option<DateTime<Utc>>,
    /// [`DEFAULT_PRIORITY`] when the body names none.
    pub priority: i32,
    pub kind: GrantKind,
    pub note: Option<String>,
}

/// Checks an amount of credit (`field` names it in the error): `> 0`, `<= 10^15`, at
/// most [`MAX_DECIMALS`] decimal places.
pub(super) fn check_amount(field: &'static str, amount: Decimal) -> Result<(), CreditError> {
    if amount <= Decimal::ZERO {
        return Err(CreditError::AmountNotPositive { field });
    }
    if amount > MAX_AMOUNT {
        return Err(CreditError::AmountTooLarge { field });
    }
    if amount.normalize().scale() > MAX_DECIMALS {
        return Err(CreditError::TooManyDecimals { field });
    }
    Ok(())
}

impl GrantRequest {
    /// A request with the default priority and no expiry or note.
    pub fn new(amount_usd: Decimal, kind: GrantKind) -> Self {
        Self {
            amount_usd,
            expires_at: None,
            priority: DEFAULT_PRIORITY,
            kind,
            note: None,
        }
    }

    /// The rules that do not depend on the clock: the amount (`> 0`, `<= 10^15`, at most
    /// 6 decimal places), the priority (`0..=MAX_PRIORITY`) and the note (at most 1024
    /// characters).
    pub fn validate_body(&self) -> Result<(), CreditError> {
        check_amount("amount_usd", self.amount_usd)?;
        if !(0..=MAX_PRIORITY).contains(&self.priority) {
            return Err(CreditError::PriorityOutOfRange);
        }
        if self
            .note
            .as_ref()
            .is_some_and(|n| n.chars().count() > MAX_NOTE_LEN)
        {
            return Err(CreditError::TooLong {
                field: "note",
                max: MAX_NOTE_LEN,
            });
        }
        Ok(())
    }

    /// Every rule a new grant passes at `now`: [`Self::validate_body`], and an expiry (when
    /// given) after `now`.
    pub fn validate(&self, now: DateTime<Utc>) -> Result<(), CreditError> {
        self.validate_body()?;
        if self.expires_at.is_some_and(|e| e <= now) {
            return Err(CreditError::ExpiryInThePast);
        }
        Ok(())
    }

    /// Whether `grant` was created by this same body (amount compared as a number:
    /// `10` and `10.00` are the same). What was drawn, voided or expired since does not
    /// matter.
    pub fn same_as(&self, grant: &Grant) -> bool {
        self.amount_usd == grant.amount_usd
            && self.expires_at == grant.expires_at
            && self.priority == grant.priority
            && self.kind == grant.kind
            && self.note == grant.note
    }

    /// The new grant `id` this request creates at `now`, validated.
    pub fn into_grant(self, id: GrantId, now: DateTime<Utc>) -> Result<Grant, CreditError> {
        self.validate(now)?;
        Ok(Grant {
            id,
            amount_usd: self.amount_usd,
            remaining_usd: self.amount_usd,
            expires_at: self.expires_at,
            priority: self.priority,
            kind: self.kind,
            note: self.note,
            created_at: now,
            voided_at: None,
            expired_usd: None,
        })
    }
}

/// What a PUT of a grant does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutGrant {
    /// A new grant, to be stored.
    Created(Grant),
    /// The grant exists with this same body: nothing changes; answer with it as stored.
    Unchanged(Grant),
}

impl PutGrant {
    pub fn grant(&self) -> &Grant {
        match self {
            PutGrant::Created(g) | PutGrant::Unchanged(g) => g,
        }
    }
}

/// The PUT of grant `id` with `req` at `now`, given the grant already stored under that
/// id (if any). In order: the body's own rules ([`GrantRequest::validate_body`]); then an
/// existing grant answers [`PutGrant::Unchanged`] when `req` is the same body and
/// [`CreditError::GrantConflict`] otherwise; only a new grant must expire after `now`
/// (replaying a body whose expiry has since passed is still the same body).
pub fn put_grant(
    existing: Option<&Grant>,
    id: GrantId,
    req: GrantRequest,
    now: DateTime<Utc>,
) -> Result<PutGrant, CreditError> {
    req.validate_body()?;
    match existing {
        Some(g) if req.same_as(g) => Ok(PutGrant::Unchanged(g.clone())),
        Some(g) => Err(CreditError::GrantConflict(g.id.to_string())),
        None => req.into_grant(id, now).map(PutGrant::Created),
    }
}
