//! Builders shared by the credits tests.

use chrono::{DateTime, Duration, TimeZone, Utc};
use rust_decimal::Decimal;

use super::{Grant, GrantKind, DEFAULT_PRIORITY};
use crate::domain::GrantId;

/// 2025-01-01 00:00 UTC plus `hours`.
pub fn h(hours: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap() + Duration::hours(hours)
}

/// An exact decimal from its text.
pub fn d(s: &str) -> Decimal {
    Decimal::from_str_exact(s).unwrap()
}

pub fn gid(s: &str) -> GrantId {
    GrantId::parse(s).unwrap()
}

/// A purchase of `amount` created at hour 0, default priority, no expiry.
pub fn grant(id: &str, amount: &str) -> Grant {
    Grant {
        id: gid(id),
        amount_usd: d(amount),
        remaining_usd: d(amount),
        expires_at: None,
        priority: DEFAULT_PRIORITY,
        kind: GrantKind::Purchase,
        note: None,
        created_at: h(0),
        voided_at: None,
        expired_usd: None,
    }
}

/// Builder methods for test grants.
pub trait GrantExt {
    fn priority(self, p: i32) -> Self;
    fn expires(self, at: DateTime<Utc>) -> Self;
    fn created(self, at: DateTime<Utc>) -> Self;
    fn remaining(self, r: &str) -> Self;
    fn voided(self, at: DateTime<Utc>) -> Self;
    fn kind(self, k: GrantKind) -> Self;
}

impl GrantExt for Grant {
    fn priority(mut self, p: i32) -> Self {
        self.priority = p;
        self
    }
    fn expires(mut self, at: DateTime<Utc>) -> Self {
        self.expires_at = Some(at);
        self
    }
    fn created(mut self, at: DateTime<Utc>) -> Self {
        self.created_at = at;
        self
    }
    fn remaining(mut self, r: &str) -> Self {
        self.remaining_usd = d(r);
        self
    }
    fn voided(mut self, at: DateTime<Utc>) -> Self {
        self.voided_at = Some(at);
        self
    }
    fn kind(mut self, k: GrantKind) -> Self {
        self.kind = k;
        self
    }
}

/// The ids of `grants`, in their order.
pub fn ids<'a>(grants: impl IntoIterator<Item = &'a Grant>) -> Vec<String> {
    grants.into_iter().map(|g| g.id.to_string()).collect()
}
