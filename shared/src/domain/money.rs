//! Money in answers: an exact decimal string without trailing zeros (`"0.0008"`), for
//! `#[serde(serialize_with = …)]`. Stored records keep their own exact text
//! (`rust_decimal::serde::str`); invoices show their amounts as stored.

use rust_decimal::Decimal;
use serde::Serializer;

/// `Decimal` → `"1.5"` (normalised).
pub fn normalized<S: Serializer>(d: &Decimal, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&d.normalize())
}

/// `Option<Decimal>` → `"1.5"` or `null`.
pub fn normalized_option<S: Serializer>(d: &Option<Decimal>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.collect_str(&d.normalize()),
        None => s.serialize_none(),
    }
}

/// `Decimal` → its exact text as stored (`"29.00"` stays `"29.00"`).
pub fn exact<S: Serializer>(d: &Decimal, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(d)
}
