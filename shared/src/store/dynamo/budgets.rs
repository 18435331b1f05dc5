//! Budgets (docs/dynamodb.md, "Budgets"): each budget is kept twice, written together.
//!
//! - `PK = T#<tenant>#BUDGET#<budget_id>`, `SK = BUDGET`: the budget by id (GET by id is
//!   one `GetItem`); its own partition, so budgets never crowd the tenant's partition.
//! - `PK = T#<tenant>#BUDGETS#<scope key>`, `SK = COUNT`, the scope's item: the scope's
//!   budgets as attributes `b|<budget_id>` (M: the budget's fields) and `n` (N), their
//!   number, which caps it at [`MAX_BUDGETS_PER_SCOPE`] in the write's condition. Its key
//!   is known before any read, so the check reads a scope's budgets in the same
//!   `BatchGetItem` as everything else it needs (`check_view`).
//!
//! Budgets written before the scope item held them (`SK = B#<budget_id>` items in the
//! scope's partition) are still read while the scope's count says there are more budgets
//! than its item holds (one `Query` more), until `meter migrate` folds them in.
//!
//! The by-id item holds the budget's fields as native attributes (limits as exact decimal
//! strings) plus `scope_key` (S). A put or delete is one `TransactWriteItems` whose
//! conditions carry the version and scope it read (`attribute_not_exists(PK)` for a new
//! id; the scope too, as versions start again after a delete), so a
//! racing put or delete of the same id cancels it and it starts over from a fresh read;
//! a creation's scope update holds only while `n < 32`, so racing creations on a full
//! scope cannot pass the cap.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, Delete, Put, TransactWriteItem, Update,
};

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
/// The prefix of a budget's attribute on its scope's item: `b|<budget_id>`.
const BUDGET_ATTR: &str = "b|";
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

/// The key of a scope's item (its budgets and their count).
pub(super) fn scope_item_key(tenant: &TenantId, scope: &Scope) -> Item {
    key(scope_pk(tenant, scope), COUNT_SK)
}

fn budget_attr(id: &BudgetId) -> String {
    format!("{BUDGET_ATTR}{id}")
}

/// What a read of a scope's item gave: the budgets on it, and whether budgets written
/// before it held them may be left in the scope's partition (its count says more).
pub(super) struct ScopeBudgets {
    pub budgets: Vec<Budget>,
    pub legacy_left: bool,
}

/// The budgets on the scope item `item` (absent: none) of `scope`, in id order.
pub(super) fn budgets_of_scope_item(
    scope: &Scope,
    item: Option<&Item>,
) -> StoreResult<ScopeBudgets> {
    let Some(item) = item else {
        return Ok(ScopeBudgets {
            budgets: Vec::new(),
            legacy_left: false,
        });
    };
    let mut budgets = Vec::new();
    for (name, value) in item {
        if !name.starts_with(BUDGET_ATTR) {
            continue;
        }
        let AttributeValue::M(fields) = value else {
            return Err(StoreError::Corrupt(format!(
                "budget attribute {name} is not a map"
            )));
        };
        let b: Budget = decode(fields)?;
        if b.scope != *scope {
            return Err(StoreError::Corrupt(format!(
                "budget {} of another scope in {}",
                b.id,
                scope.key()
            )));
        }
        budgets.push(b);
    }
    budgets.sort_by(|a, b| a.id.as_str().as_bytes().cmp(b.id.as_str().as_bytes()));
    let count = super::codec::decimal_attr(item, COUNT)?;
    Ok(ScopeBudgets {
        legacy_left: count > rust_decimal::Decimal::from(budgets.len()),
        budgets,
    })
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

    /// The update of the scope's item: `budget` stored in it (a put) or `removed` taken
    /// out of it (a delete), and `by` added to the scope's count; a creation (`by` > 0)
    /// only while the count is below the cap.
    fn scope_item_update(
        &self,
        tenant: &TenantId,
        scope: &Scope,
        budget: Option<&Budget>,
        removed: Option<&BudgetId>,
        by: i64,
    ) -> StoreResult<TransactWriteItem> {
        let mut u = super::expressions::Update::new();
        if let Some(b) = budget {
            u.set(&budget_attr(&b.id), AttributeValue::M(to_item(b)?));
        }
        if let Some(id) = removed {
            u.remove(&budget_attr(id));
        }
        if by != 0 {
            u.add(COUNT, n(by));
        }
        if by > 0 {
            u.condition(|x| {
                let (c, max) = (x.name(COUNT), x.value(n(MAX_BUDGETS_PER_SCOPE)));
                format!("attribute_not_exists({c}) OR {c} < {max}")
            });
        }
        self.tx_update(scope_pk(tenant, scope), COUNT_SK, &u)
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
        let items = match stored {
            Some(old) => vec![
                self.budget_put(by_id, Some(Expected::Stored(old.version, &old.scope)))?,
                self.scope_item_update(tenant, &new.scope, Some(&new), None, 0)?,
                // A budget written before the scope item held budgets (`meter migrate`
                // folds those in): its old copy goes.
                self.budget_delete(scope_pk(tenant, &new.scope), &listed_sk(&new.id), None)?,
            ],
            None => {
                let mut items = vec![
                    self.budget_put(by_id, Some(Expected::Absent))?,
                    self.scope_item_update(tenant, &new.scope, Some(&new), None, 1)?,
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
            Err(reasons) if stored.is_none() && condition_failed(&reasons, 1) => {
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
                self.scope_item_update(tenant, &stored.scope, None, Some(id), -1)?,
                // A budget written before the scope item held budgets: its old copy.
                self.budget_delete(scope_pk(tenant, &stored.scope), &listed_sk(id), None)?,
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
        let item = self
            .get_item(scope_pk(tenant, scope), COUNT_SK, &[])
            .await?;
        let read = budgets_of_scope_item(scope, item.as_ref())?;
        self.with_legacy_budgets(tenant, scope, read).await
    }
}

impl DynamoStore {
    /// The scope's budgets from a read of its item, with those written before the item
    /// held budgets when its count says some are left (one `Query`; `meter migrate`
    /// folds them in).
    pub(super) async fn with_legacy_budgets(
        &self,
        tenant: &TenantId,
        scope: &Scope,
        read: ScopeBudgets,
    ) -> StoreResult<Vec<Budget>> {
        if !read.legacy_left {
            return Ok(read.budgets);
        }
        let mut by_id: std::collections::BTreeMap<Vec<u8>, Budget> = read
            .budgets
            .into_iter()
            .map(|b| (b.id.as_str().as_bytes().to_vec(), b))
            .collect();
        for b in self.legacy_budgets(tenant, scope).await? {
            by_id.entry(b.id.as_str().as_bytes().to_vec()).or_insert(b);
        }
        Ok(by_id.into_values().collect())
    }

    /// The budgets kept as items of the scope's partition (`B#<id>`, the layout before
    /// the scope item held them).
    pub(super) async fn legacy_budgets(
        &self,
        tenant: &TenantId,
        scope: &Scope,
    ) -> StoreResult<Vec<Budget>> {
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
