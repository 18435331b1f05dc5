//! The org member directory (`store::OrgMembersStore`): per (org, period) one partition
//! `PK = T#<tenant>#ORGM#<org id>#<period start>` of up to 16 items `SK = M#<bucket>`
//! (a member's bucket is a hash of its id, so no item nears DynamoDB's 400 KB even for
//! tens of thousands of members), each with the string sets `users` and `teams` (a team
//! is noted in the bucket of the user who named it) and a `ttl` a day after the period's
//! end. A note is one `UpdateItem` per bucket touched (`ADD users :ss, teams :ss`:
//! idempotent; an ingest batch is one user's, so one request); a read is one `Query` of
//! the partition. An ingest batch does not send that `UpdateItem`: recording notes each
//! event's user and team in its own `TransactWriteItems` ([`member_note`],
//! [`Notes::updates`]; issue 18, SPEC §12).

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, SecondsFormat, Utc};

use super::codec::{n, Item};
use super::expressions::Update;
use super::{layout, DynamoStore};
use crate::budgets::{CounterKey, CounterWrite, Scope, Window};
use crate::domain::{OrgId, TeamId, TenantId, UsageEvent, UserId};
use crate::periods::Period;
use crate::store::{OrgMembers, OrgMembersStore, StoreError, StoreResult, COUNTER_GRACE};

const BUCKETS: u32 = 16;
const USERS: &str = "users";
const TEAMS: &str = "teams";

fn pk(tenant: &TenantId, org: &OrgId, start: DateTime<Utc>) -> String {
    format!(
        "T#{tenant}#ORGM#{org}#{}",
        start.to_rfc3339_opts(SecondsFormat::Secs, true)
    )
}

/// FNV-1a of the id, into one of [`BUCKETS`].
fn bucket(id: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in id.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("M#{:02}", h % BUCKETS)
}

fn strings(item: &Item, attr: &str) -> Vec<String> {
    match item.get(attr) {
        Some(AttributeValue::Ss(v)) => v.clone(),
        _ => Vec::new(),
    }
}

/// One event's directory note: taken from its write of the member counter of the org's
/// `period` window (every event naming an org has one, service::org_reads), whose window
/// is the org's period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct MemberNote {
    org: OrgId,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    user: UserId,
    team: Option<TeamId>,
}

impl MemberNote {
    /// The directory item the note goes to (a key of the transaction's item count).
    pub(super) fn item(&self, tenant: &TenantId) -> (String, String) {
        (
            pk(tenant, &self.org, self.start),
            bucket(self.user.as_str()),
        )
    }
}

/// The directory note of an event with its counter writes, if it names an org.
pub(super) fn member_note(e: &UsageEvent, writes: &[CounterWrite]) -> Option<MemberNote> {
    let org = e.org_id.as_ref()?;
    writes.iter().find_map(|w| match &w.counter {
        CounterKey::Member {
            scope: Scope::Org { org_id },
            user,
            window: Window::Period,
            window_start,
        } if org_id == org && user == &e.user => Some(MemberNote {
            org: org.clone(),
            start: *window_start,
            end: w.window_end,
            user: e.user.clone(),
            team: e.team_id.clone(),
        }),
        _ => None,
    })
}

/// What one directory item of a transaction gets: users, teams, the latest `ttl`.
#[derive(Debug, Default)]
struct ItemNotes {
    users: Vec<String>,
    teams: Vec<String>,
    ttl: i64,
    /// The item's entry in the tenant's org listing (tenant_orgs::listed).
    listing: Option<(String, String)>,
}

/// The directory notes of one transaction, merged per item (`PK`, `SK`).
#[derive(Debug, Default)]
pub(super) struct Notes(BTreeMap<(String, String), ItemNotes>);

impl Notes {
    pub(super) fn add(&mut self, tenant: &TenantId, note: MemberNote) {
        let ttl = (note.end + COUNTER_GRACE).timestamp();
        let item = note.item(tenant);
        let listing = super::tenant_orgs::listing_keys(tenant, &note.org, note.start, &item.1);
        let slot = self.0.entry(item).or_default();
        slot.listing = Some(listing);
        if !slot.users.contains(&note.user.to_string()) {
            slot.users.push(note.user.to_string());
        }
        if let Some(t) = note.team {
            if !slot.teams.contains(&t.to_string()) {
                slot.teams.push(t.to_string());
            }
        }
        slot.ttl = slot.ttl.max(ttl);
    }

    /// One `Update` per directory item (`ADD users :ss, teams :ss SET ttl`: idempotent,
    /// no condition), for the events' transaction.
    pub(super) fn updates(&self) -> Vec<(String, String, Update)> {
        self.0
            .iter()
            .map(|((pk, sk), notes)| {
                let mut u = Update::new();
                u.add(USERS, AttributeValue::Ss(notes.users.clone()));
                if !notes.teams.is_empty() {
                    u.add(TEAMS, AttributeValue::Ss(notes.teams.clone()));
                }
                u.set(layout::TTL, n(notes.ttl));
                if let Some((lpk, lsk)) = &notes.listing {
                    super::tenant_orgs::listed(&mut u, lpk, lsk);
                }
                (pk.clone(), sk.clone(), u)
            })
            .collect()
    }
}

#[async_trait]
impl OrgMembersStore for DynamoStore {
    fn notes_members_when_recording(&self) -> bool {
        true
    }

    async fn note_org_members(
        &self,
        tenant: &TenantId,
        org: &OrgId,
        period: &Period,
        users: &[UserId],
        teams: &[TeamId],
    ) -> StoreResult<()> {
        let mut by_bucket: BTreeMap<String, (Vec<String>, Vec<String>)> = BTreeMap::new();
        for u in users {
            by_bucket
                .entry(bucket(u.as_str()))
                .or_default()
                .0
                .push(u.to_string());
        }
        // Teams go with the users who named them (in the first user's bucket): a batch of
        // one user is then one request; a team in several buckets reads back once.
        let team_bucket = users
            .first()
            .map_or_else(|| bucket(""), |u| bucket(u.as_str()));
        for t in teams {
            by_bucket
                .entry(team_bucket.clone())
                .or_default()
                .1
                .push(t.to_string());
        }
        let ttl = (period.end + COUNTER_GRACE).timestamp();
        for (sk, (users, teams)) in by_bucket {
            let mut u = Update::new();
            if !users.is_empty() {
                u.add(USERS, AttributeValue::Ss(users));
            }
            if !teams.is_empty() {
                u.add(TEAMS, AttributeValue::Ss(teams));
            }
            u.set(layout::TTL, n(ttl));
            let (lpk, lsk) = super::tenant_orgs::listing_keys(tenant, org, period.start, &sk);
            super::tenant_orgs::listed(&mut u, &lpk, &lsk);
            // No condition: a set insertion cannot fail.
            let _ = self
                .update(pk(tenant, org, period.start), &sk, &u, false)
                .await?;
        }
        Ok(())
    }

    async fn org_members(
        &self,
        tenant: &TenantId,
        org: &OrgId,
        period_start: DateTime<Utc>,
    ) -> StoreResult<OrgMembers> {
        let items = self
            .query_prefix(pk(tenant, org, period_start), "M#", true)
            .await?;
        let bad = |e: crate::domain::IdError| StoreError::Corrupt(format!("org member: {e}"));
        let mut out = OrgMembers::default();
        for item in &items {
            for u in strings(item, USERS) {
                out.users.insert(UserId::parse(u).map_err(bad)?);
            }
            for t in strings(item, TEAMS) {
                out.teams.insert(TeamId::parse(t).map_err(bad)?);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{at, event};

    fn member_write(
        org: &str,
        user: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> CounterWrite {
        CounterWrite {
            counter: CounterKey::Member {
                scope: Scope::Org {
                    org_id: OrgId::parse(org).unwrap(),
                },
                user: UserId::parse(user).unwrap(),
                window: Window::Period,
                window_start: start,
            },
            window_end: end,
            provider: crate::domain::ProviderId::parse("gemini").unwrap(),
            add: Default::default(),
            held: Default::default(),
            guards: Vec::new(),
        }
    }

    #[test]
    fn an_events_note_comes_from_its_member_counter_of_the_orgs_period_and_merges_per_item() {
        let tenant = TenantId::parse("acme-co").unwrap();
        let ann = UserId::parse("ann").unwrap();
        let (start, end) = (at(2025, 3, 1, 0), at(2025, 4, 1, 0));
        let mut e = event(&tenant, &ann, "e1", 10, "0.01");
        // No org on the event: no note, whatever the writes.
        assert_eq!(
            member_note(&e, &[member_write("acme", "ann", start, end)]),
            None
        );
        e.org_id = Some(OrgId::parse("acme").unwrap());
        e.team_id = Some(TeamId::parse("red").unwrap());
        // Another org's or another user's member counter is not the note's source.
        assert_eq!(
            member_note(&e, &[member_write("other", "ann", start, end)]),
            None
        );
        assert_eq!(
            member_note(&e, &[member_write("acme", "bob", start, end)]),
            None
        );
        let note = member_note(&e, &[member_write("acme", "ann", start, end)]).unwrap();
        assert_eq!(note.item(&tenant).1, bucket("ann"));

        let mut notes = Notes::default();
        notes.add(&tenant, note.clone());
        notes.add(&tenant, note);
        let updates = notes.updates();
        assert_eq!(
            updates.len(),
            1,
            "the same user twice: one item, one update"
        );
        let (pk, sk, u) = &updates[0];
        assert_eq!(pk, "T#acme-co#ORGM#acme#2025-03-01T00:00:00Z");
        assert_eq!(sk, &bucket("ann"));
        let expr = u.update_expression();
        assert!(expr.contains("ADD") && expr.contains("SET"), "{expr}");
    }

    #[test]
    fn buckets_are_stable_and_bounded() {
        assert_eq!(bucket("ann"), bucket("ann"));
        let all: std::collections::BTreeSet<String> =
            (0..1000).map(|i| bucket(&format!("user-{i}"))).collect();
        assert_eq!(all.len(), BUCKETS as usize);
    }
}
