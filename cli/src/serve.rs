//! `meter serve`: every route on one machine.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use meter_core::config::{self, StoreLocation};
use meter_core::domain::TenantId;
use meter_core::http::ops::MetricsAccess;
use meter_core::service::{bootstrap, Meter};

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// SQLite database file (default ./meter.db).
    #[arg(long, conflicts_with = "table")]
    db: Option<PathBuf>,
    /// Serve from this DynamoDB table instead (shared by a fleet of servers).
    #[arg(long)]
    table: Option<String>,
    /// Publish alerts to this SNS topic (default: alerts are stored and logged).
    #[arg(long, env = "ALERT_TOPIC_ARN")]
    alert_topic_arn: Option<String>,
    /// Seconds between aggregation passes (invoices, renewals, expiring holds, re-pricing,
    /// retrying the outbox).
    #[arg(long, default_value_t = 60)]
    aggregate_seconds: u64,
    /// Serve GET /metrics (Prometheus) without a key; by default it needs an admin key.
    /// Only where the address is reachable by trusted scrapers alone.
    #[arg(long)]
    metrics_open: bool,
}

pub async fn run(args: ServeArgs) -> Result<()> {
    init_tracing();
    let location = StoreLocation::from_flags(args.db.clone(), args.table.clone());
    let store_name = location.describe();
    let store = config::open_store(&location).await?;
    let tenant = TenantId::parse("default")?;
    let admin_key = std::env::var("METER_BOOTSTRAP_ADMIN_KEY")
        .ok()
        .filter(|k| !k.is_empty());
    let boot = bootstrap::bootstrap(
        store.as_ref(),
        &tenant,
        admin_key.as_deref(),
        chrono::Utc::now(),
    )
    .await
    .context("bootstrapping the store")?;

    let publisher = config::publisher(args.alert_topic_arn.as_deref()).await?;
    let meter = Arc::new(Meter::new(store, publisher));
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("listening on {}", args.addr))?;
    let addr = listener.local_addr()?;
    println!("meter listening on http://{addr} ({store_name})");
    if boot.catalog_loaded > 0 {
        println!(
            "loaded the default price catalog ({} price versions)",
            boot.catalog_loaded
        );
    }
    if let Some(key) = &boot.new_admin_key {
        println!(
            "admin API key for tenant `default` (shown once, only its hash is stored):\n{key}"
        );
    }

    let aggregation = {
        let meter = meter.clone();
        let every = Duration::from_secs(args.aggregate_seconds.max(1));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let opts = meter_core::service::aggregate::AggregateOptions::default();
                match meter.aggregate(&opts).await {
                    Ok(report) => {
                        meter_core::metrics::observe_aggregation(
                            meter.store.as_ref(),
                            &report,
                            meter.now(),
                        )
                        .await
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "aggregation pass failed; retrying at the next tick")
                    }
                }
            }
        })
    };

    let access = if args.metrics_open {
        MetricsAccess::Open
    } else {
        MetricsAccess::AdminKey
    };
    let routes =
        meter_core::http::app(meter.clone()).merge(meter_core::http::ops::router(meter, access));
    axum::serve(listener, routes)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving")?;
    aggregation.abort();
    println!("meter stopped");
    Ok(())
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,tower_http=warn".into());
    // Colours only on a terminal: a log file or a journal gets plain text (and a request's
    // span fields are not wrapped in escape codes on every call).
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
