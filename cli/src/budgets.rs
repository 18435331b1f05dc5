//! `meter budgets put|get|list|delete`: the budget routes (docs/budgets.md) from the
//! command line, through the service and with the body rules of PUT /budgets/{budget_id}.
//! Each prints the route's `data` as one line of JSON.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;
use meter_core::domain::{BudgetId, TenantId};
use meter_core::http::budgets::{parse_budget, parse_scope_query};

use crate::admin::{meter_on, print, refused};
use crate::StoreArgs;

#[derive(Subcommand)]
pub enum BudgetsCommand {
    /// Create or replace a budget (the body of PUT /budgets/{budget_id}, as JSON).
    #[command(visible_alias = "set")]
    Put {
        budget_id: BudgetId,
        /// The budget as JSON, e.g. '{"scope": {"kind": "org", "org_id": "acme"},
        /// "limits": {"cost_usd": "20"}, "window": "month", "mode": "hard"}'.
        #[arg(long, conflicts_with = "file", required_unless_present = "file")]
        json: Option<String>,
        /// A file holding the JSON body.
        #[arg(long)]
        file: Option<PathBuf>,
        #[arg(long, default_value = "default")]
        tenant: TenantId,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// One budget.
    Get {
        budget_id: BudgetId,
        #[arg(long, default_value = "default")]
        tenant: TenantId,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// The budgets of one scope: --user-id, or --org-id with an optional --team-id.
    List {
        #[arg(long)]
        user_id: Option<String>,
        #[arg(long)]
        org_id: Option<String>,
        #[arg(long)]
        team_id: Option<String>,
        #[arg(long, default_value = "default")]
        tenant: TenantId,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Delete a budget.
    Delete {
        budget_id: BudgetId,
        #[arg(long, default_value = "default")]
        tenant: TenantId,
        #[command(flatten)]
        store: StoreArgs,
    },
}

pub async fn run(command: BudgetsCommand) -> Result<()> {
    match command {
        BudgetsCommand::Put {
            budget_id,
            json,
            file,
            tenant,
            store,
        } => {
            let text = match (json, file) {
                (Some(text), _) => text,
                (None, Some(path)) => std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?,
                (None, None) => unreachable!("clap requires --json or --file"),
            };
            let body: serde_json::Value =
                serde_json::from_str(&text).context("the budget is not valid JSON")?;
            let input = parse_budget(&budget_id, &body).map_err(refused)?;
            let (meter, caller) = meter_on(&store, &tenant).await?;
            print(
                &meter
                    .put_budget(&caller, &budget_id, input)
                    .await
                    .map_err(refused)?,
            )
        }
        BudgetsCommand::Get {
            budget_id,
            tenant,
            store,
        } => {
            let (meter, caller) = meter_on(&store, &tenant).await?;
            print(
                &meter
                    .get_budget(&caller, &budget_id)
                    .await
                    .map_err(refused)?,
            )
        }
        BudgetsCommand::List {
            user_id,
            org_id,
            team_id,
            tenant,
            store,
        } => {
            let query: BTreeMap<String, String> = [
                ("user_id", user_id),
                ("org_id", org_id),
                ("team_id", team_id),
            ]
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v)))
            .collect();
            let scope = parse_scope_query(&query).map_err(refused)?;
            let (meter, caller) = meter_on(&store, &tenant).await?;
            print(&meter.list_budgets(&caller, &scope).await.map_err(refused)?)
        }
        BudgetsCommand::Delete {
            budget_id,
            tenant,
            store,
        } => {
            let (meter, caller) = meter_on(&store, &tenant).await?;
            print(
                &meter
                    .delete_budget(&caller, &budget_id)
                    .await
                    .map_err(refused)?,
            )
        }
    }
}
