//! `meter`: local server and operator CLI. (Minimal wiring for `pricing quote`; the full
//! command tree is assembled elsewhere.)

mod pricing;

use std::io;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use meter_core::pricing::Catalog;

#[derive(Parser)]
#[command(
    name = "meter",
    version,
    about = "Usage metering and usage-based subscriptions"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Price catalog commands.
    Pricing {
        #[command(subcommand)]
        command: PricingCommand,
    },
}

#[derive(Subcommand)]
enum PricingCommand {
    /// Reads JSON lines of events on stdin, writes one JSON line with `cost_usd` per event.
    Quote {
        /// Quote against this catalog file instead of the default catalog.
        #[arg(long)]
        catalog: Option<PathBuf>,
        /// Format of `--catalog`: native or litellm.
        #[arg(long, default_value = "native")]
        format: pricing::CatalogFormat,
        /// When a LiteLLM catalog's prices take effect.
        #[arg(long, default_value = "1970-01-01T00:00:00Z")]
        effective_from: DateTime<Utc>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Pricing {
            command:
                PricingCommand::Quote {
                    catalog,
                    format,
                    effective_from,
                },
        } => {
            let catalog = match catalog {
                Some(path) => {
                    let (catalog, summary) = pricing::load_catalog(&path, format, effective_from)?;
                    if let Some(s) = summary {
                        eprintln!(
                            "imported {} of {} entries ({} alias entries); skipped {:?}",
                            s.imported, s.entries, s.aliases, s.skipped
                        );
                    }
                    catalog
                }
                None => Catalog::default_catalog()?,
            };
            let stats = pricing::quote_lines(&catalog, io::stdin().lock(), io::stdout().lock())?;
            eprintln!(
                "quoted {} lines: {} priced, {} unpriced, {} errors",
                stats.lines, stats.priced, stats.unpriced, stats.errors
            );
        }
    }
    Ok(())
}
