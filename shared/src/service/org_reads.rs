//! Org reads (SPEC §10): `GET /org/{org_id}/usage`, `/members` and `/dashboard`, over the
//! org's current billing period (its subscription's, calendar months without one).
//!
//! Storage (docs/budgets.md "Org reads", docs/dynamodb.md "Org reads"): every event
//! naming an org adds, atomically with the event (as budget counters, exactly once per
//! event id), to three counters of the org's period: the org's pooled one (the counter
//! the org's plan and its `period` budgets count on), the member's within the org, and
//! the team's pooled one when it names a team. Which members and teams acted in a period
//! is kept in a small directory ([`crate::store::OrgMembersStore`]) so that the members
//! read knows which counters to read. Nothing scans events, and everything expires a day
//! after the period's end, so nothing grows with time.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;

use super::dashboard::PeriodView;
use super::{Caller, Error, Meter, Result};
use crate::budgets::{CallScopes, CounterKey, CounterWrite, Scope, Window};
use crate::domain::{money, OrgId, PlanName, ProviderId, TeamId, TenantId, UsageEvent, UserId};
use crate::limits::{self, MetricAmounts, Percentages, UsageStatus};
use crate::periods::Period;
use crate::usage::{PeriodUsage, Tally};

/// Most users on one page of the members read.
pub const MAX_MEMBERS_PAGE: usize = 100;
/// Users on a page of the members read when `limit` is not given.
pub const DEFAULT_MEMBERS_PAGE: usize = 50;
/// Users and teams the dashboard shows.
const DASHBOARD_TOP: usize = 5;

/// The users and teams each (org, period) of an ingest batch saw.
#[derive(Debug, Default)]
pub(super) struct MemberNotes(BTreeMap<(OrgId, Period), (BTreeSet<UserId>, BTreeSet<TeamId>)>);

impl MemberNotes {
    pub fn note(&mut self, call: &CallScopes, period: Period) {
        let Some(org) = call.org() else { return };
        let entry = self.0.entry((org.clone(), period)).or_default();
        entry.0.insert(call.user().clone());
        if let Some(team) = call.team() {
            entry.1.insert(team.clone());
        }
    }
}

fn org_scope(org: &OrgId) -> Scope {
    Scope::Org {
        org_id: org.clone(),
    }
}

/// The org's pooled counter of the period starting at `start`.
fn org_counter(org: &OrgId, start: DateTime<Utc>) -> CounterKey {
    CounterKey::Scope {
        scope: org_scope(org),
        window: Window::Period,
        window_start: start,
    }
}

fn member_counter(org: &OrgId, user: &UserId, start: DateTime<Utc>) -> CounterKey {
    CounterKey::Member {
        scope: org_scope(org),
        user: user.clone(),
        window: Window::Period,
        window_start: start,
    }
}

fn team_counter(org: &OrgId, team: &TeamId, start: DateTime<Utc>) -> CounterKey {
    CounterKey::Scope {
        scope: Scope::Team {
            org_id: org.clone(),
            team_id: team.clone(),
        },
        window: Window::Period,
        window_start: start,
    }
}

/// Adds to `writes` the org reads' counters of an event naming an org (in the org's
/// `period`): the org's pooled, the member's and the team's, each unless a budget already
/// writes it (the same key: one write, counted once).
pub(super) fn add_org_usage_writes(
    writes: &mut Vec<CounterWrite>,
    call: &CallScopes,
    period: Period,
    event: &UsageEvent,
) {
    let Some(org) = call.org() else { return };
    let tally = event.tally();
    if tally == Tally::default() {
        return;
    }
    let mut keys = vec![
        org_counter(org, period.start),
        member_counter(org, call.user(), period.start),
    ];
    if let Some(team) = call.team() {
        keys.push(team_counter(org, team, period.start));
    }
    for counter in keys {
        if writes.iter().any(|w| w.counter == counter) {
            continue;
        }
        writes.push(CounterWrite {
            counter,
            window_end: period.end,
            provider: event.provider.clone(),
            add: tally.clone(),
            held: Tally::default(),
            guards: Vec::new(),
        });
    }
}

/// One provider's usage in an org read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrgProviderUsage {
    pub calls: u64,
    pub tokens: u64,
    #[serde(serialize_with = "money::exact")]
    pub cost: Decimal,
}

/// The org's pooled usage of its current period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrgUsageView {
    pub org_id: OrgId,
    /// The org's plan (`null` without an active subscription: then no plan limits).
    pub plan: Option<PlanName>,
    pub period: PeriodView,
    pub total_calls: u64,
    pub total_tokens: u64,
    #[serde(serialize_with = "money::exact")]
    pub total_cost: Decimal,
    pub provider_breakdown: BTreeMap<ProviderId, OrgProviderUsage>,
    pub limits: MetricAmounts,
    pub usage_percentages: Percentages,
    pub usage_status: UsageStatus,
}

/// One user's or team's usage within the org in the period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberUsage {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team_id: Option<TeamId>,
    pub calls: u64,
    pub tokens: u64,
    #[serde(serialize_with = "money::exact")]
    pub cost_usd: Decimal,
}

/// A page of the org's members by cost, largest first, and every team by cost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrgMembersView {
    pub org_id: OrgId,
    pub period: PeriodView,
    pub users: Vec<MemberUsage>,
    pub teams: Vec<MemberUsage>,
    /// Users acting within the org this period (on every page).
    pub total_users: usize,
    pub next_cursor: Option<String>,
}

/// The org's dashboard: usage, projection, and the top users and teams.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrgDashboardView {
    pub org_id: OrgId,
    pub usage: OrgUsageView,
    /// Cost so far over the elapsed fraction of the period (once an hour has passed).
    #[serde(serialize_with = "money::normalized_option")]
    pub projected_cost: Option<Decimal>,
    pub top_users: Vec<MemberUsage>,
    pub top_teams: Vec<MemberUsage>,
    pub total_users: usize,
    pub invoices: usize,
}

fn totals(usage: &PeriodUsage) -> Tally {
    let mut t = Tally::default();
    for u in usage.by_provider.values() {
        t.calls = t.calls.saturating_add(u.recorded.calls);
        t.tokens = t.tokens.saturating_add(u.recorded.tokens);
        t.cost_usd += u.recorded.cost_usd;
    }
    t
}

fn member(user: Option<UserId>, team: Option<TeamId>, usage: &PeriodUsage) -> MemberUsage {
    let t = totals(usage);
    MemberUsage {
        user_id: user,
        team_id: team,
        calls: t.calls,
        tokens: t.tokens,
        cost_usd: t.cost_usd,
    }
}

/// Largest cost first, then most calls, then by id (a stable order for paging).
fn by_cost(list: &mut [MemberUsage]) {
    list.sort_by(|a, b| {
        b.cost_usd
            .cmp(&a.cost_usd)
            .then(b.calls.cmp(&a.calls))
            .then(a.user_id.cmp(&b.user_id))
            .then(a.team_id.cmp(&b.team_id))
    });
}

/// Every user and team of the org's period with usage, by cost.
struct Ranked {
    users: Vec<MemberUsage>,
    teams: Vec<MemberUsage>,
}

impl Meter {
    /// Notes who acted within each org period of an ingest batch (before the events are
    /// recorded: a name whose events are not recorded reads as zero usage and is left out).
    pub(super) async fn note_members(&self, tenant: &TenantId, notes: MemberNotes) -> Result<()> {
        for ((org, period), (users, teams)) in notes.0 {
            let users: Vec<UserId> = users.into_iter().collect();
            let teams: Vec<TeamId> = teams.into_iter().collect();
            self.store
                .note_org_members(tenant, &org, &period, &users, &teams)
                .await?;
        }
        Ok(())
    }

    /// The org's current period at `now`, and its plan when subscribed.
    pub(super) async fn org_period(
        &self,
        tenant: &TenantId,
        org: &OrgId,
        now: DateTime<Utc>,
    ) -> Result<(Period, Option<super::orgs::OrgPlan>)> {
        let plan = self.active_org_plan(tenant, org).await?;
        let period = Self::org_schedule(plan.as_ref())
            .period_containing(now)
            .map_err(|e| {
                tracing::error!(error = %e, "the org's period cannot be computed");
                Error::Internal
            })?;
        Ok((period, plan))
    }

    async fn org_usage_at(
        &self,
        tenant: &TenantId,
        org: &OrgId,
        now: DateTime<Utc>,
    ) -> Result<(OrgUsageView, Period)> {
        let (period, plan) = self.org_period(tenant, org, now).await?;
        let usage = self
            .store
            .get_budget_counters(tenant, &[org_counter(org, period.start)])
            .await?
            .into_iter()
            .next()
            .unwrap_or_default();
        let t = totals(&usage);
        let limits = plan
            .as_ref()
            .map(|p| p.plan.limits.clone())
            .unwrap_or_default();
        let view = OrgUsageView {
            org_id: org.clone(),
            plan: plan.as_ref().map(|p| p.plan.name.clone()),
            period: (&period).into(),
            total_calls: t.calls,
            total_tokens: t.tokens,
            total_cost: t.cost_usd,
            provider_breakdown: usage
                .by_provider
                .iter()
                .map(|(p, u)| {
                    (
                        p.clone(),
                        OrgProviderUsage {
                            calls: u.recorded.calls,
                            tokens: u.recorded.tokens,
                            cost: u.recorded.cost_usd,
                        },
                    )
                })
                .collect(),
            limits: MetricAmounts(limits.0.clone()),
            usage_percentages: Percentages(limits::percentages(&limits, &usage)),
            usage_status: limits::usage_status(&limits, &usage),
        };
        Ok((view, period))
    }

    /// GET `/org/{org_id}/usage`.
    pub async fn org_usage(&self, caller: &Caller, org: &OrgId) -> Result<OrgUsageView> {
        let now = self.now();
        Ok(self.org_usage_at(&caller.tenant, org, now).await?.0)
    }

    async fn ranked(&self, tenant: &TenantId, org: &OrgId, period: &Period) -> Result<Ranked> {
        let dir = self.store.org_members(tenant, org, period.start).await?;
        let users: Vec<UserId> = dir.users.into_iter().collect();
        let teams: Vec<TeamId> = dir.teams.into_iter().collect();
        let keys: Vec<CounterKey> = users
            .iter()
            .map(|u| member_counter(org, u, period.start))
            .chain(teams.iter().map(|t| team_counter(org, t, period.start)))
            .collect();
        let read = if keys.is_empty() {
            Vec::new()
        } else {
            self.store.get_budget_counters(tenant, &keys).await?
        };
        let (user_usage, team_usage) = read.split_at(users.len().min(read.len()));
        let mut ranked_users: Vec<MemberUsage> = users
            .into_iter()
            .zip(user_usage)
            .map(|(u, usage)| member(Some(u), None, usage))
            .filter(|m| m.calls > 0 || m.tokens > 0 || !m.cost_usd.is_zero())
            .collect();
        let mut ranked_teams: Vec<MemberUsage> = teams
            .into_iter()
            .zip(team_usage)
            .map(|(t, usage)| member(None, Some(t), usage))
            .filter(|m| m.calls > 0 || m.tokens > 0 || !m.cost_usd.is_zero())
            .collect();
        by_cost(&mut ranked_users);
        by_cost(&mut ranked_teams);
        Ok(Ranked {
            users: ranked_users,
            teams: ranked_teams,
        })
    }

    /// GET `/org/{org_id}/members`: this period's usage per user (a page of `limit`, from
    /// `cursor`) and per team, largest cost first.
    pub async fn org_members(
        &self,
        caller: &Caller,
        org: &OrgId,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<OrgMembersView> {
        let now = self.now();
        let tenant = &caller.tenant;
        let (period, _) = self.org_period(tenant, org, now).await?;
        let from = match cursor {
            None => 0,
            Some(c) => c
                .strip_prefix("o")
                .and_then(|n| n.parse::<usize>().ok())
                .ok_or_else(|| {
                    Error::bad_parameter("invalid_parameter", "`cursor` is not one this read gave")
                })?,
        };
        let ranked = self.ranked(tenant, org, &period).await?;
        let total_users = ranked.users.len();
        let users: Vec<MemberUsage> = ranked.users.into_iter().skip(from).take(limit).collect();
        let end = from.saturating_add(users.len());
        Ok(OrgMembersView {
            org_id: org.clone(),
            period: (&period).into(),
            users,
            teams: ranked.teams,
            total_users,
            next_cursor: (end < total_users).then(|| format!("o{end}")),
        })
    }

    /// GET `/org/{org_id}/dashboard`.
    pub async fn org_dashboard(&self, caller: &Caller, org: &OrgId) -> Result<OrgDashboardView> {
        let now = self.now();
        let tenant = &caller.tenant;
        let (usage, period) = self.org_usage_at(tenant, org, now).await?;
        let ranked = self.ranked(tenant, org, &period).await?;
        let invoices = self.store.list_org_invoices(tenant, org).await?.len();
        Ok(OrgDashboardView {
            org_id: org.clone(),
            projected_cost: limits::projected_cost(usage.total_cost, &period, now),
            usage,
            total_users: ranked.users.len(),
            top_users: ranked.users.into_iter().take(DASHBOARD_TOP).collect(),
            top_teams: ranked.teams.into_iter().take(DASHBOARD_TOP).collect(),
            invoices,
        })
    }
}
