//! `meter migrate` on DynamoDB, issue 18's part: a budget kept in the previous layout (an
//! item `B#<id>` in its scope's partition) and a counter item of one window
//! (`BC#<counter key>`) are read as before the migration (the budget through the scope's
//! count, the counter not: it is folded by the migration), and once migrated the budget
//! is on its scope's item, the counter's usage on its scope's counter item under its
//! window, the old items are gone, and a second run does nothing.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{Duration, DurationRound, Utc};
use meter_core::budgets::{AppliesTo, Budget, CounterKey, Mode, Scope, Window};
use meter_core::domain::{BudgetId, OrgId};
use meter_core::limits::{Limits, Metric};
use meter_core::store::{BudgetCounterStore, BudgetPut, BudgetStore};
use meter_core::testing::{dec, provider, tenant};

use super::counted_store;

type Item = HashMap<String, AttributeValue>;

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

fn n(v: &str) -> AttributeValue {
    AttributeValue::N(v.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budgets_and_counters_of_the_previous_layout_are_folded_once() {
    let (store, _counter, _) = counted_store().await;
    let client = store.client().clone();
    let table = store.table().to_owned();
    let t = tenant();
    let acme = Scope::Org {
        org_id: OrgId::parse("acme").unwrap(),
    };
    let budget = Budget {
        id: BudgetId::parse("acme-daily").unwrap(),
        scope: acme.clone(),
        applies_to: AppliesTo::Scope,
        limits: Limits([(Metric::CostUsd, dec("5"))].into()),
        window: Window::Day,
        mode: Mode::Hard,
        alert_thresholds: vec![80, 100],
        version: 0,
        updated_at: Utc::now(),
    };
    let BudgetPut::Created(stored) = store.put_budget(&t, &budget).await.unwrap() else {
        panic!("created");
    };

    // Arrange the previous layout: the budget as an item of the scope's partition (the
    // scope item keeps only the count), and a counter item of today's day window.
    let scope_pk = format!("T#{t}#BUDGETS#org#acme");
    let scope_item = client
        .get_item()
        .table_name(&table)
        .key("PK", s(&scope_pk))
        .key("SK", s("COUNT"))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let AttributeValue::M(fields) = scope_item["b|acme-daily"].clone() else {
        panic!("a map");
    };
    let mut old: Item = fields;
    old.insert("PK".into(), s(&scope_pk));
    old.insert("SK".into(), s("B#acme-daily"));
    old.insert("scope_key".into(), s("org#acme"));
    client
        .put_item()
        .table_name(&table)
        .set_item(Some(old))
        .send()
        .await
        .unwrap();
    client
        .update_item()
        .table_name(&table)
        .key("PK", s(&scope_pk))
        .key("SK", s("COUNT"))
        .update_expression("REMOVE #b")
        .expression_attribute_names("#b", "b|acme-daily")
        .send()
        .await
        .unwrap();
    let day = Utc::now().duration_trunc(Duration::days(1)).unwrap();
    let counter = CounterKey::Scope {
        scope: acme.clone(),
        window: Window::Day,
        window_start: day,
    };
    let ttl = (day + Duration::days(2)).timestamp().to_string();
    let mut old_counter: Item = HashMap::new();
    old_counter.insert("PK".into(), s(&format!("T#{t}#BC#{}", counter.key())));
    old_counter.insert("SK".into(), s("C"));
    for (name, v) in [
        ("c|gemini", "3"),
        ("c|*", "3"),
        ("$|gemini", "0.25"),
        ("$|*", "0.25"),
        ("hc|gemini", "1"),
        ("ttl", ttl.as_str()),
    ] {
        old_counter.insert(name.into(), n(v));
    }
    client
        .put_item()
        .table_name(&table)
        .set_item(Some(old_counter))
        .send()
        .await
        .unwrap();

    // Before: the budget is still read (the count says one more than the item holds).
    assert_eq!(
        store.list_budgets(&t, &acme).await.unwrap(),
        vec![stored.clone()]
    );

    let first = store.migrate().await.unwrap();
    assert_eq!(
        (first.budgets_folded, first.counters_folded),
        (1, 1),
        "{first:?}"
    );

    // After: the same budget, the counter's usage under its window, old items gone.
    assert_eq!(store.list_budgets(&t, &acme).await.unwrap(), vec![stored]);
    let usage = store
        .get_budget_counters(&t, std::slice::from_ref(&counter))
        .await
        .unwrap();
    let gemini = &usage[0].by_provider[&provider("gemini")];
    assert_eq!(gemini.recorded.calls, 2);
    assert_eq!(gemini.held.calls, 1);
    assert_eq!(gemini.recorded.cost_usd, dec("0.25"));
    for (pk, sk) in [
        (scope_pk.clone(), "B#acme-daily".to_owned()),
        (format!("T#{t}#BC#{}", counter.key()), "C".to_owned()),
    ] {
        let left = client
            .get_item()
            .table_name(&table)
            .key("PK", s(&pk))
            .key("SK", s(&sk))
            .send()
            .await
            .unwrap()
            .item;
        assert!(left.is_none(), "{pk} / {sk} is gone");
    }

    let second = store.migrate().await.unwrap();
    assert!(second.already_done, "{second:?}");
    assert_eq!((second.budgets_folded, second.counters_folded), (0, 0));
    let again = store.get_budget_counters(&t, &[counter]).await.unwrap();
    assert_eq!(again, usage, "nothing added twice");
}
