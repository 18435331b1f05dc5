//! Scopes and budgets: limits beyond plans, on a user, an organisation or a
//! team, each counted over its own [`Window`].
//!
//! Pure rules, no I/O:
//! - this module: [`Scope`] and the scopes of a call ([`CallScopes`]), the [`Budget`]
//!   record and its validation;
//! - [`windows`]: the window (minute … period) containing an instant;
//! - [`applicable`]: which limits (plans and budgets) apply to a call, and which counter
//!   each counts against;
//! - [`decision`]: the check over every applicable limit, the reservation guards per
//!   counter, and which hard limits are reached.
//!
//! Every limit is judged by the one rule of [`limits::requirement`](crate::limits::requirement)
//! (through [`limits::decide`](crate::limits::decide) and
//! [`limits::guards_for`](crate::limits::guards_for)); this module only chooses which
//! limits apply, over which usage, and which answer to give.
//!
//! [`applicable`]: mod@applicable

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{BudgetId, OrgId, TeamId, UserId};
use crate::limits::{default_thresholds, validate_limits, validate_thresholds, LimitError, Limits};

pub mod applicable;
pub mod counting;
pub mod decision;
pub mod windows;

pub use applicable::{
    applicable, billed_elsewhere, budget_limits, Applicable, CounterKey, LimitSource, PlanInputs,
    Subscribed, ELSEWHERE,
};
pub use counting::{
    budget_counters, check_call_writes, event_writes, reservation_writes, CounterWrite,
};
pub use decision::{
    decide_all, hard_limit_reached, headroom, reservation_guards, CounterGuards, Denial, Headroom,
    LimitState, LimitedBy, Verdict,
};
pub use windows::Window;

#[cfg(test)]
mod tests;

/// Most budgets on one scope. It bounds what the check reads per scope (one DynamoDB
/// query of one partition, under 1 MB) and what a budget list returns.
pub const MAX_BUDGETS_PER_SCOPE: usize = 32;

/// Most metrics one budget limits (the metric names of plans, §5).
pub const MAX_LIMITS_PER_BUDGET: usize = 32;

/// Who usage belongs to. In JSON: `{"kind": "user", "user_id": …}`,
/// `{"kind": "org", "org_id": …}`, `{"kind": "team", "org_id": …, "team_id": …}`; unknown
/// kinds and unknown fields are refused. A team is always named with its org (team ids
/// are unique within their org only).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Scope {
    User { user_id: UserId },
    Org { org_id: OrgId },
    Team { org_id: OrgId, team_id: TeamId },
}

impl Scope {
    /// `user`, `org` or `team`.
    pub fn kind(&self) -> &'static str {
        match self {
            Scope::User { .. } => "user",
            Scope::Org { .. } => "org",
            Scope::Team { .. } => "team",
        }
    }

    /// The organisation of an org or team scope.
    pub fn org_id(&self) -> Option<&OrgId> {
        match self {
            Scope::User { .. } => None,
            Scope::Org { org_id } | Scope::Team { org_id, .. } => Some(org_id),
        }
    }

    /// A stable text naming the scope, distinct for distinct scopes: `user#<user_id>`,
    /// `org#<org_id>`, `team#<org_id>#<team_id>` (ids never contain `#`).
    pub fn key(&self) -> String {
        match self {
            Scope::User { user_id } => format!("user#{user_id}"),
            Scope::Org { org_id } => format!("org#{org_id}"),
            Scope::Team { org_id, team_id } => format!("team#{org_id}#{team_id}"),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key())
    }
}

/// Where a budget's alert comes from (SPEC §10: a budget alert carries its `budget_id` and
/// `scope`): the budget's scope and window. Stored with the alert; it names the scope in
/// the published message and decides the alert's retention ([`crate::alerts::retain_until`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetOrigin {
    pub scope: Scope,
    pub window: Window,
}

/// Why the scopes named on a call are not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    #[error("team_id needs org_id: team ids are unique within their org only")]
    TeamWithoutOrg,
}

impl ScopeError {
    /// The stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            ScopeError::TeamWithoutOrg => "team_without_org",
        }
    }

    /// The request field the error is about.
    pub fn field(&self) -> &'static str {
        match self {
            ScopeError::TeamWithoutOrg => "team_id",
        }
    }
}

/// The scopes a call names: always its user, optionally an org and one of its teams.
/// meter keeps no membership list: a call belongs to the scopes named on it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CallScopes {
    user: UserId,
    org: Option<OrgId>,
    team: Option<TeamId>,
}

impl CallScopes {
    /// The scopes of a call; a team without an org is refused.
    pub fn new(user: UserId, org: Option<OrgId>, team: Option<TeamId>) -> Result<Self, ScopeError> {
        if team.is_some() && org.is_none() {
            return Err(ScopeError::TeamWithoutOrg);
        }
        Ok(Self { user, org, team })
    }

    /// A call naming only its user.
    pub fn user_only(user: UserId) -> Self {
        Self {
            user,
            org: None,
            team: None,
        }
    }

    pub fn user(&self) -> &UserId {
        &self.user
    }

    pub fn org(&self) -> Option<&OrgId> {
        self.org.as_ref()
    }

    pub fn team(&self) -> Option<&TeamId> {
        self.team.as_ref()
    }

    /// The scopes named, in order: the user, the org (if named), the team (if named).
    pub fn scopes(&self) -> Vec<Scope> {
        let mut scopes = vec![Scope::User {
            user_id: self.user.clone(),
        }];
        if let Some(org_id) = &self.org {
            scopes.push(Scope::Org {
                org_id: org_id.clone(),
            });
            if let Some(team_id) = &self.team {
                scopes.push(Scope::Team {
                    org_id: org_id.clone(),
                    team_id: team_id.clone(),
                });
            }
        }
        scopes
    }

    /// Whether the call belongs to `scope` (a team belongs only with its own org).
    pub fn contains(&self, scope: &Scope) -> bool {
        match scope {
            Scope::User { user_id } => user_id == &self.user,
            Scope::Org { org_id } => self.org.as_ref() == Some(org_id),
            Scope::Team { org_id, team_id } => {
                self.org.as_ref() == Some(org_id) && self.team.as_ref() == Some(team_id)
            }
        }
    }
}

/// Whose usage a budget limits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppliesTo {
    /// The pooled usage of the scope (every call naming it).
    #[default]
    Scope,
    /// Each user acting within the scope, separately (org and team budgets only).
    EachMember,
}

/// What a budget does when its limit is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Checks deny and reservations guard.
    Hard,
    /// Never denies; alerts only.
    Soft,
}

/// A limit beyond plans on one scope, counted over a [`Window`].
///
/// In JSON the id is `budget_id`; `applies_to` defaults to `scope` and
/// `alert_thresholds` to `[80, 90, 100]`. `version` counts the budget's changes and
/// `updated_at` is when the last one was stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    #[serde(rename = "budget_id")]
    pub id: BudgetId,
    pub scope: Scope,
    #[serde(default)]
    pub applies_to: AppliesTo,
    pub limits: Limits,
    pub window: Window,
    pub mode: Mode,
    #[serde(default = "default_thresholds")]
    pub alert_thresholds: Vec<u8>,
    pub version: u64,
    pub updated_at: DateTime<Utc>,
}

/// Why a budget is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BudgetError {
    #[error("applies_to each_member needs an org or team scope")]
    EachMemberOnUser,
    #[error("a budget must limit at least one metric")]
    NoLimits,
    #[error("a budget limits at most {MAX_LIMITS_PER_BUDGET} metrics")]
    TooManyLimits,
    /// A limit or an alert threshold breaks the rules every plan and budget obeys.
    #[error(transparent)]
    Limits(#[from] LimitError),
}

impl BudgetError {
    /// The stable error code (the same codes as plans for limits and thresholds).
    pub fn code(&self) -> &'static str {
        match self {
            BudgetError::EachMemberOnUser => "each_member_on_user",
            BudgetError::NoLimits => "no_limits",
            BudgetError::TooManyLimits => "too_many_limits",
            BudgetError::Limits(e) => e.code(),
        }
    }

    /// The body field the error is about: `applies_to`, `limits` or `alert_thresholds`.
    pub fn field(&self) -> &'static str {
        match self {
            BudgetError::EachMemberOnUser => "applies_to",
            BudgetError::NoLimits | BudgetError::TooManyLimits => "limits",
            BudgetError::Limits(e) => e.field(),
        }
    }
}

impl Budget {
    /// Checks the budget's invariants: `each_member` only on org and team scopes; one to
    /// [`MAX_LIMITS_PER_BUDGET`] limits; limits and alert thresholds by the rules every plan obeys too
    /// ([`validate_limits`], [`validate_thresholds`]: `0..=10^15`, whole counts,
    /// thresholds `1..=100` ascending without repeats).
    pub fn validate(&self) -> Result<(), BudgetError> {
        if self.applies_to == AppliesTo::EachMember && matches!(self.scope, Scope::User { .. }) {
            return Err(BudgetError::EachMemberOnUser);
        }
        if self.limits.0.is_empty() {
            return Err(BudgetError::NoLimits);
        }
        if self.limits.0.len() > MAX_LIMITS_PER_BUDGET {
            return Err(BudgetError::TooManyLimits);
        }
        validate_limits(&self.limits)?;
        validate_thresholds(&self.alert_thresholds)?;
        Ok(())
    }

    /// Whether checks deny on this budget.
    pub fn is_hard(&self) -> bool {
        self.mode == Mode::Hard
    }
}
