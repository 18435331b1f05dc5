//! `meter migrate` on DynamoDB, issue 19's part: grants put before the due index existed
//! (their items without `OUTBOX_PK`/`OUTBOX_SK`) are not listed as due; once migrated, an
//! expiring grant is due at its expiry and a voided one a week after its void, exactly as
//! a grant put by this build; a grant with nothing to be due for stays unindexed; racing
//! and repeated runs index each grant once. A wallet head put before the tenant's wallet
//! listing is listed once, too.

use chrono::{Duration, TimeZone, Utc};
use meter_core::credits::{GrantKind, GrantRequest, Subscriber};
use meter_core::domain::{GrantId, UserId};
use meter_core::store::{
    GrantInsert, GrantUpkeepStore, InvoiceStore, WalletStore, WalletViewsStore,
};
use meter_core::testing::{dec, tenant};

use super::counted_store;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_put_before_the_due_index_get_their_due_keys_once() {
    let (store, _counter, _) = counted_store().await;
    let store = std::sync::Arc::new(store);
    let (client, table) = (store.client().clone(), store.table().to_owned());
    let t = tenant();
    let gus = Subscriber::User(UserId::parse("gus").unwrap());
    let created = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
    let expiry = Utc.with_ymd_and_hms(2025, 6, 1, 0, 0, 0).unwrap();
    let put = |id: &str, expires| {
        let mut g = GrantRequest::new(dec("5"), GrantKind::Promo)
            .into_grant(GrantId::parse(id).unwrap(), created)
            .unwrap();
        g.expires_at = expires;
        g
    };
    for g in [
        put("expiring", Some(expiry)),
        put("voided", None),
        put("forever", None),
    ] {
        assert!(matches!(
            store.insert_grant(&t, &gus, &g).await.unwrap(),
            GrantInsert::Created(_)
        ));
    }
    let voided_at = Utc.with_ymd_and_hms(2025, 2, 1, 0, 0, 0).unwrap();
    store
        .void_grant(&t, &gus, &GrantId::parse("voided").unwrap(), voided_at)
        .await
        .unwrap();

    // Arrange the previous layout: no due keys on any of them.
    let wallet_pk = format!("T#{t}#WALLET#user#gus");
    for id in ["expiring", "voided", "forever"] {
        client
            .update_item()
            .table_name(&table)
            .key(
                "PK",
                aws_sdk_dynamodb::types::AttributeValue::S(wallet_pk.clone()),
            )
            .key(
                "SK",
                aws_sdk_dynamodb::types::AttributeValue::S(format!("G#{id}")),
            )
            .update_expression("REMOVE OUTBOX_PK, OUTBOX_SK")
            .condition_expression("attribute_exists(PK)")
            .send()
            .await
            .unwrap_or_else(|e| panic!("{id}: {e:?}"));
    }
    // ... and a head put before the tenant's wallet listing.
    client
        .update_item()
        .table_name(&table)
        .key(
            "PK",
            aws_sdk_dynamodb::types::AttributeValue::S(wallet_pk.clone()),
        )
        .key(
            "SK",
            aws_sdk_dynamodb::types::AttributeValue::S("WALLET".to_owned()),
        )
        .update_expression("REMOVE SUBS_PK, SUBS_SK")
        .condition_expression("attribute_exists(PK)")
        .send()
        .await
        .unwrap();
    let far = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
    assert!(
        store.due_grants(far, 100).await.unwrap().is_empty(),
        "before: the index does not list them"
    );
    let listed_wallets = || async {
        store
            .list_wallets(&t, None, 100)
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|w| w.wallet)
            .collect::<Vec<_>>()
    };
    assert!(listed_wallets().await.is_empty(), "before: not listed");

    // Two racing runs, then one more with the job cursor reset: each grant indexed once.
    let (a, b) = tokio::join!(store.migrate(), store.migrate());
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.grants_indexed + b.grants_indexed, 2, "{a:?} {b:?}");
    assert_eq!(a.wallets_listed + b.wallets_listed, 1, "{a:?} {b:?}");
    assert_eq!(listed_wallets().await, vec![gus.clone()]);
    let due = store.due_grants(far, 100).await.unwrap();
    let mut listed: Vec<(String, chrono::DateTime<Utc>)> = due
        .iter()
        .map(|d| (d.grant.id.to_string(), d.due_at))
        .collect();
    listed.sort();
    assert_eq!(
        listed,
        vec![
            ("expiring".to_owned(), expiry),
            ("voided".to_owned(), voided_at + Duration::days(7)),
        ]
    );
    assert!(due.iter().all(|d| d.wallet == gus && d.tenant == t));
    // Not a nanosecond early.
    let early = store
        .due_grants(expiry - Duration::nanoseconds(1), 100)
        .await
        .unwrap();
    assert!(
        early.iter().all(|d| d.grant.id.as_str() == "voided"),
        "{early:?}"
    );

    let again = store.migrate().await.unwrap();
    assert!(again.already_done, "{again:?}");
    assert_eq!(again.grants_indexed, 0);
    store
        .put_job_cursor(meter_core::store::dynamo::migrate_grants::JOB, None)
        .await
        .unwrap();
    let rerun = store.migrate().await.unwrap();
    assert_eq!(rerun.grants_indexed, 0, "{rerun:?}");
    assert_eq!(rerun.wallets_listed, 0, "{rerun:?}");
    assert_eq!(store.due_grants(far, 100).await.unwrap().len(), 2);

    // The aggregation's step can now record the expiry.
    let expiring = due
        .iter()
        .find(|d| d.grant.id.as_str() == "expiring")
        .unwrap();
    assert!(store
        .record_grant_expiry(&t, &gus, &expiring.grant)
        .await
        .unwrap());
}
