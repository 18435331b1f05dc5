//! Issue 18: the check's read (`CheckViewStore::read_check_view`): the user's limits as
//! `get_user_limits` reads them, the budgets of exactly the scopes the call names, and
//! the counters the picker names from what was read (zero when never written; a counter
//! of another window of the same scope is not mixed in).

use std::sync::Arc;

use meter_core::budgets::{
    AppliesTo, Budget, CallScopes, CounterKey, CounterWrite, Mode, Scope, Window,
};
use meter_core::domain::{BudgetId, OrgId, TeamId};
use meter_core::limits::{Limits, Metric};
use meter_core::store::Store;
use meter_core::usage::{PeriodUsage, Tally};

use crate::fixtures::*;

fn budget(id: &str, scope: Scope, applies_to: AppliesTo, window: Window) -> Budget {
    Budget {
        id: BudgetId::parse(id).unwrap(),
        scope,
        applies_to,
        limits: Limits([(Metric::CostUsd, dec("5"))].into()),
        window,
        mode: Mode::Hard,
        alert_thresholds: vec![100],
        version: 0,
        updated_at: at(2025, 3, 10, 12),
    }
}

fn cost(u: &PeriodUsage) -> rust_decimal::Decimal {
    u.by_provider.values().map(|p| p.recorded.cost_usd).sum()
}

pub async fn the_check_view_reads_the_named_scopes_budgets_and_the_picked_counters(
    store: Arc<dyn Store>,
) {
    let t = tenant();
    let ann = user("ann");
    let acme = OrgId::parse("acme").unwrap();
    let org = Scope::Org {
        org_id: acme.clone(),
    };
    let team = Scope::Team {
        org_id: acme.clone(),
        team_id: TeamId::parse("red").unwrap(),
    };
    let own = Scope::User {
        user_id: ann.clone(),
    };
    let other_team = Scope::Team {
        org_id: acme.clone(),
        team_id: TeamId::parse("blue").unwrap(),
    };
    for b in [
        budget("ann-day", own.clone(), AppliesTo::Scope, Window::Day),
        budget("acme-day", org.clone(), AppliesTo::Scope, Window::Day),
        budget(
            "red-members",
            team.clone(),
            AppliesTo::EachMember,
            Window::Month,
        ),
        budget("blue-day", other_team, AppliesTo::Scope, Window::Day),
    ] {
        store.put_budget(&t, &b).await.unwrap();
    }
    let day = at(2025, 3, 10, 0);
    let org_day = |start| CounterKey::Scope {
        scope: org.clone(),
        window: Window::Day,
        window_start: start,
    };
    let member_month = CounterKey::Member {
        scope: team.clone(),
        user: ann.clone(),
        window: Window::Month,
        window_start: at(2025, 3, 1, 0),
    };
    let write = |counter: CounterKey, end, usd: &str| CounterWrite {
        counter,
        window_end: end,
        provider: provider("gemini"),
        add: Tally {
            calls: 1,
            tokens: 0,
            cost_usd: dec(usd),
        },
        held: Tally::default(),
        guards: Vec::new(),
    };
    let next_day = day + chrono::Duration::days(1);
    assert!(store
        .add_to_budget_counters(
            &t,
            &[
                write(org_day(day - chrono::Duration::days(1)), day, "1.5"),
                write(org_day(day), next_day, "0.25"),
                write(member_month.clone(), at(2025, 4, 1, 0), "2"),
            ],
            day,
        )
        .await
        .unwrap());

    let call = CallScopes::new(
        ann.clone(),
        Some(acme.clone()),
        Some(TeamId::parse("red").unwrap()),
    )
    .unwrap();
    let own_day = CounterKey::Scope {
        scope: own.clone(),
        window: Window::Day,
        window_start: day,
    };
    let picked = vec![org_day(day), member_month.clone(), own_day.clone()];
    let seen = std::sync::Mutex::new(Vec::new());
    let view = store
        .read_check_view(
            &t,
            &call,
            false,
            &|_| at(2025, 3, 1, 0),
            &|_, org_sub, budgets| {
                assert!(org_sub.is_none());
                seen.lock()
                    .unwrap()
                    .extend(budgets.iter().map(|b| b.id.as_str().to_owned()));
                picked.clone()
            },
        )
        .await
        .unwrap();

    let mut ids: Vec<&str> = view.budgets.iter().map(|b| b.id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["acme-day", "ann-day", "red-members"], "not blue's");
    assert_eq!(
        seen.lock().unwrap().len(),
        3,
        "the picker saw what was read"
    );
    assert_eq!(
        view.user,
        store
            .get_user_limits(&t, &ann, &|_| at(2025, 3, 1, 0))
            .await
            .unwrap()
    );
    assert!(view.credit.is_none());
    assert_eq!(view.counters.len(), 3);
    assert_eq!(
        cost(&view.counters[&org_day(day)]),
        dec("0.25"),
        "today's only"
    );
    assert_eq!(cost(&view.counters[&member_month]), dec("2"));
    assert_eq!(view.counters[&own_day], PeriodUsage::default());
}
