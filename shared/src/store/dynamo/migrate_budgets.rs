//! `meter migrate`, issue 18's part: folds budgets and budget counters written before the
//! check's one read (docs/dynamodb.md, "The check's read") into its layout.
//!
//! - A budget's copy in its scope's partition (`SK = B#<budget_id>`) becomes the
//!   attribute `b|<budget_id>` of the scope's item (`SK = COUNT`), whose count already
//!   counts it: one transaction sets the attribute (only if absent: a budget written
//!   since is newer) and deletes the copy (only at the version read).
//! - A counter item of one window (`PK = T#<tenant>#BC#<counter key>`, the key ending in
//!   `#<window>#<start>`) is added to its scope's counter item under the window's prefix
//!   (its window end from its `ttl`), in one transaction with its deletion (only while it
//!   exists: a second run, or a racing one, adds nothing twice). Counters whose window
//!   ended more than a day ago are deleted without folding (nothing reads them).
//!
//! Both kinds have no index, so this is one `Scan` of the table, once: a finished pass
//! sets the job cursor [`JOB`] to `done` and later runs skip it. Idempotent and safe to
//! run beside this build's writers (they never write the previous items).

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Utc;
use rust_decimal::prelude::ToPrimitive;

use super::budget_counters::{parse_counter_key, COUNTER_SK};
use super::codec::{from_item, get_s, n, s, to_item, Item};
use super::errors::sdk_err;
use super::expressions::Update;
use super::layout;
use super::migrate::MigrationReport;
use super::requests::any_condition_failed;
use super::DynamoStore;
use crate::budgets::Budget;
use crate::store::{InvoiceStore, StoreResult, COUNTER_GRACE};

/// The job cursor of this part of the migration.
pub const JOB: &str = "migrate-18-budgets";
const DONE: &str = "done";
const BUDGET_SK_PREFIX: &str = "B#";
const SCOPE_ITEM_SK: &str = "COUNT";

impl DynamoStore {
    /// Runs this part unless a finished run marked it done; `true` when it ran.
    pub(super) async fn migrate_budget_layout(
        &self,
        report: &mut MigrationReport,
    ) -> StoreResult<bool> {
        if self.get_job_cursor(JOB).await?.as_deref() == Some(DONE) {
            return Ok(false);
        }
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression(
                    "(begins_with(#sk, :b) AND contains(#pk, :budgets)) OR (#sk = :c AND contains(#pk, :bc))",
                )
                .expression_attribute_names("#pk", layout::PK)
                .expression_attribute_names("#sk", layout::SK)
                .expression_attribute_values(":b", s(BUDGET_SK_PREFIX))
                .expression_attribute_values(":budgets", s("#BUDGETS#"))
                .expression_attribute_values(":c", s(COUNTER_SK))
                .expression_attribute_values(":bc", s("#BC#"))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| sdk_err("Scan", e))?;
            for item in page.items() {
                let (Some(pk), Some(sk)) = (get_s(item, layout::PK), get_s(item, layout::SK))
                else {
                    continue;
                };
                if let Some(id) = sk.strip_prefix(BUDGET_SK_PREFIX) {
                    if self.fold_budget(pk, sk, id, item).await? {
                        report.budgets_folded += 1;
                    }
                } else if self.fold_counter(pk, item).await? {
                    report.counters_folded += 1;
                }
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        self.put_job_cursor(JOB, Some(DONE)).await?;
        Ok(true)
    }

    /// Moves one budget copy onto its scope's item; `true` if this run moved it.
    async fn fold_budget(&self, pk: &str, sk: &str, id: &str, item: &Item) -> StoreResult<bool> {
        let budget: Budget = from_item(item)?;
        let attr = format!("b|{id}");
        let mut set = Update::new();
        set.set(&attr, AttributeValue::M(to_item(&budget)?));
        set.condition(|x| format!("attribute_not_exists({})", x.name(&attr)));
        let moved = self
            .conditional_transact("folding a budget", any_condition_failed, || {
                Ok(vec![
                    self.tx_update(pk.to_owned(), SCOPE_ITEM_SK, &set)?,
                    self.tx_delete(pk.to_owned(), sk, true)?,
                ])
            })
            .await?;
        if !moved {
            // Already on the scope item (another run): the copy goes.
            self.delete_plain(pk, sk).await?;
        }
        Ok(moved)
    }

    /// Deletes one item (absent: nothing to do).
    async fn delete_plain(&self, pk: &str, sk: &str) -> StoreResult<()> {
        self.conditional_transact("migrate: delete", any_condition_failed, || {
            Ok(vec![self.tx_delete(pk.to_owned(), sk, false)?])
        })
        .await?;
        Ok(())
    }

    /// Adds one counter item of the previous layout to its scope's counter item and
    /// deletes it; `true` if this run folded it. An item of this layout is left alone.
    async fn fold_counter(&self, pk: &str, item: &Item) -> StoreResult<bool> {
        let Some((tenant_part, counter)) = pk.split_once("#BC#") else {
            return Ok(false);
        };
        let Some((target, prefix)) = parse_counter_key(counter) else {
            return Ok(false);
        };
        let ttl = super::codec::decimal_attr(item, layout::TTL)?
            .to_i64()
            .unwrap_or(0);
        if ttl <= Utc::now().timestamp() {
            // Ended over a day ago (or no window end): nothing reads it any more.
            self.delete_plain(pk, COUNTER_SK).await?;
            return Ok(false);
        }
        let end = ttl - COUNTER_GRACE.num_seconds();
        let mut add = Update::new();
        for (name, value) in item {
            if matches!(name.as_str(), layout::PK | layout::SK | layout::TTL) {
                continue;
            }
            if let AttributeValue::N(_) = value {
                add.add(&format!("{prefix}|{name}"), value.clone());
            }
        }
        add.set(&format!("{prefix}|e"), n(end));
        add.set(layout::TTL, super::budget_counters::item_ttl());
        let target_pk = format!("{tenant_part}#BC#{target}");
        let folded = self
            .conditional_transact("folding a budget counter", any_condition_failed, || {
                Ok(vec![
                    self.tx_delete(pk.to_owned(), COUNTER_SK, true)?,
                    self.tx_update(target_pk.clone(), COUNTER_SK, &add)?,
                ])
            })
            .await?;
        Ok(folded)
    }
}
