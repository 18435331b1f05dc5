//! Creating the table: keys, GSIs and TTL as docs/dynamodb.md describes them.

use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TableStatus, TimeToLiveSpecification, TimeToLiveStatus,
};
use aws_sdk_dynamodb::Client;

use super::errors::{build_err, sdk_err};
use super::layout;
use crate::store::{StoreError, StoreResult};

fn key(name: &str, kind: KeyType) -> StoreResult<KeySchemaElement> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .map_err(build_err)
}

fn attr(name: &str) -> StoreResult<AttributeDefinition> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(build_err)
}

fn gsi(
    name: &str,
    pk: &str,
    sk: &str,
    projection: Projection,
) -> StoreResult<GlobalSecondaryIndex> {
    GlobalSecondaryIndex::builder()
        .index_name(name)
        .key_schema(key(pk, KeyType::Hash)?)
        .key_schema(key(sk, KeyType::Range)?)
        .projection(projection)
        .build()
        .map_err(build_err)
}

/// Creates `table` (on-demand, the key schema and GSIs of docs/dynamodb.md), waits until
/// it is ACTIVE and enables TTL on `ttl`. An existing table is fine (TTL is still ensured).
pub async fn create_table(client: &Client, table: &str) -> StoreResult<()> {
    let mut request = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key(layout::PK, KeyType::Hash)?)
        .key_schema(key(layout::SK, KeyType::Range)?);
    for name in [
        layout::PK,
        layout::SK,
        layout::HOLDS_PK,
        layout::HOLDS_SK,
        layout::USER_PK,
        layout::USER_SK,
        layout::OUTBOX_PK,
        layout::OUTBOX_SK,
        layout::SUBS_PK,
        layout::SUBS_SK,
    ] {
        request = request.attribute_definitions(attr(name)?);
    }
    let keys_only = Projection::builder()
        .projection_type(ProjectionType::KeysOnly)
        .build();
    let all = Projection::builder()
        .projection_type(ProjectionType::All)
        .build();
    let subs = Projection::builder()
        .projection_type(ProjectionType::Include)
        .non_key_attributes(layout::SUB)
        .build();
    request = request
        .global_secondary_indexes(gsi(
            layout::HOLDS_INDEX,
            layout::HOLDS_PK,
            layout::HOLDS_SK,
            keys_only,
        )?)
        .global_secondary_indexes(gsi(
            layout::USER_INDEX,
            layout::USER_PK,
            layout::USER_SK,
            all.clone(),
        )?)
        .global_secondary_indexes(gsi(
            layout::OUTBOX_INDEX,
            layout::OUTBOX_PK,
            layout::OUTBOX_SK,
            all,
        )?)
        .global_secondary_indexes(gsi(
            layout::SUBS_INDEX,
            layout::SUBS_PK,
            layout::SUBS_SK,
            subs,
        )?);
    match request.send().await {
        Ok(_) => {}
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_resource_in_use_exception()) => {}
        Err(e) => return Err(sdk_err("CreateTable", e)),
    }

    // Wait until ACTIVE (a fresh table takes seconds; give up after two minutes).
    let mut waited = Duration::ZERO;
    loop {
        let described = client.describe_table().table_name(table).send().await;
        let status = described
            .map_err(|e| sdk_err("DescribeTable", e))?
            .table
            .and_then(|t| t.table_status);
        if status == Some(TableStatus::Active) {
            break;
        }
        if waited >= Duration::from_secs(120) {
            return Err(StoreError::Unavailable(format!(
                "table {table} is not ACTIVE after 120 s ({status:?})"
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        waited += Duration::from_millis(250);
    }

    let ttl = client
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
        .map_err(|e| sdk_err("DescribeTimeToLive", e))?;
    let enabled = ttl
        .time_to_live_description
        .and_then(|d| d.time_to_live_status)
        .is_some_and(|s| matches!(s, TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling));
    if !enabled {
        let spec = TimeToLiveSpecification::builder()
            .attribute_name(layout::TTL)
            .enabled(true)
            .build()
            .map_err(build_err)?;
        client
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(spec)
            .send()
            .await
            .map_err(|e| sdk_err("UpdateTimeToLive", e))?;
    }
    Ok(())
}
