//! Issue 18 (SPEC §12): the definitions an event batch's write needs, for every call one
//! user's events make, in one read (`CheckViewStore::read_definitions`): the user's state
//! as `get_user_limits` reads it, each named org's subscription, and the budgets of
//! exactly the named scopes, each once.

use std::sync::Arc;

use meter_core::budgets::{AppliesTo, Budget, CallScopes, Mode, Scope, Window};
use meter_core::domain::{BudgetId, OrgId, TeamId};
use meter_core::limits::{Limits, Metric};
use meter_core::store::Store;

use crate::fixtures::*;
use crate::orgs::org_sub;

fn budget(id: &str, scope: Scope) -> Budget {
    Budget {
        id: BudgetId::parse(id).unwrap(),
        scope,
        applies_to: AppliesTo::Scope,
        limits: Limits([(Metric::CostUsd, dec("5"))].into()),
        window: Window::Day,
        mode: Mode::Hard,
        alert_thresholds: vec![50],
        version: 0,
        updated_at: at(2025, 3, 10, 12),
    }
}

pub async fn the_definitions_of_several_calls_are_read_at_once(store: Arc<dyn Store>) {
    let t = tenant();
    let ann = user("ann");
    let (acme, beta, gamma) = (
        OrgId::parse("acme").unwrap(),
        OrgId::parse("beta").unwrap(),
        OrgId::parse("gamma").unwrap(),
    );
    let team = |org: &OrgId, id: &str| Scope::Team {
        org_id: org.clone(),
        team_id: TeamId::parse(id).unwrap(),
    };
    for b in [
        budget(
            "ann-day",
            Scope::User {
                user_id: ann.clone(),
            },
        ),
        budget(
            "acme-day",
            Scope::Org {
                org_id: acme.clone(),
            },
        ),
        budget("acme-red", team(&acme, "red")),
        budget("acme-blue", team(&acme, "blue")),
        budget("acme-green", team(&acme, "green")),
        budget(
            "beta-day",
            Scope::Org {
                org_id: beta.clone(),
            },
        ),
        budget(
            "gamma-day",
            Scope::Org {
                org_id: gamma.clone(),
            },
        ),
    ] {
        store.put_budget(&t, &b).await.unwrap();
    }
    let sub = org_sub(&t, &acme);
    store.put_org_subscription(&acme, &sub, None).await.unwrap();

    let call = |org: &OrgId, team: Option<&str>| {
        CallScopes::new(
            ann.clone(),
            Some(org.clone()),
            team.map(|t| TeamId::parse(t).unwrap()),
        )
        .unwrap()
    };
    let calls = [
        call(&acme, Some("red")),
        call(&acme, Some("blue")),
        call(&beta, None),
    ];
    let pick = |_: Option<&meter_core::domain::Subscription>| at(2025, 3, 1, 0);
    let defs = store
        .read_definitions(&t, &ann, &calls, &pick)
        .await
        .unwrap();
    let mut ids: Vec<&str> = defs.budgets.iter().map(|b| b.id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        ["acme-blue", "acme-day", "acme-red", "ann-day", "beta-day"],
        "each named scope's budgets once; not green's, not gamma's"
    );
    assert_eq!(defs.org_subscriptions.len(), 2);
    assert_eq!(defs.org_subscriptions[&acme].as_ref(), Some(&sub));
    assert_eq!(defs.org_subscriptions[&beta], None);
    assert_eq!(
        defs.user,
        store.get_user_limits(&t, &ann, &pick).await.unwrap()
    );

    // No call: the user's own scope.
    let own = store.read_definitions(&t, &ann, &[], &pick).await.unwrap();
    let ids: Vec<&str> = own.budgets.iter().map(|b| b.id.as_str()).collect();
    assert_eq!(ids, ["ann-day"]);
    assert!(own.org_subscriptions.is_empty());
    assert_eq!(own.user, defs.user);
}
