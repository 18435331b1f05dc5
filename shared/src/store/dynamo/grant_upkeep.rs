//! Grant upkeep on DynamoDB (see [`crate::store::GrantUpkeepStore`], docs/dynamodb.md
//! "Wallets"):
//!
//! - the due index is the grant item itself in the sparse `outbox` index, partition
//!   `GRANTS`, sort key `<due instant>#<PK>#<grant_id>` (no extra item: putting a grant
//!   with an expiry writes the two index attributes with it; a void and the recording of
//!   an expiry move them; pruning deletes the item);
//! - recording an expiry is one `TransactWriteItems`: the grant `SET remaining_usd = 0,
//!   expired_usd = r` (and its new due key) under "exists, not voided, not recorded,
//!   `remaining_usd = r`", and the head's bucket `ADD -r`;
//! - pruning is one `TransactWriteItems`: `Delete` the grant under "exactly as read",
//!   `Put` its archive `SK = A#<grant_id>` in the same partition (new only), the head's
//!   `ADD grants_n -1`. The wallet's `Query` reads `SK >= G#` (grants and head), so an
//!   archive is never read with the wallet; a new grant's transaction checks that no
//!   archive holds its id. Then, for a grant that expires, the head's credit bucket of
//!   its expiry instant is removed if it is 0 (one conditional `UpdateItem`: a grant of
//!   the same instant put meanwhile added to it and keeps it), so the head holds buckets
//!   of live grants only and does not grow with the wallet's history (SPEC §12).

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{ConditionCheck, ReturnValuesOnConditionCheckFailure};
use aws_sdk_dynamodb::types::{Delete, TransactWriteItem};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::codec::{get_s, n, s, Item};
use super::errors::build_err;
use super::expressions::Update;
use super::layout;
use super::requests::key;
use super::wallets::{credit_bucket, grant_item, grant_of, grant_sk, wallet_pk, HEAD_SK};
use super::DynamoStore;
use crate::credits::{Grant, Subscriber};
use crate::domain::{GrantId, OrgId, TenantId, UserId};
use crate::store::{
    due_at, with_expiry_recorded, DueGrant, GrantUpkeepStore, StoreError, StoreResult,
};

/// The `outbox` index partition listing due grants.
const GRANTS_PARTITION: &str = "GRANTS";
/// The sort-key prefix of a pruned grant's archive.
const ARCHIVE_PREFIX: &str = "A#";

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("grant upkeep: {what}"))
}

pub(super) fn archive_sk(id: &GrantId) -> String {
    format!("{ARCHIVE_PREFIX}{id}")
}

fn due_sk(pk: &str, g: &Grant, due: DateTime<Utc>) -> String {
    format!("{}#{pk}#{}", layout::sortable(due), g.id)
}

/// Writes the due index attributes of `g` into its item (none when nothing is due).
pub(super) fn with_due(mut item: Item, pk: &str, g: &Grant) -> Item {
    if let Some(due) = due_at(g) {
        item.insert(layout::OUTBOX_PK.to_owned(), s(GRANTS_PARTITION));
        item.insert(layout::OUTBOX_SK.to_owned(), s(due_sk(pk, g, due)));
    }
    item
}

/// The update setting `g`'s due index attributes (`g` as it is after the write).
pub(super) fn set_due(u: &mut Update, pk: &str, g: &Grant) {
    match due_at(g) {
        Some(due) => {
            u.set(layout::OUTBOX_PK, s(GRANTS_PARTITION))
                .set(layout::OUTBOX_SK, s(due_sk(pk, g, due)));
        }
        None => {
            u.remove(layout::OUTBOX_PK).remove(layout::OUTBOX_SK);
        }
    }
}

/// `T#<tenant>#WALLET#<user|org>#<id>` back to its parts.
fn wallet_of(pk: &str) -> StoreResult<(TenantId, Subscriber)> {
    let mut parts = pk.splitn(5, '#');
    let (Some("T"), Some(tenant), Some("WALLET"), Some(kind), Some(id)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(corrupt(format!("wallet key {pk}")));
    };
    let tenant = TenantId::parse(tenant).map_err(corrupt)?;
    let wallet = match kind {
        "user" => Subscriber::User(UserId::parse(id).map_err(corrupt)?),
        "org" => Subscriber::Org(OrgId::parse(id).map_err(corrupt)?),
        _ => return Err(corrupt(format!("wallet key {pk}"))),
    };
    Ok((tenant, wallet))
}

/// The condition "the grant is exactly as read" on the attributes writes change.
fn as_read(u: &mut Update, read: &Grant) {
    let remaining = read.remaining_usd;
    u.condition(|x| {
        let (p, r, v) = (
            x.name(layout::PK),
            x.name("remaining_usd"),
            x.value(n(remaining)),
        );
        format!("attribute_exists({p}) AND {r} = {v}")
    });
    let voided = read.voided_at.is_some();
    u.condition(|x| {
        let v = x.name("voided_at");
        if voided {
            format!("attribute_exists({v})")
        } else {
            format!("attribute_not_exists({v})")
        }
    });
    let recorded = read.expired_usd.is_some();
    u.condition(|x| {
        let e = x.name("expired_usd");
        if recorded {
            format!("attribute_exists({e})")
        } else {
            format!("attribute_not_exists({e})")
        }
    });
}

impl DynamoStore {
    /// The wallet's head and grants (`SK >= G#`: not the archives), in one `Query`.
    pub(super) async fn wallet_items(&self, pk: String) -> StoreResult<Vec<Item>> {
        self.query_all(
            || {
                self.query()
                    .key_condition_expression("#pk = :pk AND #sk >= :g")
                    .expression_attribute_names("#pk", layout::PK)
                    .expression_attribute_names("#sk", layout::SK)
                    .expression_attribute_values(":pk", s(pk.clone()))
                    .expression_attribute_values(":g", s("G#"))
                    .consistent_read(true)
            },
            None,
        )
        .await
    }

    /// The transaction item checking that no archive holds `id` (returning the archive
    /// when one does).
    pub(super) fn tx_no_archive(&self, pk: String, id: &GrantId) -> StoreResult<TransactWriteItem> {
        let check = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(key(pk, archive_sk(id))))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", layout::PK)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(build_err)?;
        Ok(TransactWriteItem::builder().condition_check(check).build())
    }

    /// The archived grant `id`, if it was pruned.
    pub(super) async fn get_archived_grant(
        &self,
        pk: String,
        id: &GrantId,
    ) -> StoreResult<Option<Grant>> {
        self.get_item(pk, &archive_sk(id), &[])
            .await?
            .as_ref()
            .map(grant_of)
            .transpose()
    }
}

#[async_trait]
impl GrantUpkeepStore for DynamoStore {
    async fn due_grants(&self, now: DateTime<Utc>, limit: usize) -> StoreResult<Vec<DueGrant>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let page = i32::try_from(limit.min(1000)).unwrap_or(1000);
        let upto = format!("{}#~", layout::sortable(now));
        let items = self
            .query_all(
                || {
                    self.query()
                        .index_name(layout::OUTBOX_INDEX)
                        .key_condition_expression("#o = :o AND #s <= :upto")
                        .expression_attribute_names("#o", layout::OUTBOX_PK)
                        .expression_attribute_names("#s", layout::OUTBOX_SK)
                        .expression_attribute_values(":o", s(GRANTS_PARTITION))
                        .expression_attribute_values(":upto", s(upto.clone()))
                        .limit(page)
                },
                Some(limit),
            )
            .await?;
        items
            .iter()
            .map(|item| {
                let pk = get_s(item, layout::PK).ok_or_else(|| corrupt("no PK"))?;
                let (tenant, wallet) = wallet_of(pk)?;
                let grant = grant_of(item)?;
                let due = get_s(item, layout::OUTBOX_SK)
                    .and_then(|k| k.split('#').next())
                    .ok_or_else(|| corrupt("no due key"))
                    .and_then(super::codec::time_of)?;
                Ok(DueGrant {
                    tenant,
                    wallet,
                    grant,
                    due_at: due,
                })
            })
            .collect()
    }

    async fn record_grant_expiry(
        &self,
        tenant: &TenantId,
        wallet: &Subscriber,
        read: &Grant,
    ) -> StoreResult<bool> {
        if read.voided_at.is_some() || read.expired_usd.is_some() || read.expires_at.is_none() {
            return Ok(false);
        }
        let pk = wallet_pk(tenant, wallet);
        let recorded = with_expiry_recorded(read);
        let mut grant = Update::new();
        grant
            .set("remaining_usd", n(Decimal::ZERO))
            .set("expired_usd", n(read.remaining_usd));
        set_due(&mut grant, &pk, &recorded);
        as_read(&mut grant, read);
        let mut items = vec![self.tx_update(pk.clone(), &grant_sk(&read.id), &grant)?];
        if !read.remaining_usd.is_zero() {
            let mut head = Update::new();
            head.add(&credit_bucket(read.expires_at), n(-read.remaining_usd));
            items.push(self.tx_update(pk, HEAD_SK, &head)?);
        }
        Ok(self
            .transact_until_decided("record grant expiry", || Ok(items.clone()))
            .await?
            .is_ok())
    }

    async fn archive_grant(
        &self,
        tenant: &TenantId,
        wallet: &Subscriber,
        read: &Grant,
    ) -> StoreResult<bool> {
        let prunable =
            read.voided_at.is_some() || read.expired_usd.is_some() || read.remaining_usd.is_zero();
        if !prunable {
            return Ok(false);
        }
        let pk = wallet_pk(tenant, wallet);
        let mut cond = Update::new();
        as_read(&mut cond, read);
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key(pk.clone(), grant_sk(&read.id))))
            .set_condition_expression(cond.condition_expression())
            .set_expression_attribute_names(cond.expr.names())
            .set_expression_attribute_values(cond.expr.values())
            .build()
            .map_err(build_err)?;
        let mut archive = grant_item(pk.clone(), read);
        archive.insert(layout::SK.to_owned(), s(archive_sk(&read.id)));
        let mut head = Update::new();
        head.add("grants_n", n(-1));
        let items = vec![
            TransactWriteItem::builder().delete(delete).build(),
            self.tx_put(archive, true)?,
            self.tx_update(pk.clone(), HEAD_SK, &head)?,
        ];
        let pruned = self
            .transact_until_decided("prune grant", || Ok(items.clone()))
            .await?
            .is_ok();
        // The bucket of grants without expiry is one attribute, kept.
        if let (true, Some(at)) = (pruned, read.expires_at) {
            self.remove_empty_bucket(pk, at).await;
        }
        Ok(pruned)
    }
}

impl DynamoStore {
    /// Removes the head's credit bucket of the expiry instant `expires_at` if it holds 0
    /// (the condition: credit added to it meanwhile keeps it; a later `ADD` to a removed
    /// bucket starts it again from 0). Best effort: a bucket left at 0 counts nothing and
    /// goes with the prune of the next grant of that instant.
    async fn remove_empty_bucket(&self, pk: String, expires_at: DateTime<Utc>) {
        let bucket = credit_bucket(Some(expires_at));
        let mut u = Update::new();
        u.remove(&bucket).condition(|e| {
            let (name, zero) = (e.name(&bucket), e.value(n(Decimal::ZERO)));
            format!("{name} = {zero}")
        });
        if let Err(e) = self.update(pk, HEAD_SK, &u, false).await {
            tracing::warn!(error = %e, "could not remove an empty credit bucket from a wallet head");
        }
    }
}
