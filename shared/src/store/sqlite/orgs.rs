//! Org subscriptions: one row per (tenant, org) in `org_subscriptions` (migration 13);
//! their invoices are rows of `invoices` under the subscriber key `org#<org_id>`. Every
//! write runs on the writer thread in one transaction, so closing a period (insert the
//! invoice, move the subscription on under its version) is all or nothing.

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};

use super::billing;
use super::codec::{from_json, sql_limit, to_json};
use super::SqliteStore;
use crate::domain::{Invoice, OrgId, Subscription, TenantId};
use crate::store::{org_subscriber, OrgClose, OrgRef, OrgStore, Page, StoreError, StoreResult};

pub(super) fn get(
    conn: &Connection,
    tenant: &TenantId,
    org: &OrgId,
) -> StoreResult<Option<Subscription>> {
    let text: Option<String> = conn
        .prepare_cached("SELECT sub FROM org_subscriptions WHERE tenant = ?1 AND org_id = ?2")?
        .query_row(params![tenant.as_str(), org.as_str()], |r| r.get(0))
        .optional()?;
    text.as_deref().map(from_json).transpose()
}

/// Writes `sub` if the stored version is `expected`; `false` (nothing written) otherwise.
pub(super) fn put(
    conn: &Connection,
    org: &OrgId,
    sub: &Subscription,
    expected: Option<u64>,
) -> StoreResult<bool> {
    let version = i64::try_from(sub.version)
        .map_err(|_| StoreError::Overflow("subscription version".into()))?;
    let n = match expected {
        None => conn
            .prepare_cached(
                "INSERT INTO org_subscriptions (tenant, org_id, version, sub) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT DO NOTHING",
            )?
            .execute(params![sub.tenant.as_str(), org.as_str(), version, to_json(sub)?])?,
        Some(old) => {
            let old =
                i64::try_from(old).map_err(|_| StoreError::Overflow("subscription version".into()))?;
            conn.prepare_cached(
                "UPDATE org_subscriptions SET version = ?3, sub = ?4
                 WHERE tenant = ?1 AND org_id = ?2 AND version = ?5",
            )?
            .execute(params![
                sub.tenant.as_str(),
                org.as_str(),
                version,
                to_json(sub)?,
                old
            ])?
        }
    };
    Ok(n == 1)
}

fn list(conn: &Connection, cursor: Option<&str>, limit: usize) -> StoreResult<Page<OrgRef>> {
    let (after_tenant, after_org) = match cursor {
        None => (String::new(), String::new()),
        Some(c) => {
            let (t, o) = c
                .split_once(' ')
                .ok_or_else(|| StoreError::Corrupt(format!("invalid page cursor {c:?}")))?;
            (t.to_owned(), o.to_owned())
        }
    };
    let rows: Vec<(String, String, String)> = conn
        .prepare_cached(
            "SELECT tenant, org_id, sub FROM org_subscriptions WHERE (tenant, org_id) > (?1, ?2)
             ORDER BY tenant, org_id LIMIT ?3",
        )?
        .query_map(
            params![after_tenant, after_org, sql_limit(limit.saturating_add(1))],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?
        .collect::<Result<_, _>>()?;
    let more = rows.len() > limit;
    let mut items = Vec::new();
    for (tenant, org, sub) in rows.into_iter().take(limit) {
        items.push(OrgRef {
            tenant: TenantId::parse(tenant)
                .map_err(|e| StoreError::Corrupt(format!("org subscription tenant: {e}")))?,
            org: OrgId::parse(org)
                .map_err(|e| StoreError::Corrupt(format!("org subscription org: {e}")))?,
            subscription: from_json(&sub)?,
        });
    }
    let next = more
        .then(|| items.last().map(|r| format!("{} {}", r.tenant, r.org)))
        .flatten();
    Ok(Page { items, next })
}

#[async_trait]
impl OrgStore for SqliteStore {
    async fn get_org_subscription(
        &self,
        tenant: &TenantId,
        org: &OrgId,
    ) -> StoreResult<Option<Subscription>> {
        let (tenant, org) = (tenant.clone(), org.clone());
        self.read(move |c| get(c, &tenant, &org)).await
    }

    async fn put_org_subscription(
        &self,
        org: &OrgId,
        sub: &Subscription,
        expected_version: Option<u64>,
    ) -> StoreResult<()> {
        let (org, sub) = (org.clone(), sub.clone());
        match self
            .write(move |c| put(c, &org, &sub, expected_version))
            .await?
        {
            true => Ok(()),
            false => Err(StoreError::VersionConflict),
        }
    }

    async fn list_org_subscriptions(
        &self,
        cursor: Option<String>,
        limit: usize,
    ) -> StoreResult<Page<OrgRef>> {
        self.read(move |c| list(c, cursor.as_deref(), limit)).await
    }

    async fn close_org_period(
        &self,
        org: &OrgId,
        invoice: &Invoice,
        next: &Subscription,
        expected_version: u64,
    ) -> StoreResult<OrgClose> {
        let (org, invoice, next) = (org.clone(), invoice.clone(), next.clone());
        self.write(move |c| close(c, &org, &invoice, &next, expected_version))
            .await
            .or_else(|e| match e {
                StoreError::VersionConflict => Ok(OrgClose::Changed),
                e => Err(e),
            })
    }

    async fn list_org_invoices(&self, tenant: &TenantId, org: &OrgId) -> StoreResult<Vec<Invoice>> {
        let tenant = tenant.clone();
        // The subscriber key is not a user id (`#`): query the rows by their text.
        let key = org_subscriber(&org.clone());
        self.read(move |c| list_by_subscriber(c, &tenant, &key))
            .await
    }
}

/// Closes an org period in the caller's transaction (see [`OrgStore::close_org_period`]).
pub(super) fn close(
    c: &Connection,
    org: &OrgId,
    invoice: &Invoice,
    next: &Subscription,
    expected_version: u64,
) -> StoreResult<OrgClose> {
    // The writer runs each job in a savepoint: an early `Changed` after the insert
    // must undo it, so the subscription is moved first.
    if !put(c, org, next, Some(expected_version))? {
        return Ok(OrgClose::Changed);
    }
    if !billing::put_invoice_once(c, invoice)? {
        return Err(StoreError::VersionConflict);
    }
    Ok(OrgClose::Closed)
}

fn list_by_subscriber(
    conn: &Connection,
    tenant: &TenantId,
    key: &str,
) -> StoreResult<Vec<Invoice>> {
    let rows: Vec<String> = conn
        .prepare_cached(
            "SELECT invoice FROM invoices WHERE tenant = ?1 AND user = ?2
             ORDER BY period_start DESC, id DESC",
        )?
        .query_map(params![tenant.as_str(), key], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    rows.iter().map(|j| from_json(j)).collect()
}
