//! `meter`: the local server and the operator's command-line tool.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use meter_core::config::{self, StoreLocation};
use meter_core::domain::{Role, TenantId};
use meter_core::store::Store;

mod admin;
mod budgets;
mod doctor;
mod healthcheck;
mod migrate;
mod pricing;
mod serve;
mod subscription;
mod tokens;
mod wallet;

use pricing::CatalogFormat;

#[derive(Parser)]
#[command(
    name = "meter",
    version,
    about = "Usage metering and usage-based subscriptions for paid AI and web APIs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve every route on one machine (SQLite file store by default, or a DynamoDB table).
    Serve(serve::ServeArgs),
    /// Price catalogs: quote events, import LiteLLM or native catalogs.
    Pricing {
        #[command(subcommand)]
        command: PricingCommand,
    },
    /// Subscription plans.
    Plans {
        #[command(subcommand)]
        command: PlansCommand,
    },
    /// Subscriptions.
    Subscription {
        #[command(subcommand)]
        command: SubscriptionCommand,
    },
    /// Budgets: limits beyond plans on a user, an org or a team (docs/budgets.md).
    Budgets {
        #[command(subcommand)]
        command: budgets::BudgetsCommand,
    },
    /// Prepaid-credit wallets: grants, balances, voids (docs/credits.md).
    Wallet {
        #[command(subcommand)]
        command: wallet::WalletCommand,
    },
    /// API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// End-user dashboard tokens (docs/web.md).
    Tokens {
        #[command(subcommand)]
        command: TokensCommand,
    },
    /// Run one aggregation pass: close ended periods into invoices, renew subscriptions,
    /// expire holds, re-price unpriced events, retry undelivered alerts and invoices.
    Aggregate {
        /// Act as of this instant (RFC 3339; default: now).
        #[arg(long)]
        at: Option<chrono::DateTime<chrono::Utc>>,
        /// Close a period only once it ended this many minutes before --at.
        #[arg(long, default_value_t = 10)]
        grace_minutes: u32,
        /// Publish alerts and invoices to this SNS topic (default: logged).
        #[arg(long, env = "ALERT_TOPIC_ARN")]
        alert_topic_arn: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Check a store (schema or table, TTL, bootstrap data), the clock and the alert topic;
    /// prints one line per check and exits non-zero on a problem.
    Doctor(doctor::DoctorArgs),
    /// One GET /healthz to a running `meter serve` (container health checks); exits 0 on 200.
    Healthcheck(healthcheck::HealthcheckArgs),
    /// Rewrite a store written by an earlier version into this version's layout
    /// (idempotent, resumable; docs/operations.md, "Upgrading: meter migrate").
    Migrate(migrate::MigrateArgs),
    /// The DynamoDB table.
    Table {
        #[command(subcommand)]
        command: TableCommand,
    },
}

#[derive(Subcommand)]
enum PricingCommand {
    /// Read JSON-lines events on stdin, write one JSON line with `cost_usd` per event, in order.
    Quote {
        /// Quote against this catalog file instead of the shipped default catalog.
        #[arg(long)]
        catalog: Option<PathBuf>,
        /// Format of --catalog: native or litellm.
        #[arg(long, default_value = "native")]
        format: CatalogFormat,
        /// When a LiteLLM catalog's prices take effect.
        #[arg(long, default_value = "1970-01-01T00:00:00Z")]
        effective_from: chrono::DateTime<chrono::Utc>,
    },
    /// Add the price versions of a catalog file to the store (shared, or one tenant's).
    Import {
        /// The catalog file.
        file: PathBuf,
        /// native or litellm.
        #[arg(long, default_value = "native")]
        format: CatalogFormat,
        /// When the imported LiteLLM prices take effect (RFC 3339; default: now).
        #[arg(long)]
        effective_from: Option<chrono::DateTime<chrono::Utc>>,
        /// Add the versions to this tenant only (default: the shared catalog).
        #[arg(long)]
        tenant: Option<TenantId>,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Subcommand)]
enum PlansCommand {
    /// List a tenant's plans (the shipped defaults without --db/--table).
    List {
        #[arg(long, default_value = "default")]
        tenant: TenantId,
        #[command(flatten)]
        store: OptionalStoreArgs,
    },
}

#[derive(Subcommand)]
enum SubscriptionCommand {
    /// Create or change a user's subscription (the rules of PUT /user/{id}/subscription).
    Set(subscription::SetArgs),
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create an API key and print it once (only its hash is stored).
    Create {
        #[arg(long)]
        tenant: TenantId,
        #[arg(long, value_enum)]
        role: RoleArg,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revoke an API key: named by its id with --id and --tenant (as `keys create` and
    /// `keys list` show it), by its hash with --hash, or read from standard input (so it
    /// stays out of the shell history and the process list).
    Revoke {
        /// The key's id, `key_` + 16 hex digits (with --tenant).
        #[arg(long, requires = "tenant", conflicts_with = "hash")]
        id: Option<String>,
        /// The tenant of the key named by --id.
        #[arg(long, requires = "id")]
        tenant: Option<TenantId>,
        /// The key's lowercase hex SHA-256 (`printf %s "$KEY" | sha256sum`) instead of the key.
        #[arg(long)]
        hash: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List a tenant's keys: id, role and creation time, oldest first (never key material).
    List {
        #[arg(long)]
        tenant: TenantId,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Subcommand)]
enum TokensCommand {
    /// Rotate a tenant's token signing key: new tokens get a new key; tokens of the old
    /// key stay valid for --grace-seconds.
    RotateSecret(tokens::RotateArgs),
}

#[derive(Subcommand)]
enum TableCommand {
    /// Create the DynamoDB table with the documented schema and TTL (idempotent).
    Create {
        #[arg(long, env = "TABLE_NAME")]
        table: String,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum RoleArg {
    Service,
    Admin,
}

/// Where the data lives: a SQLite file (default `./meter.db`) or a DynamoDB table.
#[derive(Args, Clone)]
pub struct StoreArgs {
    /// SQLite database file.
    #[arg(long, conflicts_with = "table")]
    pub db: Option<PathBuf>,
    /// DynamoDB table (configured from the usual AWS environment; AWS_ENDPOINT_URL for an emulator).
    #[arg(long)]
    pub table: Option<String>,
}

#[derive(Args, Clone)]
pub struct OptionalStoreArgs {
    #[arg(long, conflicts_with = "table")]
    pub db: Option<PathBuf>,
    #[arg(long)]
    pub table: Option<String>,
}

impl StoreArgs {
    pub fn location(&self) -> StoreLocation {
        StoreLocation::from_flags(self.db.clone(), self.table.clone())
    }

    pub async fn open(&self) -> Result<Arc<dyn Store>> {
        Ok(config::open_store(&self.location()).await?)
    }
}

/// What a revocation tells the operator (the key's id, never a piece of the key).
fn revoked(key: &meter_core::domain::ApiKeyRecord) {
    eprintln!(
        "Revoked the {} key {} of tenant {}. Processes that cached it accept it for up to 30 s more.",
        key.role.as_str(),
        key.id(),
        key.tenant
    );
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    if let Command::Healthcheck(args) = &cli.command {
        return healthcheck::run(args); // no runtime needed: one blocking request
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve(args) => serve::run(args).await,
        Command::Healthcheck(args) => healthcheck::run(&args),
        Command::Doctor(args) => doctor::run(args).await,
        Command::Pricing {
            command:
                PricingCommand::Quote {
                    catalog,
                    format,
                    effective_from,
                },
        } => quote(catalog, format, effective_from),
        Command::Pricing {
            command:
                PricingCommand::Import {
                    file,
                    format,
                    effective_from,
                    tenant,
                    store,
                },
        } => {
            let store = store.open().await?;
            import(
                store.as_ref(),
                &file,
                format,
                effective_from,
                tenant.as_ref(),
            )
            .await
        }
        Command::Plans {
            command: PlansCommand::List { tenant, store },
        } => {
            let plans = if store.db.is_none() && store.table.is_none() {
                meter_core::limits::default_plans()
            } else {
                let location = StoreLocation::from_flags(store.db, store.table);
                config::open_store(&location)
                    .await?
                    .list_plans(&tenant)
                    .await?
            };
            for plan in plans {
                println!("{}", serde_json::to_string(&plan)?);
            }
            Ok(())
        }
        Command::Subscription {
            command: SubscriptionCommand::Set(args),
        } => subscription::set(args).await,
        Command::Budgets { command } => budgets::run(command).await,
        Command::Wallet { command } => wallet::run(command).await,
        Command::Keys {
            command:
                KeysCommand::Create {
                    tenant,
                    role,
                    store,
                },
        } => {
            let store = store.open().await?;
            let now = chrono::Utc::now();
            meter_core::service::bootstrap::ensure_tenant(store.as_ref(), &tenant, now).await?;
            let role = match role {
                RoleArg::Service => Role::Service,
                RoleArg::Admin => Role::Admin,
            };
            let key = meter_core::auth::generate_key(&tenant, role, now);
            store.put_api_key(&key.record).await?;
            println!("{}", key.secret);
            eprintln!(
                "Created the {} key {} for tenant {tenant}. The key is shown only this once; only its hash is stored. Its id names it in `meter keys list` and `meter keys revoke --id`.",
                role.as_str(),
                key.record.id()
            );
            Ok(())
        }
        Command::Keys {
            command: KeysCommand::List { tenant, store },
        } => {
            let store = store.open().await?;
            let keys = store.list_api_keys(&tenant).await?;
            if keys.is_empty() {
                eprintln!("Tenant {tenant} has no keys.");
            }
            for key in keys {
                println!(
                    "{}  {:<7}  {}",
                    key.id(),
                    key.role.as_str(),
                    key.created_at
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                );
            }
            Ok(())
        }
        Command::Keys {
            command:
                KeysCommand::Revoke {
                    id: Some(id),
                    tenant: Some(tenant),
                    store,
                    ..
                },
        } => {
            let id = id.trim();
            if meter_core::auth::parse_key_id(id).is_none() {
                bail!("--id takes a key id: `key_` and 16 lowercase hex digits, as `meter keys list` shows it");
            }
            let store = store.open().await?;
            match store.delete_api_key_by_id(&tenant, id).await? {
                Some(key) => {
                    revoked(&key);
                    Ok(())
                }
                None => bail!(
                    "tenant {tenant} has no key {id}: nothing revoked (already revoked, another tenant or store, or a key from before key ids on DynamoDB: run `meter doctor --table T --upgrade-keys` once)"
                ),
            }
        }
        Command::Keys {
            command: KeysCommand::Revoke { hash, store, .. },
        } => {
            let hash = match hash {
                Some(h) => h.trim().to_owned(),
                None => {
                    let mut secret = String::new();
                    std::io::stdin()
                        .read_line(&mut secret)
                        .context("reading the key from standard input")?;
                    let secret = secret.trim();
                    if secret.is_empty() {
                        bail!("no key on standard input: pipe the key in, or give --hash");
                    }
                    meter_core::auth::hash_key(secret)
                }
            };
            if hash.len() != 64 || !hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                bail!("--hash takes the 64 lowercase hex digits of the key's SHA-256");
            }
            let store = store.open().await?;
            match store.delete_api_key(&hash).await? {
                Some(key) => {
                    revoked(&key);
                    Ok(())
                }
                None => bail!(
                    "no key with hash {}…: nothing revoked (already revoked, or another store?)",
                    &hash[..12]
                ),
            }
        }
        Command::Tokens {
            command: TokensCommand::RotateSecret(args),
        } => tokens::rotate(args).await,
        Command::Aggregate {
            at,
            grace_minutes,
            alert_topic_arn,
            store,
        } => {
            let store = store.open().await?;
            let publisher = config::publisher(alert_topic_arn.as_deref()).await?;
            let meter = meter_core::service::Meter::new(store, publisher);
            let opts = meter_core::service::aggregate::AggregateOptions {
                at,
                grace: chrono::Duration::minutes(i64::from(grace_minutes)),
                budget: None,
            };
            let report = meter.aggregate(&opts).await?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
        Command::Migrate(args) => migrate::run(args).await,
        Command::Table {
            command: TableCommand::Create { table },
        } => {
            if table.is_empty() {
                bail!("--table must not be empty");
            }
            meter_core::store::dynamo::create_table(&config::dynamo_client().await, &table).await?;
            println!("table {table} is ready (TTL on attribute `ttl`)");
            Ok(())
        }
    }
}

fn quote(
    catalog: Option<PathBuf>,
    format: CatalogFormat,
    effective_from: chrono::DateTime<chrono::Utc>,
) -> Result<()> {
    let catalog = match catalog {
        Some(path) => {
            let (catalog, summary) = pricing::load_catalog(&path, format, effective_from)?;
            if let Some(s) = summary {
                eprintln!(
                    "imported {} of {} entries; skipped {:?}",
                    s.imported, s.entries, s.skipped
                );
            }
            catalog
        }
        None => meter_core::pricing::Catalog::default_catalog()?,
    };
    let stats = pricing::quote_lines(&catalog, std::io::stdin().lock(), std::io::stdout().lock())?;
    eprintln!(
        "quoted {} lines: {} priced, {} unpriced, {} errors",
        stats.lines, stats.priced, stats.unpriced, stats.errors
    );
    Ok(())
}

async fn import(
    store: &dyn Store,
    file: &std::path::Path,
    format: CatalogFormat,
    effective_from: Option<chrono::DateTime<chrono::Utc>>,
    tenant: Option<&TenantId>,
) -> Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let versions = match format {
        CatalogFormat::Native => meter_core::pricing::Catalog::from_native_json(&text)?
            .versions()
            .to_vec(),
        CatalogFormat::Litellm => {
            let (versions, summary) = meter_core::pricing::litellm::import(
                &text,
                effective_from.unwrap_or_else(chrono::Utc::now),
            )?;
            eprintln!(
                "read {} entries: {} importable; skipped {:?}",
                summary.entries, summary.imported, summary.skipped
            );
            versions
        }
    };
    // Refuse a file whose versions contradict each other before writing anything.
    meter_core::pricing::Catalog::from_versions(versions.clone())?;
    for v in &versions {
        store
            .put_price_version(tenant, &v.id, &serde_json::to_value(v)?)
            .await?;
    }
    let scope = tenant.map_or_else(
        || "the shared catalog".to_owned(),
        |t| format!("tenant {t}"),
    );
    println!("imported {} price versions into {scope}", versions.len());
    Ok(())
}
