//! Budgets (docs/dynamodb.md, "Budgets"): each budget is two items written together, and
//! each scope has one count item.
//!
//! - `PK = T#<tenant>#BUDGET#<budget_id>`, `SK = BUDGET`: the budget by id (GET by id is
//!   one `GetItem`); its own partition, so budgets never crowd the tenant's partition.
//! - `PK = T#<tenant>#BUDGETS#<scope key>`, `SK = B#<budget_id>`: the same budget in its
//!   scope's partition (a scope's list, what the check reads, is one `Query`).
//! - `PK = T#<tenant>#BUDGETS#<scope key>`, `SK = COUNT`: `n` (N), the scope's number of
//!   budgets, which caps it at [`MAX_BUDGETS_PER_SCOPE`] in the write's condition.
//!
//! Budget items hold the budget's fields as native attributes (limits as exact decimal
//! strings) plus `scope_key` (S). A put or delete is one `TransactWriteItems` whose
//! conditions carry the version and scope it read (`attribute_not_exists(PK)` for a new
//! id; the scope too, as versions start again after a delete), so a
//! racing put or delete of the same id cancels it and it starts over from a fresh read;
//! a creation's count update holds only while `n < 32`, so racing creations on a full
//! scope cannot pass the cap.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{CancellationReason, Delete, Put, TransactWriteItem, Update};

use super::codec::{from_item, get_s, n, s, to_item, Item};
use super::errors::build_err;
use super::layout;
use super::requests::{gave_up, key, reason_code, Retries};
use super::DynamoStore;
use crate::budgets::{Budget, Scope, MAX_BUDGETS_PER_SCOPE};
use crate::domain::{BudgetId, TenantId};
use crate::store::{BudgetPut, BudgetStore, StoreError, StoreResult};

const BUDGET_SK: &str = "BUDGET";
const COUNT_SK: &str = "COUNT";
const LISTED_PREFIX: &str = "B#";
const SCOPE_KEY: &str = "scope_key";
const VERSION: &str = "version";
const COUNT: &str = "n";

fn id_pk(tenant: &TenantId, id: &BudgetId) -> String {
    format!("T#{tenant}#BUDGET#{id}")
}

fn scope_pk(tenant: &TenantId, scope: &Scope) -> String {
    format!("T#{tenant}#BUDGETS#{}", scope.key())
}

fn listed_sk(id: &BudgetId) -> String {
    format!("{LISTED_PREFIX}{id}")
}

/// The budget's attributes under (`pk`, `sk`).
fn item(budget: &Budget, pk: String, sk: String) -> StoreResult<Item> {
    let mut item = to_item(budget)?;
    item.extend(key(pk, sk));
    item.insert(SCOPE_KEY.to_owned(), s(budget.scope.key()));
    Ok(item)
}

fn decode(item: &Item) -> StoreResult<Budget> {
    from_item(item)
}

/// What a budget write expects of the by-id item. The scope is in the condition beside
/// the version: versions start again at 1 after a delete, so a version alone would let a
/// write read before a delete and a re-creation on another scope pass (its scope copy
/// would then be left in the old scope's list).
enum Expected<'a> {
    Absent,
    Stored(u64, &'a Scope),
}

fn condition_failed(reasons: &[CancellationReason], at: usize) -> bool {
    reasons
        .get(at)
        .is_some_and(|r| reason_code(r) == "ConditionalCheckFailed")
}

impl DynamoStore {
    /// A put of `item`; `condition`: `None`, a new id (`attribute_not_exists`), or the
    /// replacement of the version and scope read.
    fn budget_put(
        &self,
        item: Item,
        condition: Option<Expected<'_>>,
    ) -> StoreResult<TransactWriteItem> {
        let mut put = Put::builder().table_name(&self.table).set_item(Some(item));
        match condition {
            None => {}
            Some(Expected::Absent) => {
                put = put
                    .condition_expression("attribute_not_exists(#pk)")
                    .expression_attribute_names("#pk", layout::PK);
            }
            Some(Expected::Stored(version, scope)) => {
                put = put
                    .condition_expression("attribute_exists(#pk) AND #v = :v AND #s = :s")
                    .expression_attribute_names("#pk", layout::PK)
                    .expression_attribute_names("#v", VERSION)
                    .expression_attribute_values(":v", n(version))
                    .expression_attribute_names("#s", SCOPE_KEY)
                    .expression_attribute_values(":s", s(scope.key()));
            }
        }
        Ok(TransactWriteItem::builder()
            .put(put.build().map_err(build_err)?)
            .build())
    }

    /// A delete; `expected`: only if the item still holds the version and scope read.
    fn budget_delete(
        &self,
        pk: String,
        sk: &str,
        expected: Option<(u64, &Scope)>,
    ) -> StoreResult<TransactWriteItem> {
        let mut delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)));
        if let Some((v, scope)) = expected {
            delete = delete
                .condition_expression("#v = :v AND #s = :s")
                .expression_attribute_names("#v", VERSION)
                .expression_attribute_values(":v", n(v))
                .expression_attribute_names("#s", SCOPE_KEY)
                .expression_attribute_values(":s", s(scope.key()));
        }
        Ok(TransactWriteItem::builder()
            .delete(delete.build().map_err(build_err)?)
            .build())
    }

    /// Adds `by` to the scope's count; a creation (`by` > 0) only while the count is
    /// below the cap.
    fn budget_count(
        &self,
        tenant: &TenantId,
        scope: &Scope,
        by: i64,
    ) -> StoreResult<TransactWriteItem> {
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(scope_pk(tenant, scope), COUNT_SK)))
            .update_expression("ADD #n :by")
            .expression_attribute_names("#n", COUNT)
            .expression_attribute_values(":by", n(by));
        if by > 0 {
            update = update
                .condition_expression("attribute_not_exists(#n) OR #n < :max")
                .expression_attribute_values(":max", n(MAX_BUDGETS_PER_SCOPE));
        }
        Ok(TransactWriteItem::builder()
            .update(update.build().map_err(build_err)?)
            .build())
    }

    /// Adds `by` to the user's budget count on the user's state item, for a budget on a
    /// user scope (`None` for org and team scopes); `existing`: only if the item exists.
    fn user_budget_marker(
        &self,
        tenant: &TenantId,
        scope: &Scope,
        by: i64,
        existing: bool,
    ) -> StoreResult<Option<TransactWriteItem>> {
        let Scope::User { user_id } = scope else {
            return Ok(None);
        };
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(
                layout::user_pk(tenant, user_id.as_str()),
                layout::STATE_SK,
            )))
            .update_expression("ADD #nb :by")
            .expression_attribute_names("#nb", super::budget_counters::USER_BUDGETS)
            .expression_attribute_values(":by", n(by));
        if existing {
            update = update
                .condition_expression("attribute_exists(#pk)")
                .expression_attribute_names("#pk", layout::PK);
        }
        Ok(Some(
            TransactWriteItem::builder()
                .update(update.build().map_err(build_err)?)
                .build(),
        ))
    }

    /// One attempt of a put against the stored budget read just before; `None` when a
    /// racing write changed it (read again).
    async fn try_put_budget(
        &self,
        tenant: &TenantId,
        budget: &Budget,
        stored: Option<&Budget>,
    ) -> StoreResult<Option<BudgetPut>> {
        let version = match stored {
            Some(s) => s
                .version
                .checked_add(1)
                .ok_or_else(|| StoreError::Overflow("budget version".to_owned()))?,
            None => 1,
        };
        let new = Budget {
            version,
            ..budget.clone()
        };
        let by_id = item(&new, id_pk(tenant, &new.id), BUDGET_SK.to_owned())?;
        let listed = item(&new, scope_pk(tenant, &new.scope), listed_sk(&new.id))?;
        let items = match stored {
            Some(old) => vec![
                self.budget_put(by_id, Some(Expected::Stored(old.version, &old.scope)))?,
                self.budget_put(listed, None)?,
            ],
            None => {
                let mut items = vec![
                    self.budget_put(by_id, Some(Expected::Absent))?,
                    self.budget_put(listed, None)?,
                    self.budget_count(tenant, &new.scope, 1)?,
                ];
                // Issue 18: the user's state item counts the user's own budgets, so that
                // the check of a user without budgets stays one GetItem.
                if let Some(marker) = self.user_budget_marker(tenant, &new.scope, 1, false)? {
                    items.push(marker);
                }
                items
            }
        };
        match self
            .transact_until_decided("put budget", || Ok(items.clone()))
            .await?
        {
            Ok(()) => Ok(Some(match stored {
                Some(_) => BudgetPut::Replaced(new),
                None => BudgetPut::Created(new),
            })),
            Err(reasons) if condition_failed(&reasons, 0) => Ok(None),
            Err(reasons) if stored.is_none() && condition_failed(&reasons, 2) => {
                Ok(Some(BudgetPut::ScopeFull))
            }
            Err(_) => Ok(None),
        }
    }
}

#[async_trait]
impl BudgetStore for DynamoStore {
    async fn put_budget(&self, tenant: &TenantId, budget: &Budget) -> StoreResult<BudgetPut> {
        let mut retries = Retries::new();
        loop {
            let stored = self.get_budget(tenant, &budget.id).await?;
            if let Some(stored) = &stored {
                if stored.scope != budget.scope {
                    return Ok(BudgetPut::ScopeMismatch {
                        stored: stored.scope.clone(),
                    });
                }
            }
            if let Some(outcome) = self.try_put_budget(tenant, budget, stored.as_ref()).await? {
                return Ok(outcome);
            }
            if !retries.again().await {
                return Err(gave_up("put budget"));
            }
        }
    }

    async fn get_budget(&self, tenant: &TenantId, id: &BudgetId) -> StoreResult<Option<Budget>> {
        self.get_item(id_pk(tenant, id), BUDGET_SK, &[])
            .await?
            .as_ref()
            .map(decode)
            .transpose()
    }

    async fn delete_budget(&self, tenant: &TenantId, id: &BudgetId) -> StoreResult<Option<Budget>> {
        let mut retries = Retries::new();
        loop {
            let Some(stored) = self.get_budget(tenant, id).await? else {
                return Ok(None);
            };
            let mut items = vec![
                self.budget_delete(
                    id_pk(tenant, id),
                    BUDGET_SK,
                    Some((stored.version, &stored.scope)),
                )?,
                self.budget_delete(scope_pk(tenant, &stored.scope), &listed_sk(id), None)?,
                self.budget_count(tenant, &stored.scope, -1)?,
            ];
            // The user's budget count, only on a state item that still exists (an erased
            // user's state item is gone: not created again).
            let marker = self.user_budget_marker(tenant, &stored.scope, -1, true)?;
            let has_marker = marker.is_some();
            items.extend(marker);
            match self
                .transact_until_decided("delete budget", || Ok(items.clone()))
                .await?
            {
                Ok(()) => return Ok(Some(stored)),
                Err(reasons) if has_marker && condition_failed(&reasons, 3) => {
                    let items = &items[..3];
                    if let Ok(()) = self
                        .transact_until_decided("delete budget", || Ok(items.to_vec()))
                        .await?
                    {
                        return Ok(Some(stored));
                    }
                    if !retries.again().await {
                        return Err(gave_up("delete budget"));
                    }
                }
                Err(_) => {
                    if !retries.again().await {
                        return Err(gave_up("delete budget"));
                    }
                }
            }
        }
    }

    async fn list_budgets(&self, tenant: &TenantId, scope: &Scope) -> StoreResult<Vec<Budget>> {
        // At most 32 budgets of at most 32 limits each: far below a query page's 1 MB,
        // so this is one Query.
        let items = self
            .query_prefix(scope_pk(tenant, scope), LISTED_PREFIX, true)
            .await?;
        items
            .iter()
            .map(|item| {
                if get_s(item, SCOPE_KEY) != Some(scope.key().as_str()) {
                    return Err(StoreError::Corrupt(format!(
                        "budget item of another scope in {}",
                        scope.key()
                    )));
                }
                decode(item)
            })
            .collect()
    }
}
