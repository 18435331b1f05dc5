//! `escrow-sim`: runs the budget-escrow design for each shard count and prints a Markdown
//! table (or `--json`). Exits 1 if any run admitted more than the limit or broke an
//! invariant.

use std::process::ExitCode;

use clap::Parser;
use escrow_sim::dynamo::Capacity;
use escrow_sim::sim::{self, Config, Pick};
use rust_decimal::Decimal;

#[derive(Parser, Debug)]
#[command(
    name = "escrow-sim",
    about = "Budget escrow over N shard items against a model of DynamoDB's per-partition limits"
)]
struct Args {
    /// Shard counts to run (1 = today's single item holding the whole limit).
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8,16")]
    shards: Vec<usize>,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Concurrent closed-loop clients.
    #[arg(long, default_value_t = 256)]
    clients: usize,
    /// Distinct users (client c acts for user c mod users); default: one per client.
    #[arg(long)]
    users: Option<usize>,
    /// The scope's limit L (exact decimal).
    #[arg(long, default_value = "2000")]
    limit: Decimal,
    /// Amounts are uniform in [10^-scale, max-amount].
    #[arg(long, default_value = "0.05")]
    max_amount: Decimal,
    /// Decimal places of amounts (6 for USD, 0 for calls).
    #[arg(long, default_value_t = 6)]
    scale: u32,
    /// Percentage of admissions that are events (shard write inside a transaction, 2 WCU);
    /// the rest are reservations (a plain conditional UpdateItem, 1 WCU).
    #[arg(long, default_value_t = 50)]
    event_pct: u32,
    /// Largest grant a refill moves from the pool to a shard.
    #[arg(long, default_value = "5")]
    chunk: Decimal,
    /// Always grant `chunk` (default: min(chunk, pool / 2N), never below the shortfall).
    #[arg(long)]
    fixed_chunk: bool,
    /// Siblings a request probes before it is denied (all of them once the pool is tight).
    #[arg(long, default_value_t = 2)]
    probe: usize,
    /// How a request picks its home shard.
    #[arg(long, value_enum, default_value = "random")]
    pick: PickArg,
    /// Do not drain stranded allowance back to the pool at the first denial.
    #[arg(long)]
    no_drain: bool,
    /// A client stops after this many final denials in a row.
    #[arg(long, default_value_t = 3)]
    give_up_after: u32,
    /// Write units per second per partition.
    #[arg(long, default_value_t = 1000)]
    wcu: u64,
    /// Read units per second per partition.
    #[arg(long, default_value_t = 3000)]
    rcu: u64,
    /// Milliseconds of throughput a partition can burst.
    #[arg(long, default_value_t = 100)]
    bucket_ms: u64,
    /// Size of a shard / pool item in bytes (write units = ⌈bytes / 1024⌉).
    #[arg(long, default_value_t = 200)]
    item_bytes: u64,
    /// How long a committed transaction holds its items (µs).
    #[arg(long, default_value_t = 1000)]
    tx_hold_us: u64,
    /// Round trips (µs) of a read, a write and a transaction.
    #[arg(long, default_value_t = 2000)]
    read_us: u64,
    #[arg(long, default_value_t = 4000)]
    write_us: u64,
    #[arg(long, default_value_t = 8000)]
    transact_us: u64,
    /// Stop at this simulated time.
    #[arg(long, default_value_t = 900)]
    max_seconds: u64,
    /// Print the reports as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum PickArg {
    Random,
    Hash,
}

fn config(args: &Args, shards: usize) -> Config {
    let base = Config::standard(shards, args.seed);
    Config {
        clients: args.clients,
        users: args.users.unwrap_or(args.clients),
        limit: args.limit,
        max_amount: args.max_amount,
        scale: args.scale,
        event_pct: args.event_pct,
        chunk: args.chunk,
        adaptive: !args.fixed_chunk,
        probe: args.probe,
        pick: match args.pick {
            PickArg::Random => Pick::Random,
            PickArg::Hash => Pick::Hash,
        },
        drain: !args.no_drain,
        give_up_after: args.give_up_after,
        capacity: Capacity {
            wcu_per_s: args.wcu,
            rcu_per_s: args.rcu,
            bucket_ms: args.bucket_ms,
            item_bytes: args.item_bytes,
            tx_lock: args.tx_hold_us * 1_000,
        },
        read_latency: args.read_us * 1_000,
        write_latency: args.write_us * 1_000,
        transact_latency: args.transact_us * 1_000,
        max_time: args.max_seconds * 1_000_000_000,
        ..base
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let configs: Vec<Config> = args.shards.iter().map(|&n| config(&args, n)).collect();
    for cfg in &configs {
        if let Err(e) = cfg.validate() {
            eprintln!("escrow-sim: {e}");
            return ExitCode::from(2);
        }
    }
    // Independent runs, one thread each (each is deterministic on its own).
    let reports: Vec<sim::Report> = std::thread::scope(|s| {
        let handles: Vec<_> = configs
            .iter()
            .map(|cfg| s.spawn(move || sim::run(cfg)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .expect("a simulation thread panicked")
                    .expect("validated above")
            })
            .collect()
    });
    if args.json {
        match serde_json::to_string_pretty(&reports) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("escrow-sim: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        print!("{}", escrow_sim::table(&reports));
    }
    let bad: Vec<&sim::Report> = reports
        .iter()
        .filter(|r| !r.within_limit || r.invariant_violations > 0)
        .collect();
    for r in &bad {
        eprintln!(
            "escrow-sim: {} shards: admitted {} of {}, {} invariant violations: {}",
            r.shards,
            r.admitted_amount,
            r.limit,
            r.invariant_violations,
            r.first_violation.as_deref().unwrap_or("-")
        );
    }
    if bad.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
