//! Late draws of prepaid orgs on SQLite (docs/credits.md, "Late events on prepaid plans"):
//! an event naming an org whose period was invoiced adds to the org's pending adjustment
//! in the transaction that records it (`org_billing::note_late`); when the org's wallet
//! pays for it, [`mark_if_late`] marks its `wallet_draws` row with the org's `billed_to`
//! (the end of the org's latest invoice, read in that same transaction). The org's close
//! reads the marked rows of the `billed_to` it reads ([`late_draws`], with the billing
//! state, whose version covers the adjustments), so the invoice that bills the
//! adjustments credits what they drew; the writer serialises a late event and a close.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};

use super::codec::{from_json, ts};
use crate::domain::{Invoice, OrgId, UsageEvent};
use crate::store::{org_subscriber, PeriodDraws, StoreResult};

/// The org's `billed_to`: the end of its latest invoice's period (`None`: never invoiced).
pub(super) fn org_billed_to(
    conn: &Connection,
    tenant: &str,
    org: &OrgId,
) -> StoreResult<Option<DateTime<Utc>>> {
    let raw: Option<String> = conn
        .prepare_cached(
            "SELECT invoice FROM invoices WHERE tenant = ?1 AND user = ?2
             ORDER BY period_start DESC LIMIT 1",
        )?
        .query_row(params![tenant, org_subscriber(org)], |r| r.get(0))
        .optional()?;
    Ok(raw
        .map(|text| from_json::<Invoice>(&text))
        .transpose()?
        .map(|i| i.period.end))
}

/// Marks the draw of `e` from `org`'s wallet (just inserted) as late when `e` falls in an
/// invoiced period of the org (before its `billed_to`). Inside the caller's transaction.
pub(super) fn mark_if_late(conn: &Connection, e: &UsageEvent, org: &OrgId) -> StoreResult<()> {
    let Some(billed_to) = org_billed_to(conn, e.tenant.as_str(), org)? else {
        return Ok(());
    };
    if e.timestamp < billed_to {
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

/// [`mark_if_late`] of an event just recorded and drawn from `wallet`, when that is an
/// org's. (Only recording: the org adjustment of a re-priced event is not added here.)
pub(super) fn mark_recorded(conn: &Connection, e: &UsageEvent, wallet: &str) -> StoreResult<()> {
    match wallet.parse::<crate::credits::Subscriber>() {
        Ok(crate::credits::Subscriber::Org(org)) => mark_if_late(conn, e, &org),
        _ => Ok(()),
    }
}

/// The late draws the org's next invoice credits: those marked with its `billed_to`.
pub(super) fn late_draws(conn: &Connection, tenant: &str, org: &OrgId) -> StoreResult<PeriodDraws> {
    let Some(billed_to) = org_billed_to(conn, tenant, org)? else {
        return Ok(PeriodDraws::default());
    };
    let wallet = crate::credits::Subscriber::Org(org.clone()).to_string();
    super::late_draws::late_draws(conn, tenant, &wallet, &billed_to)
}
