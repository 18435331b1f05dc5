//! `meter doctor --table` on the DynamoDB emulator (scripts/with-moto): a healthy table, a
//! missing table, a table without TTL, a table without the GSIs, and the alert topic.

use std::process::{Command, Output};

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};
use meter_core::domain::TenantId;
use meter_core::service::bootstrap::bootstrap;
use meter_core::store::dynamo::{create_table, keys, DynamoStore};

fn table_name() -> String {
    assert!(
        std::env::var("AWS_ENDPOINT_URL").is_ok(),
        "run through scripts/with-moto (see README)"
    );
    format!("meter-doctor-{}", uuid::Uuid::new_v4().simple())
}

fn doctor(table: &str, topic: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_meter"));
    cmd.args(["doctor", "--table", table]);
    match topic {
        Some(arn) => cmd.env("ALERT_TOPIC_ARN", arn),
        None => cmd.env_remove("ALERT_TOPIC_ARN"),
    };
    cmd.output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The line of the check `name`.
fn line<'a>(text: &'a str, name: &str) -> &'a str {
    text.lines()
        .find(|l| l.split_whitespace().nth(1) == Some(name))
        .unwrap_or_else(|| panic!("no `{name}` line in:\n{text}"))
}

async fn bootstrapped_table() -> String {
    let table = table_name();
    let client = meter_core::config::dynamo_client().await;
    create_table(&client, &table).await.unwrap();
    let store = DynamoStore::new(client, &table);
    let tenant = TenantId::parse("default").unwrap();
    bootstrap(&store, &tenant, None, chrono::Utc::now())
        .await
        .unwrap();
    table
}

fn key(name: &str, kind: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .unwrap()
}

/// Creates `table` with the SDK: the keys, and the GSIs of `create_table` when `with_gsis`;
/// never the TTL.
async fn create_without_ttl(table: &str, with_gsis: bool) {
    let client = meter_core::config::dynamo_client().await;
    let mut request = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key(keys::PK, KeyType::Hash))
        .key_schema(key(keys::SK, KeyType::Range));
    let mut attributes = vec![keys::PK, keys::SK];
    if with_gsis {
        let indexes = [
            (
                keys::HOLDS_INDEX,
                keys::HOLDS_PK,
                keys::HOLDS_SK,
                ProjectionType::KeysOnly,
            ),
            (
                keys::USER_INDEX,
                keys::USER_PK,
                keys::USER_SK,
                ProjectionType::All,
            ),
            (
                keys::OUTBOX_INDEX,
                keys::OUTBOX_PK,
                keys::OUTBOX_SK,
                ProjectionType::All,
            ),
            (
                keys::SUBS_INDEX,
                keys::SUBS_PK,
                keys::SUBS_SK,
                ProjectionType::Include,
            ),
        ];
        for (name, pk, sk, projection) in indexes {
            let mut p = Projection::builder().projection_type(projection.clone());
            if projection == ProjectionType::Include {
                p = p.non_key_attributes(keys::SUB);
            }
            request = request.global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(name)
                    .key_schema(key(pk, KeyType::Hash))
                    .key_schema(key(sk, KeyType::Range))
                    .projection(p.build())
                    .build()
                    .unwrap(),
            );
            attributes.extend([pk, sk]);
        }
    }
    for name in attributes {
        request = request.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        );
    }
    request.send().await.unwrap();
}

#[tokio::test]
async fn a_bootstrapped_table_with_its_topic_passes_every_check() {
    let table = bootstrapped_table().await;
    let config = meter_core::config::load_aws().await;
    let topic = aws_sdk_sns::Client::new(&config)
        .create_topic()
        .name(format!("{table}-alerts"))
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();

    let out = doctor(&table, Some(&topic));
    let text = stdout(&out);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in [
        "table", "keys", "indexes", "ttl", "plans", "catalog", "clock", "topic",
    ] {
        assert!(line(&text, name).starts_with("ok "), "{text}");
    }
    assert!(line(&text, "ttl").contains("`ttl`"), "{text}");
    assert!(line(&text, "clock").contains("Date header"), "{text}");
}

#[tokio::test]
async fn a_missing_table_is_a_problem_that_names_the_fix() {
    let table = table_name();

    let out = doctor(&table, None);
    let text = stdout(&out);
    assert!(!out.status.success(), "{text}");
    let line_table = line(&text, "table");
    assert!(
        line_table.starts_with("PROBLEM ") && line_table.contains("does not exist"),
        "{text}"
    );
    assert!(
        line_table.contains(&format!("meter table create --table {table}")),
        "{text}"
    );
    assert!(line(&text, "ttl").starts_with("skipped "), "{text}");
}

#[tokio::test]
async fn a_table_without_ttl_is_a_problem_and_table_create_fixes_it() {
    let table = table_name();
    create_without_ttl(&table, true).await;
    let client = meter_core::config::dynamo_client().await;
    bootstrap(
        &DynamoStore::new(client.clone(), &table),
        &TenantId::parse("default").unwrap(),
        None,
        chrono::Utc::now(),
    )
    .await
    .unwrap();

    let out = doctor(&table, None);
    let text = stdout(&out);
    assert!(!out.status.success(), "{text}");
    let ttl = line(&text, "ttl");
    assert!(
        ttl.starts_with("PROBLEM ") && ttl.contains("never expire"),
        "{text}"
    );
    for name in ["table", "keys", "indexes", "plans", "catalog"] {
        assert!(line(&text, name).starts_with("ok "), "{text}");
    }

    // The fix it names: `meter table create` enables TTL on the existing table.
    create_table(&client, &table).await.unwrap();
    let out = doctor(&table, None);
    assert!(out.status.success(), "{}", stdout(&out));
}

#[tokio::test]
async fn a_table_without_the_indexes_or_data_is_a_problem() {
    let table = table_name();
    create_without_ttl(&table, false).await;

    let out = doctor(&table, None);
    let text = stdout(&out);
    assert!(!out.status.success(), "{text}");
    let indexes = line(&text, "indexes");
    assert!(
        indexes.starts_with("PROBLEM ") && indexes.contains("holds is missing"),
        "{text}"
    );
    assert!(line(&text, "keys").starts_with("ok "), "{text}");
    assert!(line(&text, "plans").starts_with("PROBLEM "), "{text}");
    assert!(line(&text, "catalog").starts_with("PROBLEM "), "{text}");
}

#[tokio::test]
async fn a_topic_that_does_not_exist_is_a_problem() {
    let table = bootstrapped_table().await;

    let out = doctor(
        &table,
        Some("arn:aws:sns:us-east-1:123456789012:no-such-topic"),
    );
    let text = stdout(&out);
    assert!(!out.status.success(), "{text}");
    let topic = line(&text, "topic");
    assert!(
        topic.starts_with("PROBLEM ") && topic.contains("does not exist"),
        "{text}"
    );
}
