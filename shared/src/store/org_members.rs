//! Who acted within an org in one of its periods: the users and the teams named on events
//! naming the org, so that the org's members read (`GET /org/{org_id}/members`) knows
//! which counters to read without scanning events. The usage itself is on budget
//! counters, written atomically with each event (service::org_reads); this directory only
//! names them, so a write is idempotent (a set insertion) and may run before the events'
//! own write: a name whose events were not recorded reads as zero usage and is left out.
//!
//! Bounded: one directory per (org, period), gone a day after the period's end (a TTL on
//! DynamoDB, pruning in SQLite), holding at most the org's members of that period.

use std::collections::BTreeSet;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreResult;
use crate::domain::{OrgId, TeamId, TenantId, UserId};
use crate::periods::Period;

/// The users and teams noted in one org period.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrgMembers {
    pub users: BTreeSet<UserId>,
    pub teams: BTreeSet<TeamId>,
}

#[async_trait]
pub trait OrgMembersStore: Send + Sync {
    /// Adds `users` and `teams` to the org's directory of `period` (idempotent).
    async fn note_org_members(
        &self,
        tenant: &TenantId,
        org: &OrgId,
        period: &Period,
        users: &[UserId],
        teams: &[TeamId],
    ) -> StoreResult<()>;

    /// Whether recording an event notes its user and team in the directory itself, in the
    /// event's own write (DynamoDB: one more item of its `TransactWriteItems`, SPEC §12),
    /// so that ingest need not call [`OrgMembersStore::note_org_members`] first. The note
    /// is taken from the event's member counter of the org's `period` window.
    fn notes_members_when_recording(&self) -> bool {
        false
    }

    /// The directory of the org's period starting at `period_start` (empty when none).
    async fn org_members(
        &self,
        tenant: &TenantId,
        org: &OrgId,
        period_start: DateTime<Utc>,
    ) -> StoreResult<OrgMembers>;
}
