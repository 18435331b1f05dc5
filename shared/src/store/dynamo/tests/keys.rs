//! API key items hold no piece of their key, and items written before key ids are
//! upgraded (scrubbed and listed by id), against the emulator.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Utc;

use crate::domain::{Role, TenantId};
use crate::store::dynamo::codec::{s, Item};
use crate::store::dynamo::{create_table, layout, DynamoStore, KeyUpgrade};
use crate::store::TenantStore;

/// Whether `text` holds any 10 consecutive characters of `secret`.
fn holds_a_piece_of(text: &str, secret: &str) -> bool {
    secret
        .as_bytes()
        .windows(10)
        .any(|w| text.contains(std::str::from_utf8(w).unwrap()))
}

/// Every item of the table.
async fn scan(store: &DynamoStore) -> Vec<Item> {
    store
        .client()
        .scan()
        .table_name(store.table())
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default()
}

#[tokio::test]
#[ignore = "needs the emulator: run through scripts/with-moto with --ignored"]
async fn key_items_hold_no_piece_of_the_key_and_old_items_are_upgraded_and_listed() {
    let config = crate::config::load_aws().await;
    let table = format!("meter-keys-{}", uuid::Uuid::new_v4().simple());
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&config), table.clone());
    create_table(store.client(), &table).await.unwrap();
    let t = TenantId::parse("acme").unwrap();
    let (old, new) = ("Operator-SET-Key-20c", "Another-Operator-KEY");

    // A key item of the build before key ids: `prefix` = its first 10 characters, no
    // listing item.
    let record = crate::auth::record_for(old, &t, Role::Admin, Utc::now());
    let mut item = crate::store::dynamo::codec::to_item(&record).unwrap();
    item.insert(layout::PK.into(), s(layout::api_key_pk(&record.hash)));
    item.insert(layout::SK.into(), s(layout::API_KEY_SK));
    item.insert("prefix".into(), s(&old[..10]));
    store
        .client()
        .put_item()
        .table_name(&table)
        .set_item(Some(item))
        .send()
        .await
        .unwrap();
    let added = crate::auth::record_for(new, &t, Role::Service, Utc::now());
    store.put_api_key(&added).await.unwrap();
    assert_eq!(store.list_api_keys(&t).await.unwrap(), vec![added.clone()]);

    let upgrade = store.upgrade_api_keys().await.unwrap();
    assert_eq!(
        upgrade,
        KeyUpgrade {
            found: 1,
            upgraded: 1
        }
    );
    assert_eq!(
        store.upgrade_api_keys().await.unwrap(),
        KeyUpgrade::default()
    );

    let items = scan(&store).await;
    let text = format!("{items:?}");
    assert!(!holds_a_piece_of(&text, old), "{text}");
    assert!(!holds_a_piece_of(&text, new), "{text}");
    let listing = items
        .iter()
        .filter(|i| {
            matches!(i.get(layout::SK), Some(AttributeValue::S(sk)) if sk.starts_with(layout::API_KEY_LISTING_PREFIX))
        })
        .count();
    assert_eq!(listing, 2, "one listing item per key");

    // Both listed and revoked by id; the listing item goes with the key item.
    let listed = store.list_api_keys(&t).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.contains(&record) && listed.contains(&added));
    let revoked = store.delete_api_key_by_id(&t, &record.id()).await.unwrap();
    assert_eq!(revoked, Some(record.clone()));
    assert_eq!(store.get_api_key(&record.hash).await.unwrap(), None);
    assert_eq!(store.list_api_keys(&t).await.unwrap(), vec![added.clone()]);
    store.delete_api_key(&added.hash).await.unwrap();
    let left = scan(&store).await;
    assert!(
        left.iter().all(
            |i| !matches!(i.get(layout::SK), Some(AttributeValue::S(sk)) if sk.starts_with("KEY"))
        ),
        "{left:?}"
    );
}
