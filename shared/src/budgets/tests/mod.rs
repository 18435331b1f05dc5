//! Table-driven tests of scopes, windows, budgets, applicability and the decision.

use chrono::{DateTime, TimeZone, Utc};
use rust_decimal::Decimal;

use super::*;
use crate::domain::{OrgId, ProviderId, TeamId, UserId};
use crate::limits::{CallEstimate, Limits, Metric};
use crate::usage::{PeriodUsage, ProviderUsage, Tally};

mod applicability;
mod counting;
mod decisions;
mod scopes;
mod windows;

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
}

fn day(y: i32, mo: u32, d: u32) -> DateTime<Utc> {
    utc(y, mo, d, 0, 0, 0)
}

fn user(s: &str) -> UserId {
    UserId::parse(s).unwrap()
}

fn org(s: &str) -> OrgId {
    OrgId::parse(s).unwrap()
}

fn team(s: &str) -> TeamId {
    TeamId::parse(s).unwrap()
}

fn bid(s: &str) -> BudgetId {
    BudgetId::parse(s).unwrap()
}

fn user_scope(u: &str) -> Scope {
    Scope::User { user_id: user(u) }
}

fn org_scope(o: &str) -> Scope {
    Scope::Org { org_id: org(o) }
}

fn team_scope(o: &str, t: &str) -> Scope {
    Scope::Team {
        org_id: org(o),
        team_id: team(t),
    }
}

fn call_scopes(u: &str, o: Option<&str>, t: Option<&str>) -> CallScopes {
    CallScopes::new(user(u), o.map(org), t.map(team)).unwrap()
}

fn m(s: &str) -> Metric {
    Metric::parse(s).unwrap()
}

fn limits(entries: &[(&str, Decimal)]) -> Limits {
    Limits(entries.iter().map(|(k, v)| (m(k), *v)).collect())
}

/// A hard budget on `scope` over `window`, pooled.
fn budget(id: &str, scope: Scope, window: Window, entries: &[(&str, Decimal)]) -> Budget {
    Budget {
        id: bid(id),
        scope,
        applies_to: AppliesTo::Scope,
        limits: limits(entries),
        window,
        mode: Mode::Hard,
        alert_thresholds: vec![80, 90, 100],
        version: 1,
        updated_at: day(2025, 1, 1),
    }
}

/// A call to `provider` with its estimates.
fn call(provider: &str, tokens: u64, cost: Option<Decimal>) -> CallEstimate {
    CallEstimate {
        provider: ProviderId::parse(provider).unwrap(),
        estimated_tokens: tokens,
        estimated_cost: cost,
    }
}

/// Recorded usage of one provider.
fn recorded(provider: &str, calls: u64, tokens: u64, cost: Decimal) -> PeriodUsage {
    usage(provider, calls, tokens, cost, Tally::default())
}

fn usage(provider: &str, calls: u64, tokens: u64, cost: Decimal, held: Tally) -> PeriodUsage {
    let pu = ProviderUsage {
        recorded: Tally {
            calls,
            tokens,
            cost_usd: cost,
        },
        held,
        ..ProviderUsage::default()
    };
    PeriodUsage {
        by_provider: [(ProviderId::parse(provider).unwrap(), pu)]
            .into_iter()
            .collect(),
    }
}
