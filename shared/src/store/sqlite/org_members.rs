//! The org member directory (`store::OrgMembersStore`): one row per (tenant, org, period
//! start, kind, member), `INSERT OR IGNORE` (idempotent); each write also deletes up to 50
//! rows of periods that ended over a day before the noted period started.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection};

use super::codec::ts;
use super::SqliteStore;
use crate::domain::{OrgId, TeamId, TenantId, UserId};
use crate::periods::Period;
use crate::store::{OrgMembers, OrgMembersStore, StoreError, StoreResult, COUNTER_GRACE};

const PRUNE_BATCH: i64 = 50;

fn note(
    conn: &Connection,
    tenant: &TenantId,
    org: &OrgId,
    period: &Period,
    members: &[(&str, String)],
) -> StoreResult<()> {
    let mut insert = conn.prepare_cached(
        "INSERT OR IGNORE INTO org_members (tenant, org_id, period_start, kind, member_id, period_end)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for (kind, id) in members {
        insert.execute(params![
            tenant.as_str(),
            org.as_str(),
            ts(&period.start),
            kind,
            id,
            ts(&period.end)
        ])?;
    }
    conn.prepare_cached(
        "DELETE FROM org_members WHERE rowid IN
             (SELECT rowid FROM org_members WHERE period_end < ?1 LIMIT ?2)",
    )?
    .execute(params![ts(&(period.start - COUNTER_GRACE)), PRUNE_BATCH])?;
    Ok(())
}

fn read(
    conn: &Connection,
    tenant: &TenantId,
    org: &OrgId,
    start: DateTime<Utc>,
) -> StoreResult<OrgMembers> {
    let rows: Vec<(String, String)> = conn
        .prepare_cached(
            "SELECT kind, member_id FROM org_members
             WHERE tenant = ?1 AND org_id = ?2 AND period_start = ?3",
        )?
        .query_map(params![tenant.as_str(), org.as_str(), ts(&start)], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<Result<_, _>>()?;
    let mut out = OrgMembers::default();
    for (kind, id) in rows {
        let bad = |e: crate::domain::IdError| StoreError::Corrupt(format!("org member: {e}"));
        match kind.as_str() {
            "user" => {
                out.users.insert(UserId::parse(id).map_err(bad)?);
            }
            _ => {
                out.teams.insert(TeamId::parse(id).map_err(bad)?);
            }
        }
    }
    Ok(out)
}

#[async_trait]
impl OrgMembersStore for SqliteStore {
    async fn note_org_members(
        &self,
        tenant: &TenantId,
        org: &OrgId,
        period: &Period,
        users: &[UserId],
        teams: &[TeamId],
    ) -> StoreResult<()> {
        let members: Vec<(&str, String)> = users
            .iter()
            .map(|u| ("user", u.to_string()))
            .chain(teams.iter().map(|t| ("team", t.to_string())))
            .collect();
        if members.is_empty() {
            return Ok(());
        }
        let (tenant, org, period) = (tenant.clone(), org.clone(), *period);
        self.write(move |c| note(c, &tenant, &org, &period, &members))
            .await
    }

    async fn org_members(
        &self,
        tenant: &TenantId,
        org: &OrgId,
        period_start: DateTime<Utc>,
    ) -> StoreResult<OrgMembers> {
        let (tenant, org) = (tenant.clone(), org.clone());
        self.read(move |c| read(c, &tenant, &org, period_start))
            .await
    }
}
