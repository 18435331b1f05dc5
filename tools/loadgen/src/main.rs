//! `meter-loadgen`: loads a running `meter serve` over HTTP/1.1 keep-alive connections and
//! prints one JSON line: requests/s, latency percentiles (HDR histogram), errors and
//! answers by status.
//!
//! Each connection is one task that sends its next request when the previous answer has
//! been read in full (closed loop). The run stops by itself after `--duration` seconds or
//! `--requests` requests, whichever comes first. Only loopback targets are accepted.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::Parser;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

mod scenario;

use scenario::{Scenario, PREFIX};

#[derive(Parser, Debug, Clone)]
#[command(
    name = "meter-loadgen",
    about = "Load test for meter serve (loopback only)"
)]
struct Args {
    /// Server address, e.g. 127.0.0.1:8080 (loopback only).
    #[arg(long)]
    addr: SocketAddr,
    /// API key (service or admin role).
    #[arg(long, env = "METER_API_KEY", hide_env_values = true)]
    key: String,
    #[arg(long, value_enum)]
    scenario: Scenario,
    /// Concurrent keep-alive connections (one request in flight on each).
    #[arg(long, default_value_t = 1)]
    connections: usize,
    /// Seconds of measured load.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of load before measuring starts (not counted).
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Stop after this many measured requests (default: duration only).
    #[arg(long)]
    requests: Option<u64>,
    /// Users per connection; connection `c` uses `{user_prefix}-{c}-{k}`.
    #[arg(long, default_value_t = 50)]
    users_per_connection: usize,
    /// Prefix of the user ids (a fresh one per run keeps limits from running out).
    #[arg(long, default_value = "lg")]
    user_prefix: String,
    /// Events per request in the `batch` scenario.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Tokio worker threads of the load generator.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

/// Latencies and answers seen by one connection.
struct Tally {
    latency: Histogram<u64>,
    release: Histogram<u64>,
    by_status: BTreeMap<u16, u64>,
    errors: u64,
    requests: u64,
}

impl Tally {
    fn new() -> Result<Self> {
        Ok(Self {
            latency: histogram()?,
            release: histogram()?,
            by_status: BTreeMap::new(),
            errors: 0,
            requests: 0,
        })
    }

    fn merge(&mut self, other: &Tally) -> Result<()> {
        self.latency.add(&other.latency)?;
        self.release.add(&other.release)?;
        for (s, n) in &other.by_status {
            *self.by_status.entry(*s).or_default() += n;
        }
        self.errors += other.errors;
        self.requests += other.requests;
        Ok(())
    }
}

/// Microseconds from 1 µs to 60 s, 3 significant digits.
fn histogram() -> Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 60_000_000, 3)?)
}

/// One keep-alive connection; reconnects after a transport error.
struct Conn {
    addr: SocketAddr,
    sender: Option<SendRequest<Full<Bytes>>>,
}

struct Answer {
    status: u16,
    body: Bytes,
}

impl Conn {
    async fn send(
        &mut self,
        method: Method,
        path: &str,
        key: &str,
        body: Option<&Value>,
    ) -> Result<Answer> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            let stream = tokio::net::TcpStream::connect(self.addr).await?;
            stream.set_nodelay(true)?;
            let (sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            self.sender = Some(sender);
        }
        let Some(sender) = self.sender.as_mut() else {
            bail!("no connection");
        };
        let body = match body {
            Some(v) => Bytes::from(serde_json::to_vec(v)?),
            None => Bytes::new(),
        };
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, self.addr.to_string())
            .header(hyper::header::AUTHORIZATION, format!("Bearer {key}"))
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))?;
        let result = async {
            sender.ready().await?;
            let response = sender.send_request(request).await?;
            let status = response.status().as_u16();
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, anyhow::Error>(Answer { status, body })
        }
        .await;
        if result.is_err() {
            self.sender = None;
        }
        result
    }
}

/// Requests still allowed when `--requests` is given.
struct Budget(Option<AtomicU64>);

impl Budget {
    fn take(&self) -> bool {
        match &self.0 {
            None => true,
            Some(left) => left
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok(),
        }
    }
}

struct Plan {
    args: Args,
    run: String,
    dashboard_path: String,
    measure_from: Instant,
    until: Instant,
    budget: Budget,
}

const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

async fn timed(
    conn: &mut Conn,
    method: Method,
    path: &str,
    key: &str,
    body: Option<&Value>,
) -> (Duration, Result<Answer>) {
    let start = Instant::now();
    let answer =
        match tokio::time::timeout(REQUEST_TIMEOUT, conn.send(method, path, key, body)).await {
            Ok(a) => a,
            Err(_) => {
                conn.sender = None;
                Err(anyhow::anyhow!("timed out after {REQUEST_TIMEOUT:?}"))
            }
        };
    (start.elapsed(), answer)
}

fn record(
    tally: &mut Tally,
    release: bool,
    took: Duration,
    answer: &Result<Answer>,
    measured: bool,
) {
    if !measured {
        return;
    }
    let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
    let h = if release {
        &mut tally.release
    } else {
        &mut tally.latency
    };
    h.saturating_record(micros);
    match answer {
        Ok(a) => {
            *tally.by_status.entry(a.status).or_default() += 1;
            if a.status >= 500 {
                tally.errors += 1;
            }
        }
        Err(_) => tally.errors += 1,
    }
    if !release {
        tally.requests += 1;
    }
}

async fn worker(plan: Arc<Plan>, index: usize) -> Result<Tally> {
    let args = &plan.args;
    let mut tally = Tally::new()?;
    let mut conn = Conn {
        addr: args.addr,
        sender: None,
    };
    let users: Vec<String> = (0..args.users_per_connection.max(1))
        .map(|k| format!("{}-{index}-{k}", args.user_prefix))
        .collect();
    let mut seq: u64 = 0;
    loop {
        let now = Instant::now();
        if now >= plan.until {
            break;
        }
        let measured = now >= plan.measure_from;
        if measured && !plan.budget.take() {
            break;
        }
        let user = &users[(seq as usize) % users.len()];
        seq += 1;
        match args.scenario {
            Scenario::Check | Scenario::Reserve => {
                let reserve = args.scenario == Scenario::Reserve;
                let body = scenario::check_body(user, reserve);
                let (took, answer) = timed(
                    &mut conn,
                    Method::POST,
                    &format!("{PREFIX}/check"),
                    &args.key,
                    Some(&body),
                )
                .await;
                record(&mut tally, false, took, &answer, measured);
                if let Ok(a) = &answer {
                    if let Some(id) = reserve.then(|| scenario::reservation_id(&a.body)).flatten() {
                        let path = format!("{PREFIX}/reservations/{id}/release");
                        let (took, answer) =
                            timed(&mut conn, Method::POST, &path, &args.key, Some(&json!({})))
                                .await;
                        record(&mut tally, true, took, &answer, measured);
                    }
                }
            }
            Scenario::Event | Scenario::Batch => {
                let n = if args.scenario == Scenario::Batch {
                    args.batch
                } else {
                    1
                };
                let body = scenario::usage_body(&plan.run, index, seq * n as u64, user, n);
                let (took, answer) = timed(
                    &mut conn,
                    Method::POST,
                    &format!("{PREFIX}/usage"),
                    &args.key,
                    Some(&body),
                )
                .await;
                record(&mut tally, false, took, &answer, measured);
            }
            Scenario::Dashboard => {
                let path = format!("{PREFIX}/{}/{user}", plan.dashboard_path);
                let (took, answer) = timed(&mut conn, Method::GET, &path, &args.key, None).await;
                record(&mut tally, false, took, &answer, measured);
            }
        }
    }
    Ok(tally)
}

/// `dashboard` where the server has that route, else `alerts`.
async fn dashboard_path(args: &Args) -> Result<String> {
    let mut conn = Conn {
        addr: args.addr,
        sender: None,
    };
    let probe = format!("{PREFIX}/dashboard/{}-0-0", args.user_prefix);
    let answer = conn
        .send(Method::GET, &probe, &args.key, None)
        .await
        .context("probing the dashboard route")?;
    let absent =
        answer.status == 404 && String::from_utf8_lossy(&answer.body).contains("route_not_found");
    Ok(if absent { "alerts" } else { "dashboard" }.to_owned())
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

fn main() -> Result<()> {
    let args = Args::parse();
    if !args.addr.ip().is_loopback() {
        bail!(
            "meter-loadgen only loads loopback addresses (got {})",
            args.addr
        );
    }
    if args.connections == 0 || args.duration <= 0.0 {
        bail!("--connections and --duration must be positive");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> Result<()> {
    let dashboard_path = if args.scenario == Scenario::Dashboard {
        dashboard_path(&args).await?
    } else {
        "dashboard".to_owned()
    };
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(args.warmup.max(0.0));
    let until = measure_from + Duration::from_secs_f64(args.duration);
    let run_id = format!(
        "{}{}",
        args.user_prefix,
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    );
    let plan = Arc::new(Plan {
        budget: Budget(args.requests.map(AtomicU64::new)),
        args: args.clone(),
        run: run_id,
        dashboard_path,
        measure_from,
        until,
    });
    let tasks: Vec<_> = (0..args.connections)
        .map(|i| tokio::spawn(worker(plan.clone(), i)))
        .collect();
    let mut total = Tally::new()?;
    for t in tasks {
        total.merge(&t.await??)?;
    }
    let measured = Instant::now()
        .min(until)
        .saturating_duration_since(measure_from)
        .as_secs_f64()
        .max(1e-9);
    let rps = total.requests as f64 / measured;
    let mut out = json!({
        "scenario": args.scenario.name(),
        "connections": args.connections,
        "seconds": (measured * 1000.0).round() / 1000.0,
        "requests": total.requests,
        "rps": rps.round(),
        "p50_ms": ms(&total.latency, 0.50),
        "p95_ms": ms(&total.latency, 0.95),
        "p99_ms": ms(&total.latency, 0.99),
        "max_ms": ms(&total.latency, 1.0),
        "errors": total.errors,
        "by_status": total.by_status.iter().map(|(s, n)| (s.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
    });
    let per = args.scenario.events_per_request(args.batch);
    if per > 0 {
        out["events_per_s"] = json!((rps * per as f64).round());
    }
    if args.scenario == Scenario::Dashboard {
        out["route"] = json!(format!("{PREFIX}/{}/{{user_id}}", plan.dashboard_path));
    }
    if args.scenario == Scenario::Reserve {
        out["releases"] = json!(total.release.len());
        out["release_p50_ms"] = json!(ms(&total.release, 0.50));
        out["release_p99_ms"] = json!(ms(&total.release, 0.99));
    }
    println!("{out}");
    Ok(())
}
