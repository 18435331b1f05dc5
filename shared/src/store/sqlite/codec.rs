//! Column values ↔ domain values, and `rusqlite` errors → [`StoreError`].

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use rust_decimal::Decimal;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::decimal::OVERFLOW_TAG;
use crate::domain::{ReservationStatus, Severity};
use crate::store::{StoreError, StoreResult};

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::Error as E;
        match &e {
            E::SqliteFailure(_, Some(msg))
                if msg.contains(OVERFLOW_TAG) || msg.contains("integer overflow") =>
            {
                StoreError::Overflow(msg.clone())
            }
            E::FromSqlConversionFailure(..)
            | E::IntegralValueOutOfRange(..)
            | E::InvalidColumnType(..)
            | E::Utf8Error(..) => StoreError::Corrupt(e.to_string()),
            _ => StoreError::Unavailable(e.to_string()),
        }
    }
}

/// A timestamp as stored: RFC 3339 UTC with nine fractional digits (text order = time
/// order, and the value reads back exactly).
pub(super) fn ts(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

pub(super) fn parse_ts(s: &str) -> StoreResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt(format!("timestamp {s:?}: {e}")))
}

pub(super) fn day(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

pub(super) fn parse_day(s: &str) -> StoreResult<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|e| StoreError::Corrupt(format!("day {s:?}: {e}")))
}

/// Money as stored: the exact, normalised decimal text.
pub(super) fn money(d: Decimal) -> String {
    d.normalize().to_string()
}

pub(super) fn parse_money(s: &str) -> StoreResult<Decimal> {
    Decimal::from_str_exact(s).map_err(|e| StoreError::Corrupt(format!("amount {s:?}: {e}")))
}

/// A count as stored (INTEGER is signed 64-bit).
pub(super) fn count(n: u64) -> StoreResult<i64> {
    i64::try_from(n)
        .map_err(|_| StoreError::Overflow(format!("count {n} exceeds the store's range")))
}

pub(super) fn parse_count(n: i64) -> StoreResult<u64> {
    u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("negative count {n}")))
}

pub(super) fn to_json<T: Serialize>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value)
        .map_err(|e| StoreError::Corrupt(format!("cannot encode record: {e}")))
}

pub(super) fn from_json<T: DeserializeOwned>(s: &str) -> StoreResult<T> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("cannot decode record: {e}")))
}

pub(super) fn reservation_status(s: ReservationStatus) -> &'static str {
    match s {
        ReservationStatus::Held => "held",
        ReservationStatus::Settled => "settled",
        ReservationStatus::Released => "released",
        ReservationStatus::Expired => "expired",
    }
}

pub(super) fn parse_reservation_status(s: &str) -> StoreResult<ReservationStatus> {
    match s {
        "held" => Ok(ReservationStatus::Held),
        "settled" => Ok(ReservationStatus::Settled),
        "released" => Ok(ReservationStatus::Released),
        "expired" => Ok(ReservationStatus::Expired),
        other => Err(StoreError::Corrupt(format!("reservation status {other:?}"))),
    }
}

pub(super) fn severity(s: Severity) -> &'static str {
    match s {
        Severity::Info => "info",
        Severity::Warning => "warning",
        Severity::Error => "error",
    }
}

pub(super) fn parse_severity(s: &str) -> StoreResult<Severity> {
    match s {
        "info" => Ok(Severity::Info),
        "warning" => Ok(Severity::Warning),
        "error" => Ok(Severity::Error),
        other => Err(StoreError::Corrupt(format!("severity {other:?}"))),
    }
}

/// Parses a validated id read back from a column.
pub(super) fn id<T, E: std::fmt::Display>(
    s: String,
    parse: impl FnOnce(String) -> Result<T, E>,
) -> StoreResult<T> {
    parse(s).map_err(|e| StoreError::Corrupt(format!("stored id: {e}")))
}

/// A row count `limit` as an SQL `LIMIT` value.
pub(super) fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}
