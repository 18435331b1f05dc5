//! `meter migrate`, issue 19's part: gives the grants put before the due index existed
//! their due-index keys (docs/dynamodb.md "Wallets", docs/credits.md "Expiry and
//! pruning"). Such a grant item (`SK = G#<grant_id>` in a wallet partition) has no
//! `OUTBOX_PK`/`OUTBOX_SK`, so the aggregation's `grants` step never lists it: its expiry
//! would be recorded, and it pruned, only when a PUT finds its wallet full.
//!
//! One `Scan` of the table for grant items without the keys; for each whose due instant
//! exists (`store::due_at`: an expiry, a recorded expiry or a void) one conditional update
//! sets the two keys, exactly as a PUT of this build writes them (`grant_upkeep::with_due`),
//! under "the item exists and still has no due keys": a void or an expiry recording since
//! the read wrote the keys itself, and a second or racing run writes nothing. A grant
//! without expiry and not voided has nothing to be due for and is left alone. A finished
//! pass sets the job cursor [`JOB`] to `done` and later runs skip it.
//!
//! The same `Scan` finds the wallet heads (`SK = WALLET`) put before the tenant's wallet
//! listing existed (`wallet_views`: a head joins the `subs` index partition
//! `WALLETS#<tenant>` at a grant PUT) and gives each its listing keys, under "the head
//! exists and is not listed yet", so the admin view lists every wallet
//! (`wallets_listed`).

use super::codec::{get_s, s, Item};
use super::errors::sdk_err;
use super::expressions::Update;
use super::layout;
use super::migrate::MigrationReport;
use super::requests::any_condition_failed;
use super::DynamoStore;
use crate::store::{due_at, InvoiceStore, StoreResult};

/// The job cursor of this part of the migration.
pub const JOB: &str = "migrate-19-grant-due";
const DONE: &str = "done";

impl DynamoStore {
    /// Runs this part unless a finished run marked it done; `true` when it ran.
    pub(super) async fn migrate_grant_due_keys(
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
                    "contains(#pk, :wallet) AND ((begins_with(#sk, :g) AND attribute_not_exists(#opk)) \
                     OR (#sk = :head AND attribute_not_exists(#spk)))",
                )
                .expression_attribute_names("#pk", layout::PK)
                .expression_attribute_names("#sk", layout::SK)
                .expression_attribute_names("#opk", layout::OUTBOX_PK)
                .expression_attribute_names("#spk", layout::SUBS_PK)
                .expression_attribute_values(":g", s("G#"))
                .expression_attribute_values(":head", s(super::wallets::HEAD_SK))
                .expression_attribute_values(":wallet", s("#WALLET#"))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| sdk_err("Scan", e))?;
            for item in page.items() {
                if get_s(item, layout::SK) == Some(super::wallets::HEAD_SK) {
                    if self.list_wallet(item).await? {
                        report.wallets_listed += 1;
                    }
                } else if self.index_grant(item).await? {
                    report.grants_indexed += 1;
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

    /// Sets one grant item's due-index keys; `true` if this run set them.
    async fn index_grant(&self, item: &Item) -> StoreResult<bool> {
        let (Some(pk), Some(sk)) = (get_s(item, layout::PK), get_s(item, layout::SK)) else {
            return Ok(false);
        };
        let grant = super::wallets::grant_of(item)?;
        if due_at(&grant).is_none() {
            return Ok(false);
        }
        let keys = super::grant_upkeep::with_due(Item::new(), pk, &grant);
        let mut u = Update::new();
        for name in [layout::OUTBOX_PK, layout::OUTBOX_SK] {
            if let Some(v) = keys.get(name) {
                u.set(name, v.clone());
            }
        }
        u.condition(|x| {
            format!(
                "attribute_exists({}) AND attribute_not_exists({})",
                x.name(layout::PK),
                x.name(layout::OUTBOX_PK)
            )
        });
        self.conditional_transact("giving a grant its due keys", any_condition_failed, || {
            Ok(vec![self.tx_update(pk.to_owned(), sk, &u)?])
        })
        .await
    }

    /// Puts one wallet head in its tenant's listing; `true` if this run did.
    async fn list_wallet(&self, item: &Item) -> StoreResult<bool> {
        let Some(pk) = get_s(item, layout::PK) else {
            return Ok(false);
        };
        let (tenant, wallet) = super::wallets::wallet_of_pk(pk)?;
        let mut u = Update::new();
        super::wallet_views::listed(&mut u, &tenant, &wallet);
        u.condition(|x| {
            format!(
                "attribute_exists({}) AND attribute_not_exists({})",
                x.name(layout::PK),
                x.name(layout::SUBS_PK)
            )
        });
        self.conditional_transact("listing a wallet", any_condition_failed, || {
            Ok(vec![self.tx_update(
                pk.to_owned(),
                super::wallets::HEAD_SK,
                &u,
            )?])
        })
        .await
    }
}
