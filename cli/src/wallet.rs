//! `meter wallet grant|show|void`: prepaid-credit wallets (docs/credits.md) from the
//! command line, through the service and with the body rules of
//! PUT /wallet/{user|org}/{id}/grants/{grant_id}. Each prints the route's `data` as one
//! line of JSON.

use anyhow::{anyhow, bail, Result};
use clap::Subcommand;
use meter_core::credits::Subscriber;
use meter_core::domain::{GrantId, OrgId, TenantId, UserId};
use meter_core::http::wallets::parse_grant;
use serde_json::{json, Map, Value};

use crate::admin::{meter_on, print, refused};
use crate::StoreArgs;

#[derive(Subcommand)]
pub enum WalletCommand {
    /// Grant credit (PUT …/grants/{grant_id}; idempotent by grant id).
    Grant {
        /// `user` or `org`.
        owner: String,
        /// The user or org id.
        id: String,
        grant_id: GrantId,
        /// The amount in USD as a decimal, e.g. 10.00 (at most 6 decimal places).
        #[arg(long)]
        amount: String,
        /// purchase, promo, refund or adjustment.
        #[arg(long)]
        kind: String,
        /// When the grant stops counting (RFC 3339), e.g. 2026-03-31T00:00:00Z.
        #[arg(long)]
        expires_at: Option<String>,
        /// 0..=1000, lower burns first (default 10).
        #[arg(long)]
        priority: Option<i64>,
        #[arg(long)]
        note: Option<String>,
        #[arg(long, default_value = "default")]
        tenant: TenantId,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// The wallet: balance, held, available, grants, low-balance level.
    Show {
        /// `user` or `org`.
        owner: String,
        id: String,
        #[arg(long, default_value = "default")]
        tenant: TenantId,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Void a grant: what is left of it stops counting.
    Void {
        /// `user` or `org`.
        owner: String,
        id: String,
        grant_id: GrantId,
        #[arg(long, default_value = "default")]
        tenant: TenantId,
        #[command(flatten)]
        store: StoreArgs,
    },
}

fn subscriber(owner: &str, id: &str) -> Result<Subscriber> {
    Ok(match owner {
        "user" => Subscriber::User(UserId::parse(id).map_err(|e| anyhow!("{e}"))?),
        "org" => Subscriber::Org(OrgId::parse(id).map_err(|e| anyhow!("{e}"))?),
        other => bail!("a wallet belongs to a `user` or an `org`, not `{other}`"),
    })
}

pub async fn run(command: WalletCommand) -> Result<()> {
    match command {
        WalletCommand::Grant {
            owner,
            id,
            grant_id,
            amount,
            kind,
            expires_at,
            priority,
            note,
            tenant,
            store,
        } => {
            let wallet = subscriber(&owner, &id)?;
            // The body the route would get (the amount as a string: never a float).
            let mut body = Map::new();
            body.insert("amount_usd".to_owned(), json!(amount));
            body.insert("kind".to_owned(), json!(kind));
            if let Some(e) = expires_at {
                body.insert("expires_at".to_owned(), json!(e));
            }
            if let Some(p) = priority {
                body.insert("priority".to_owned(), json!(p));
            }
            if let Some(n) = note {
                body.insert("note".to_owned(), json!(n));
            }
            let req = parse_grant(&grant_id, &Value::Object(body)).map_err(refused)?;
            let (meter, caller) = meter_on(&store, &tenant).await?;
            print(
                &meter
                    .put_grant(&caller, &wallet, &grant_id, req)
                    .await
                    .map_err(refused)?,
            )
        }
        WalletCommand::Show {
            owner,
            id,
            tenant,
            store,
        } => {
            let wallet = subscriber(&owner, &id)?;
            let (meter, caller) = meter_on(&store, &tenant).await?;
            print(&meter.wallet(&caller, &wallet).await.map_err(refused)?)
        }
        WalletCommand::Void {
            owner,
            id,
            grant_id,
            tenant,
            store,
        } => {
            let wallet = subscriber(&owner, &id)?;
            let (meter, caller) = meter_on(&store, &tenant).await?;
            print(
                &meter
                    .void_grant(&caller, &wallet, &grant_id)
                    .await
                    .map_err(refused)?,
            )
        }
    }
}
