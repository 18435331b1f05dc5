//! Late draws on SQLite (docs/credits.md, "Late events on prepaid plans"): a user's event
//! recorded or re-priced after its period was invoiced draws from the user's wallet in the
//! transaction that records (or prices) it, which also adds its cost to the pending
//! adjustment; [`mark_if_late`] marks its `wallet_draws` row with the user's `billed_to`
//! read in that same transaction. The next close reads the billing state with that
//! `billed_to` (its version covers the adjustment) and the marked rows
//! ([`late_draws`]), so the invoice that bills the adjustment credits what it drew. A
//! close and a late event are serialised by the writer: either the event's transaction
//! sees the old `billed_to` and the close's state version moved (it reads both again), or
//! it sees the new one and marks its row for the next close.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};

use super::codec::{from_json, parse_ts, ts};
use crate::credits::{exact_add, Draws, Subscriber};
use crate::domain::UsageEvent;
use crate::store::{PeriodDraws, StoreError, StoreResult};

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("late draws: {e}"))
}

/// Marks the draw of `e` from `wallet` (just inserted) as late when `wallet` is the user's
/// own and `e`'s period starts before the user's `billed_to`. Inside the caller's
/// transaction. (An org's wallet: `org_late_draws::mark_if_late`, called by recording.)
pub(super) fn mark_if_late(conn: &Connection, e: &UsageEvent, wallet: &str) -> StoreResult<()> {
    if wallet != Subscriber::User(e.user.clone()).to_string() {
        return Ok(());
    }
    let raw: Option<String> = conn
        .prepare_cached("SELECT billed_to FROM billing WHERE tenant = ?1 AND user = ?2")?
        .query_row(params![e.tenant.as_str(), e.user.as_str()], |r| r.get(0))
        .optional()?;
    let Some(billed_to) = raw.map(|s| parse_ts(&s)).transpose()? else {
        return Ok(());
    };
    if e.period_start < billed_to {
        conn.prepare_cached(
            "UPDATE wallet_draws SET late_billed_to = ?3 WHERE tenant = ?1 AND event_id = ?2",
        )?
        .execute(params![
            e.tenant.as_str(),
            e.event_id.as_str(),
            ts(&billed_to)
        ])?;
    }
    Ok(())
}

/// The sums of the rows of `wallet` marked late under `billed_to`.
pub(super) fn late_draws(
    conn: &Connection,
    tenant: &str,
    wallet: &str,
    billed_to: &DateTime<Utc>,
) -> StoreResult<PeriodDraws> {
    let rows = conn
        .prepare_cached(
            "SELECT draws FROM wallet_draws
              WHERE tenant = ?1 AND wallet = ?2 AND late_billed_to = ?3",
        )?
        .query_map(params![tenant, wallet, ts(billed_to)], |r| {
            r.get::<_, String>(0)
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = PeriodDraws::default();
    for text in rows {
        let d: Draws = from_json(&text)?;
        out.drawn_usd =
            exact_add(out.drawn_usd, d.drawn_usd().map_err(corrupt)?).map_err(corrupt)?;
        out.shortfall_usd = exact_add(out.shortfall_usd, d.shortfall_usd).map_err(corrupt)?;
        out.events += 1;
    }
    Ok(out)
}
