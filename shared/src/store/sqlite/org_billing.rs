//! Late org events (issue 18, [`crate::store::OrgBillingStore`]): table `org_adjustments`
//! (one row per (tenant, org, invoiced period) with pending late usage).
//!
//! An org's period is invoiced once an invoice of the org exists for it or for a later
//! period (index `invoices_by_user`); the invoice is stored in the close's transaction,
//! so it is the org's `billed_to`. Every write of recorded usage to an org's pooled
//! `period` counter ([`note_late`], called by the counter write in the event's
//! transaction) adds to the period's adjustment when the period is invoiced. The close
//! reads the state again in its transaction (the writer runs nothing else meanwhile) and
//! writes only if it is the state the invoice was built from.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection};

use super::codec::{money, parse_count, parse_money, parse_ts, ts};
use super::SqliteStore;
use crate::domain::{Invoice, OrgId, Subscription, TenantId};
use crate::store::{
    org_period_counter, org_subscriber, Adjustment, InvoiceCharge, OrgBillingState,
    OrgBillingStore, OrgClose, StoreError, StoreResult,
};
use crate::usage::Tally;

/// Adds `add` (one event's recorded usage on `org`'s pooled counter of the period starting
/// at `period_start`) to the period's pending adjustment when the period is invoiced. In
/// the caller's transaction.
pub(super) fn note_late(
    conn: &Connection,
    tenant: &str,
    org: &OrgId,
    period_start: DateTime<Utc>,
    add: &Tally,
) -> StoreResult<()> {
    let invoiced: bool = conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM invoices
             WHERE tenant = ?1 AND user = ?2 AND period_start >= ?3)",
        )?
        .query_row(
            params![tenant, org_subscriber(org), ts(&period_start)],
            |r| r.get(0),
        )?;
    if invoiced {
        conn.prepare_cached(
            "INSERT INTO org_adjustments (tenant, org_id, period_start, events, cost)
             VALUES (?1, ?2, ?3, 1, ?4)
             ON CONFLICT (tenant, org_id, period_start) DO UPDATE SET
                 events = int_add(events, 1), cost = dec_add(cost, excluded.cost)",
        )?
        .execute(params![
            tenant,
            org.as_str(),
            ts(&period_start),
            money(add.cost_usd)
        ])?;
    }
    Ok(())
}

fn adjustments(
    conn: &Connection,
    tenant: &str,
    org: &OrgId,
) -> StoreResult<BTreeMap<DateTime<Utc>, Adjustment>> {
    let rows: Vec<(String, i64, String)> = conn
        .prepare_cached(
            "SELECT period_start, events, cost FROM org_adjustments
             WHERE tenant = ?1 AND org_id = ?2 ORDER BY period_start",
        )?
        .query_map(params![tenant, org.as_str()], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<Result<_, _>>()?;
    let mut out = BTreeMap::new();
    for (start, events, cost) in rows {
        out.insert(
            parse_ts(&start)?,
            Adjustment {
                events: parse_count(events)?,
                cost_usd: parse_money(&cost)?,
            },
        );
    }
    Ok(out)
}

fn state(
    conn: &Connection,
    tenant: &TenantId,
    org: &OrgId,
    period_start: DateTime<Utc>,
) -> StoreResult<OrgBillingState> {
    let usage = super::budget_counters::read_counter(
        conn,
        tenant.as_str(),
        &org_period_counter(org, period_start).key(),
    )?;
    let adjustments = adjustments(conn, tenant.as_str(), org)?;
    // The whole state is the version: the close compares it as read again.
    let mut version = serde_json::to_string(&usage)
        .map_err(|e| StoreError::Corrupt(format!("org billing state: {e}")))?;
    for (start, a) in &adjustments {
        version.push_str(&format!("|{}:{}:{}", ts(start), a.events, a.cost_usd));
    }
    // Issue 19: what the late events drew from the org's wallet (org_late_draws).
    let late_draws = super::org_late_draws::late_draws(conn, tenant.as_str(), org)?;
    version.push_str(&format!(
        "|late:{}:{}:{}",
        late_draws.events, late_draws.drawn_usd, late_draws.shortfall_usd
    ));
    Ok(OrgBillingState {
        period_start,
        usage,
        adjustments,
        late_draws,
        billed_to: super::org_late_draws::org_billed_to(conn, tenant.as_str(), org)?,
        version,
    })
}

#[async_trait]
impl OrgBillingStore for SqliteStore {
    async fn org_billing_state(
        &self,
        tenant: &TenantId,
        org: &OrgId,
        period_start: DateTime<Utc>,
    ) -> StoreResult<OrgBillingState> {
        let (tenant, org) = (tenant.clone(), org.clone());
        self.read(move |c| state(c, &tenant, &org, period_start))
            .await
    }

    async fn close_org_period_billed(
        &self,
        org: &OrgId,
        invoice: &Invoice,
        next: &Subscription,
        expected_version: u64,
        read: &OrgBillingState,
        charge: Option<&InvoiceCharge>,
    ) -> StoreResult<OrgClose> {
        let (org, invoice, next, read, charge) = (
            org.clone(),
            invoice.clone(),
            next.clone(),
            read.clone(),
            charge.cloned(),
        );
        self.write(move |c| {
            let tenant = &next.tenant;
            // Read-only first: a `Changed` answered after a write would not undo it.
            if state(c, tenant, &org, read.period_start)?.version != read.version {
                return Ok(OrgClose::Changed);
            }
            let closed = match &charge {
                Some(charge) => super::org_wallets::close_org_charging(
                    c,
                    &org,
                    &invoice,
                    &next,
                    expected_version,
                    charge,
                )?,
                None => super::orgs::close(c, &org, &invoice, &next, expected_version)?,
            };
            if closed == OrgClose::Closed {
                for start in read.adjustments.keys() {
                    c.prepare_cached(
                        "DELETE FROM org_adjustments
                         WHERE tenant = ?1 AND org_id = ?2 AND period_start = ?3",
                    )?
                    .execute(params![
                        tenant.as_str(),
                        org.as_str(),
                        ts(start)
                    ])?;
                }
            }
            Ok(closed)
        })
        .await
        .or_else(|e| match e {
            StoreError::VersionConflict => Ok(OrgClose::Changed),
            e => Err(e),
        })
    }
}
