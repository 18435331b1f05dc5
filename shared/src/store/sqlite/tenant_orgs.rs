//! The tenant's orgs for the admin (`store::TenantOrgsStore`): the union of
//! `org_subscriptions` and the live `org_members` directories of the tenant, one read.

use async_trait::async_trait;
use rusqlite::{params, Connection};

use super::codec::{from_json, sql_limit};
use super::SqliteStore;
use crate::domain::{OrgId, TenantId};
use crate::store::{Page, StoreError, StoreResult, TenantOrg, TenantOrgsStore};

fn list(
    conn: &Connection,
    tenant: &TenantId,
    after: Option<&OrgId>,
    limit: usize,
) -> StoreResult<Page<TenantOrg>> {
    let after = after.map_or("", |o| o.as_str());
    let rows: Vec<(String, Option<String>)> = conn
        .prepare_cached(
            "SELECT o.org_id, s.sub FROM (
                 SELECT org_id FROM org_subscriptions WHERE tenant = ?1 AND org_id > ?2
                 UNION
                 SELECT org_id FROM org_members WHERE tenant = ?1 AND org_id > ?2
             ) o
             LEFT JOIN org_subscriptions s ON s.tenant = ?1 AND s.org_id = o.org_id
             ORDER BY o.org_id LIMIT ?3",
        )?
        .query_map(
            params![tenant.as_str(), after, sql_limit(limit.saturating_add(1))],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?
        .collect::<Result<_, _>>()?;
    let more = rows.len() > limit;
    let mut items = Vec::with_capacity(rows.len().min(limit));
    for (org, sub) in rows.into_iter().take(limit) {
        items.push(TenantOrg {
            org: OrgId::parse(org).map_err(|e| StoreError::Corrupt(format!("org id: {e}")))?,
            subscription: sub.as_deref().map(from_json).transpose()?,
        });
    }
    let next = if more {
        items.last().map(|o| o.org.to_string())
    } else {
        None
    };
    Ok(Page { items, next })
}

#[async_trait]
impl TenantOrgsStore for SqliteStore {
    async fn list_tenant_orgs(
        &self,
        tenant: &TenantId,
        after: Option<&OrgId>,
        limit: usize,
    ) -> StoreResult<Page<TenantOrg>> {
        let (tenant, after) = (tenant.clone(), after.cloned());
        self.read(move |c| list(c, &tenant, after.as_ref(), limit))
            .await
    }
}
