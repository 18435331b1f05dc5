//! `meter migrate`: brings a store written by an earlier version to this version's layout
//! (docs/operations.md, "Upgrading: meter migrate").

use anyhow::Result;
use clap::Args;
use meter_core::config::{self, StoreLocation};
use serde::Serialize;

use crate::StoreArgs;

#[derive(Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub store: StoreArgs,
}

/// What `meter migrate` prints (one JSON line).
#[derive(Serialize)]
struct Report {
    store: String,
    /// `migrated`, `already migrated` (the job cursor says a run finished), or
    /// `nothing to migrate` (SQLite).
    outcome: &'static str,
    users_visited: u64,
    users_changed: u64,
    steps: u64,
    reservations_spilled: u64,
    budgets_folded: u64,
    counters_folded: u64,
    /// Issue 19: grants put before the due index given their due keys.
    grants_indexed: u64,
    /// Issue 19: wallet heads given their listing keys (the admin view's wallets).
    wallets_listed: u64,
    /// Issue 18: orgs invoiced before the late-event layout given their `OB`.
    orgs_billed_to_set: u64,
}

pub async fn run(args: MigrateArgs) -> Result<()> {
    let location = args.store.location();
    let report = match &location {
        StoreLocation::Dynamo(table) => {
            if table.is_empty() {
                anyhow::bail!("--table must not be empty");
            }
            let store =
                meter_core::store::dynamo::DynamoStore::new(config::dynamo_client().await, table);
            let r = store.migrate().await?;
            Report {
                store: location.describe(),
                outcome: if r.already_done {
                    "already migrated"
                } else {
                    "migrated"
                },
                users_visited: r.users_visited,
                users_changed: r.users_changed,
                steps: r.steps,
                reservations_spilled: r.reservations_spilled,
                budgets_folded: r.budgets_folded,
                counters_folded: r.counters_folded,
                grants_indexed: r.grants_indexed,
                wallets_listed: r.wallets_listed,
                orgs_billed_to_set: r.orgs_billed_to_set,
            }
        }
        StoreLocation::Sqlite(_) => {
            // Opening applies the schema migrations; the SQLite layout (a row per user,
            // period and provider; a row per reservation) needs nothing more.
            args.store.open().await?;
            Report {
                store: location.describe(),
                outcome: "nothing to migrate",
                users_visited: 0,
                users_changed: 0,
                steps: 0,
                reservations_spilled: 0,
                budgets_folded: 0,
                counters_folded: 0,
                grants_indexed: 0,
                wallets_listed: 0,
                orgs_billed_to_set: 0,
            }
        }
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
