//! Exact arithmetic inside SQLite.
//!
//! Money is stored as TEXT holding a `Decimal`'s exact string, and counts as INTEGER.
//! SQLite's own `+` would turn TEXT into REAL (and silently turn an overflowing INTEGER
//! into REAL), so every counter change goes through these scalar functions, registered
//! on every connection and run inside the store's transaction:
//!
//! - `dec_add(a, b)`, `dec_sub(a, b)`: exact sums as normalised TEXT; an error past
//!   `Decimal`'s range;
//! - `dec_cmp(a, b)`: -1, 0 or 1;
//! - `dec_sum(x)`: aggregate exact sum (`'0'` over no rows);
//! - `int_add(a, b)`: INTEGER sum that fails instead of wrapping or turning into REAL.
//!
//! Arguments may be TEXT (a decimal) or INTEGER; anything else (NULL, REAL, BLOB, text
//! that is not an exact decimal) is an error, never a guess.

use std::cmp::Ordering;

use rusqlite::functions::{Aggregate, Context, FunctionFlags};
use rusqlite::types::ValueRef;
use rusqlite::Connection;
use rust_decimal::Decimal;

/// Marks an overflow raised by one of these functions, so that the store can report it as
/// [`StoreError::Overflow`](crate::store::StoreError::Overflow).
pub(super) const OVERFLOW_TAG: &str = "meter_overflow";

#[derive(Debug, thiserror::Error)]
enum FnError {
    #[error("{OVERFLOW_TAG}: {0} leaves the counter range")]
    Overflow(&'static str),
    #[error("meter_invalid_number: argument {0} is not an exact decimal")]
    Invalid(usize),
}

fn fail(e: FnError) -> rusqlite::Error {
    rusqlite::Error::UserFunctionError(Box::new(e))
}

/// Reads argument `i` as an exact decimal.
fn arg(ctx: &Context<'_>, i: usize) -> rusqlite::Result<Decimal> {
    match ctx.get_raw(i) {
        ValueRef::Integer(n) => Ok(Decimal::from(n)),
        ValueRef::Text(t) => std::str::from_utf8(t)
            .ok()
            .and_then(|s| Decimal::from_str_exact(s).ok())
            .ok_or_else(|| fail(FnError::Invalid(i))),
        ValueRef::Null | ValueRef::Real(_) | ValueRef::Blob(_) => Err(fail(FnError::Invalid(i))),
    }
}

fn int_arg(ctx: &Context<'_>, i: usize) -> rusqlite::Result<i64> {
    match ctx.get_raw(i) {
        ValueRef::Integer(n) => Ok(n),
        _ => Err(fail(FnError::Invalid(i))),
    }
}

/// `a + b`, normalised, or an overflow error.
pub(super) fn add(a: Decimal, b: Decimal) -> Option<Decimal> {
    a.checked_add(b).map(|d| d.normalize())
}

struct DecSum;

impl Aggregate<Decimal, String> for DecSum {
    fn init(&self, _ctx: &mut Context<'_>) -> rusqlite::Result<Decimal> {
        Ok(Decimal::ZERO)
    }

    fn step(&self, ctx: &mut Context<'_>, acc: &mut Decimal) -> rusqlite::Result<()> {
        *acc = add(*acc, arg(ctx, 0)?).ok_or_else(|| fail(FnError::Overflow("dec_sum")))?;
        Ok(())
    }

    fn finalize(&self, _ctx: &mut Context<'_>, acc: Option<Decimal>) -> rusqlite::Result<String> {
        Ok(acc.unwrap_or_default().to_string())
    }
}

/// Registers the functions on `conn` (every connection of the store needs them).
pub(super) fn register(conn: &Connection) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8
        | FunctionFlags::SQLITE_DETERMINISTIC
        | FunctionFlags::SQLITE_INNOCUOUS;
    conn.create_scalar_function("dec_add", 2, flags, |ctx| {
        let sum =
            add(arg(ctx, 0)?, arg(ctx, 1)?).ok_or_else(|| fail(FnError::Overflow("dec_add")))?;
        Ok(sum.to_string())
    })?;
    conn.create_scalar_function("dec_sub", 2, flags, |ctx| {
        let diff = arg(ctx, 0)?
            .checked_sub(arg(ctx, 1)?)
            .ok_or_else(|| fail(FnError::Overflow("dec_sub")))?;
        Ok(diff.normalize().to_string())
    })?;
    conn.create_scalar_function("dec_cmp", 2, flags, |ctx| {
        Ok(match arg(ctx, 0)?.cmp(&arg(ctx, 1)?) {
            Ordering::Less => -1_i64,
            Ordering::Equal => 0,
            Ordering::Greater => 1,
        })
    })?;
    conn.create_scalar_function("int_add", 2, flags, |ctx| {
        int_arg(ctx, 0)?
            .checked_add(int_arg(ctx, 1)?)
            .ok_or_else(|| fail(FnError::Overflow("int_add")))
    })?;
    conn.create_aggregate_function("dec_sum", 1, flags, DecSum)?;
    Ok(())
}
