//! `meter migrate` on DynamoDB, the late org events' part: an org invoiced by a build
//! before the late-event layout has no `OB` on its pooled counter item, so a late event
//! naming it would add to its closed period and never be billed. The migration gives it
//! `OB` from its latest invoice, once (racing and repeated runs set it once, never move it),
//! and a late event recorded afterwards is an adjustment on the org's next invoice.

use std::sync::Arc;

use meter_core::domain::{OrgId, TenantId};
use meter_core::store::{InvoiceStore, OrgBillingStore, OrgStore, Store};
use meter_core::testing::TestClock;
use meter_tests::TestApp;
use serde_json::json;

use super::counted_store;

const P: &str = "/api/subscription";

fn event(id: &str, at: &str) -> serde_json::Value {
    json!({"events": [{"event_id": id, "user_id": "ann", "org_id": "acme", "provider": "gemini",
           "model": "gemini-2.5-flash", "input_tokens": 1000, "timestamp": at}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orgs_invoiced_before_the_late_event_layout_get_their_billed_to_once() {
    let (store, _counter, _) = counted_store().await;
    let store = Arc::new(store);
    let (client, table) = (store.client().clone(), store.table().to_owned());
    let clock = TestClock::at("2026-03-10T12:00:00Z");
    let app = TestApp::setup()
        .store(store.clone() as Arc<dyn Store>)
        .clock(&clock)
        .spawn()
        .await;
    let t: TenantId = app.tenant.clone();
    let (acme, initech) = (
        OrgId::parse("acme").unwrap(),
        OrgId::parse("initech").unwrap(),
    );
    app.put(
        &format!("{P}/org/acme/subscription"),
        json!({"plan": "pro"}),
    )
    .await
    .assert_ok("org subscription");
    app.usage(event("m1", "2026-03-10T12:00:00Z"))
        .await
        .assert_ok("march");
    let at = "2026-04-01T00:20:00Z";
    clock.set(at.parse().unwrap());
    app.aggregate_at(at.parse().unwrap()).await;
    assert_eq!(store.list_org_invoices(&t, &acme).await.unwrap().len(), 1);
    // initech subscribes later: no invoice of it yet.
    app.put(
        &format!("{P}/org/initech/subscription"),
        json!({"plan": "pro"}),
    )
    .await
    .assert_ok("org subscription");
    let april = "2026-04-01T00:00:00Z".parse().unwrap();
    assert_eq!(
        store
            .org_billing_state(&t, &acme, april)
            .await
            .unwrap()
            .billed_to,
        Some(april)
    );

    // Arrange the previous layout: acme's close wrote no `OB`.
    client
        .update_item()
        .table_name(&table)
        .key(
            "PK",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("T#{t}#BC#org#acme")),
        )
        .key("SK", aws_sdk_dynamodb::types::AttributeValue::S("C".into()))
        .update_expression("REMOVE OB")
        .condition_expression("attribute_exists(OB)")
        .send()
        .await
        .unwrap();
    assert_eq!(
        store
            .org_billing_state(&t, &acme, april)
            .await
            .unwrap()
            .billed_to,
        None,
        "before"
    );

    // Two racing runs, then one with the job cursor reset: `OB` set once.
    let (a, b) = tokio::join!(store.migrate(), store.migrate());
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(
        a.orgs_billed_to_set + b.orgs_billed_to_set,
        1,
        "{a:?} {b:?}"
    );
    assert_eq!(
        store
            .org_billing_state(&t, &acme, april)
            .await
            .unwrap()
            .billed_to,
        Some(april)
    );
    assert_eq!(
        store
            .org_billing_state(&t, &initech, april)
            .await
            .unwrap()
            .billed_to,
        None,
        "an org never invoiced needs none"
    );
    let again = store.migrate().await.unwrap();
    assert!(again.already_done, "{again:?}");
    store
        .put_job_cursor(meter_core::store::dynamo::migrate_org_billed::JOB, None)
        .await
        .unwrap();
    let rerun = store.migrate().await.unwrap();
    assert_eq!(rerun.orgs_billed_to_set, 0, "{rerun:?}");

    // A late March event is now an adjustment of acme's next invoice.
    app.usage(event("m-late", "2026-03-31T23:00:00Z"))
        .await
        .assert_ok("late");
    let state = store.org_billing_state(&t, &acme, april).await.unwrap();
    let march = "2026-03-01T00:00:00Z".parse().unwrap();
    assert_eq!(state.adjustments[&march].events, 1, "{state:?}");
}
