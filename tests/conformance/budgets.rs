//! Budget definitions (`BudgetStore`): stored by id, listed by exact scope, a scope fixed
//! per id, at most `MAX_BUDGETS_PER_SCOPE` per scope and versions in order, whatever
//! puts and deletes race.

use std::collections::BTreeSet;
use std::sync::Arc;

use meter_core::budgets::{AppliesTo, Budget, Mode, Scope, Window};
use meter_core::domain::{BudgetId, OrgId, TeamId};
use meter_core::limits::{Limits, Metric};
use meter_core::store::{BudgetPut, Store, MAX_BUDGETS_PER_SCOPE};

use crate::fixtures::*;

fn org(o: &str) -> Scope {
    Scope::Org {
        org_id: OrgId::parse(o).unwrap(),
    }
}

fn team(o: &str, t: &str) -> Scope {
    Scope::Team {
        org_id: OrgId::parse(o).unwrap(),
        team_id: TeamId::parse(t).unwrap(),
    }
}

fn user_scope(u: &str) -> Scope {
    Scope::User { user_id: user(u) }
}

fn bid(id: &str) -> BudgetId {
    BudgetId::parse(id).unwrap()
}

/// A hard daily budget of `cost` USD and 60 gemini calls on `scope`.
fn budget(id: &str, scope: Scope, cost: &str) -> Budget {
    Budget {
        id: bid(id),
        scope,
        applies_to: AppliesTo::Scope,
        limits: Limits(
            [
                (Metric::CostUsd, dec(cost)),
                (Metric::parse("calls:gemini").unwrap(), dec("60")),
            ]
            .into(),
        ),
        window: Window::Day,
        mode: Mode::Hard,
        alert_thresholds: vec![50, 100],
        version: 0,
        updated_at: at(2025, 3, 10, 12),
    }
}

fn ids(budgets: &[Budget]) -> Vec<&str> {
    budgets.iter().map(|b| b.id.as_str()).collect()
}

pub async fn budgets_round_trip_exactly_with_versions_and_are_listed_by_exact_scope(
    store: Arc<dyn Store>,
) {
    let t = tenant();
    let mut daily = budget("acme-daily", org("acme"), "5.0000000000001");
    daily.applies_to = AppliesTo::EachMember;
    daily.window = Window::Period;
    let created = store.put_budget(&t, &daily).await.unwrap();
    let stored = Budget {
        version: 1,
        ..daily.clone()
    };
    assert_eq!(created, BudgetPut::Created(stored.clone()));
    assert_eq!(
        store.get_budget(&t, &daily.id).await.unwrap(),
        Some(stored.clone())
    );

    // Same id, same scope: replaced, version 2, exact decimals kept.
    let mut raised = daily.clone();
    raised.limits.0.insert(Metric::CostUsd, dec("20.50"));
    raised.mode = Mode::Soft;
    raised.updated_at = at(2025, 3, 11, 12);
    let replaced = store.put_budget(&t, &raised).await.unwrap();
    let stored2 = Budget {
        version: 2,
        ..raised.clone()
    };
    assert_eq!(replaced, BudgetPut::Replaced(stored2.clone()));
    let read = store.get_budget(&t, &daily.id).await.unwrap().unwrap();
    assert_eq!(read, stored2);
    assert_eq!(
        read.limits.get(&Metric::CostUsd).unwrap().to_string(),
        "20.50"
    );

    // Lists hold exactly their scope: an org's list none of its teams', a team's none of
    // another org's team with the same id.
    for (id, scope) in [
        ("red-minute", team("acme", "red")),
        ("blue-day", team("acme", "blue")),
        ("other-red", team("globex", "red")),
        ("alice-day", user_scope("alice")),
        ("b-acme-2", org("acme")),
    ] {
        let out = store.put_budget(&t, &budget(id, scope, "1")).await.unwrap();
        assert!(matches!(out, BudgetPut::Created(_)), "{id}: {out:?}");
    }
    let acme = store.list_budgets(&t, &org("acme")).await.unwrap();
    assert_eq!(ids(&acme), ["acme-daily", "b-acme-2"]);
    assert_eq!(acme[0], stored2);
    assert_eq!(
        ids(&store.list_budgets(&t, &team("acme", "red")).await.unwrap()),
        ["red-minute"]
    );
    assert_eq!(
        ids(&store
            .list_budgets(&t, &team("globex", "red"))
            .await
            .unwrap()),
        ["other-red"]
    );
    assert_eq!(
        ids(&store.list_budgets(&t, &user_scope("alice")).await.unwrap()),
        ["alice-day"]
    );
    assert!(store
        .list_budgets(&t, &user_scope("acme"))
        .await
        .unwrap()
        .is_empty());

    // Delete returns what it removed, once; the list follows.
    let deleted = store.delete_budget(&t, &daily.id).await.unwrap();
    assert_eq!(deleted, Some(stored2));
    assert_eq!(store.delete_budget(&t, &daily.id).await.unwrap(), None);
    assert_eq!(store.get_budget(&t, &daily.id).await.unwrap(), None);
    assert_eq!(
        ids(&store.list_budgets(&t, &org("acme")).await.unwrap()),
        ["b-acme-2"]
    );
    // A re-created id starts again at version 1.
    let again = store.put_budget(&t, &daily).await.unwrap();
    assert!(matches!(again, BudgetPut::Created(b) if b.version == 1));
}

pub async fn a_budgets_scope_is_fixed_for_its_id(store: Arc<dyn Store>) {
    let t = tenant();
    let b = budget("cap", team("acme", "red"), "5");
    store.put_budget(&t, &b).await.unwrap();
    for other in [org("acme"), team("acme", "blue"), user_scope("red")] {
        let moved = budget("cap", other, "9");
        assert_eq!(
            store.put_budget(&t, &moved).await.unwrap(),
            BudgetPut::ScopeMismatch {
                stored: team("acme", "red")
            }
        );
    }
    let kept = store.get_budget(&t, &b.id).await.unwrap().unwrap();
    assert_eq!(
        (kept.version, kept.limits.get(&Metric::CostUsd)),
        (1, Some(dec("5")))
    );
    assert!(store
        .list_budgets(&t, &org("acme"))
        .await
        .unwrap()
        .is_empty());
}

pub async fn a_scope_holds_at_most_the_cap_even_when_creations_race(store: Arc<dyn Store>) {
    let t = tenant();
    let scope = org("acme");
    for i in 0..MAX_BUDGETS_PER_SCOPE - 4 {
        let out = store
            .put_budget(&t, &budget(&format!("b{i:02}"), scope.clone(), "1"))
            .await
            .unwrap();
        assert!(matches!(out, BudgetPut::Created(_)), "{i}: {out:?}");
    }
    // 12 new ids race for the last 4 places.
    let racers = (0..12).map(|i| {
        let store = store.clone();
        let (t, b) = (
            t.clone(),
            budget(&format!("race{i:02}"), scope.clone(), "1"),
        );
        tokio::spawn(async move { store.put_budget(&t, &b).await.unwrap() })
    });
    let mut created = 0;
    for r in racers {
        match r.await.unwrap() {
            BudgetPut::Created(_) => created += 1,
            BudgetPut::ScopeFull => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(created, 4);
    let listed = store.list_budgets(&t, &scope).await.unwrap();
    assert_eq!(listed.len(), MAX_BUDGETS_PER_SCOPE);

    // Replacing one of a full scope's budgets is not a creation.
    let out = store
        .put_budget(&t, &budget("b00", scope.clone(), "7"))
        .await
        .unwrap();
    assert!(matches!(out, BudgetPut::Replaced(b) if b.version == 2));
    // Deleting frees a place for exactly one new id; another scope is unaffected.
    store.delete_budget(&t, &bid("b01")).await.unwrap().unwrap();
    let first = store
        .put_budget(&t, &budget("late-1", scope.clone(), "1"))
        .await;
    let second = store
        .put_budget(&t, &budget("late-2", scope.clone(), "1"))
        .await;
    assert!(matches!(first.unwrap(), BudgetPut::Created(_)));
    assert_eq!(second.unwrap(), BudgetPut::ScopeFull);
    let elsewhere = store
        .put_budget(&t, &budget("late-2", team("acme", "red"), "1"))
        .await
        .unwrap();
    assert!(matches!(elsewhere, BudgetPut::Created(_)));
}

pub async fn racing_puts_and_deletes_of_one_id_stay_consistent(store: Arc<dyn Store>) {
    let t = tenant();
    let id = "contended";
    // 10 puts on one scope, 10 on another, 5 deletes, all at once.
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = store.clone();
        let scope = if i % 2 == 0 {
            org("acme")
        } else {
            org("globex")
        };
        let b = budget(id, scope, &format!("{}", i + 1));
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            (Some(store.put_budget(&t, &b).await.unwrap()), None)
        }));
    }
    for _ in 0..5 {
        let store = store.clone();
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            (None, Some(store.delete_budget(&t, &bid(id)).await.unwrap()))
        }));
    }
    let mut versions = BTreeSet::new();
    for task in tasks {
        let (put, _deleted) = task.await.unwrap();
        match put {
            Some(BudgetPut::Created(b)) | Some(BudgetPut::Replaced(b)) => {
                versions.insert((b.scope.key(), b.version));
            }
            Some(BudgetPut::ScopeMismatch { .. }) | None => {}
            Some(BudgetPut::ScopeFull) => panic!("no scope is full"),
        }
    }
    assert!(!versions.is_empty());
    // Whatever won, the id item and the scope lists agree: the budget (if any) is listed
    // under its scope only, once.
    let stored = store.get_budget(&t, &bid(id)).await.unwrap();
    let acme = store.list_budgets(&t, &org("acme")).await.unwrap();
    let globex = store.list_budgets(&t, &org("globex")).await.unwrap();
    match &stored {
        Some(b) if b.scope == org("acme") => {
            assert_eq!(acme, vec![b.clone()]);
            assert!(globex.is_empty());
        }
        Some(b) => {
            assert_eq!(globex, vec![b.clone()]);
            assert!(acme.is_empty());
        }
        None => assert!(acme.is_empty() && globex.is_empty(), "{acme:?} {globex:?}"),
    }
    // And the counts agree with the lists: both scopes can still take 31 or 32 more.
    store.delete_budget(&t, &bid(id)).await.unwrap();
    for scope in [org("acme"), org("globex")] {
        for i in 0..MAX_BUDGETS_PER_SCOPE {
            let out = store
                .put_budget(
                    &t,
                    &budget(
                        &format!("fill{i:02}-{}", scope.key().len()),
                        scope.clone(),
                        "1",
                    ),
                )
                .await
                .unwrap();
            assert!(matches!(out, BudgetPut::Created(_)), "{scope} {i}: {out:?}");
        }
        let over = store
            .put_budget(&t, &budget("one-too-many", scope.clone(), "1"))
            .await
            .unwrap();
        assert_eq!(over, BudgetPut::ScopeFull);
    }
}

pub async fn budgets_are_isolated_by_tenant(store: Arc<dyn Store>) {
    let (a, b) = (tenant(), tenant());
    let budget = budget("shared-id", org("acme"), "5");
    store.put_budget(&a, &budget).await.unwrap();
    assert_eq!(store.get_budget(&b, &budget.id).await.unwrap(), None);
    assert!(store
        .list_budgets(&b, &org("acme"))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.delete_budget(&b, &budget.id).await.unwrap(), None);
    // The other tenant's same id on another scope is its own budget.
    let theirs = Budget {
        scope: user_scope("bob"),
        ..budget.clone()
    };
    assert!(matches!(
        store.put_budget(&b, &theirs).await.unwrap(),
        BudgetPut::Created(_)
    ));
    assert_eq!(
        store
            .get_budget(&a, &budget.id)
            .await
            .unwrap()
            .unwrap()
            .scope,
        org("acme")
    );
}
