//! `meter-loadgen`: loads a running `meter serve` over HTTP/1.1 keep-alive connections and
//! prints one JSON line: requests/s, latency percentiles (HDR histogram), errors and
//! answers by status.
//!
//! Each connection is one task that sends its next request when the previous answer has
//! been read in full (closed loop). The run stops by itself after `--duration` seconds or
//! `--requests` requests, whichever comes first. Only loopback targets are accepted.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
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

mod audit;
mod scenario;

use scenario::{MixedStep, Scenario, PREFIX};

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
    /// Before the load, subscribe every user to this plan (needs an admin key), e.g.
    /// `enterprise` (no call or token limits) so that checks and reservations are allowed.
    #[arg(long)]
    plan: Option<String>,
    /// After the load: retry every usage request that got no 200, then audit every user's
    /// export (counters recomputed from raw events and open holds, compared exactly; in
    /// the mixed scenario also the acknowledged event ids). Exits non-zero on a difference.
    /// Needs an admin key.
    #[arg(long)]
    audit: bool,
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

/// What the mixed scenario's connections sent and were told, for the audit.
#[derive(Default)]
struct Ledger {
    /// Acknowledged event ids, by user.
    acked: BTreeMap<String, BTreeSet<String>>,
    /// Usage bodies that got no 200: (user, event id, body); retried before the audit.
    unacked: Vec<(String, String, Value)>,
    /// Recently acknowledged bodies, re-sent as duplicates.
    resend: VecDeque<Value>,
    duplicates_sent: u64,
    duplicates_confirmed: u64,
    /// A re-sent acknowledged event answered `recorded`: the first one had been lost.
    duplicates_recorded: u64,
    reservations: u64,
    released: u64,
    settled: u64,
    left_to_expire: u64,
}

impl Ledger {
    fn merge(&mut self, other: Ledger) {
        for (user, ids) in other.acked {
            self.acked.entry(user).or_default().extend(ids);
        }
        self.unacked.extend(other.unacked);
        self.duplicates_sent += other.duplicates_sent;
        self.duplicates_confirmed += other.duplicates_confirmed;
        self.duplicates_recorded += other.duplicates_recorded;
        self.reservations += other.reservations;
        self.released += other.released;
        self.settled += other.settled;
        self.left_to_expire += other.left_to_expire;
    }

    /// Books the answer to a one-event usage request.
    fn usage(&mut self, user: &str, id: &str, body: Value, answer: &Result<Answer>) -> bool {
        match answer {
            Ok(a) if a.status == 200 => {
                self.acked
                    .entry(user.to_owned())
                    .or_default()
                    .insert(id.to_owned());
                if self.resend.len() == 256 {
                    self.resend.pop_front();
                }
                self.resend.push_back(body);
                true
            }
            _ => {
                self.unacked.push((user.to_owned(), id.to_owned(), body));
                false
            }
        }
    }
}

async fn mixed_step(
    plan: &Plan,
    conn: &mut Conn,
    tally: &mut Tally,
    ledger: &mut Ledger,
    (index, seq, user): (usize, u64, &str),
    measured: bool,
) {
    let key = &plan.args.key;
    let usage_path = format!("{PREFIX}/usage");
    let mut step = scenario::mixed_step(seq);
    if step == MixedStep::Duplicate && ledger.resend.is_empty() {
        step = MixedStep::Ingest;
    }
    match step {
        MixedStep::Check => {
            let body = scenario::check_body(user, false);
            let (took, answer) = timed(
                conn,
                Method::POST,
                &format!("{PREFIX}/check"),
                key,
                Some(&body),
            )
            .await;
            record(tally, false, took, &answer, measured);
        }
        MixedStep::Reserve(then) => {
            let mut body = scenario::check_body(user, true);
            if then == 2 {
                body["reservation_ttl_seconds"] = json!(2);
            }
            let (took, answer) = timed(
                conn,
                Method::POST,
                &format!("{PREFIX}/check"),
                key,
                Some(&body),
            )
            .await;
            record(tally, false, took, &answer, measured);
            let Some(id) = answer
                .ok()
                .filter(|a| a.status == 200)
                .and_then(|a| scenario::reservation_id(&a.body))
            else {
                return;
            };
            ledger.reservations += 1;
            match then {
                0 => {
                    let path = format!("{PREFIX}/reservations/{id}/release");
                    let (took, answer) =
                        timed(conn, Method::POST, &path, key, Some(&json!({}))).await;
                    record(tally, true, took, &answer, measured);
                    ledger.released += u64::from(answer.is_ok_and(|a| a.status == 200));
                }
                1 => {
                    let event_id = format!("{}-{index}-{seq}-s", plan.run);
                    let mut body = scenario::event(&event_id, user, seq);
                    body["reservation_id"] = json!(id);
                    let (took, answer) =
                        timed(conn, Method::POST, &usage_path, key, Some(&body)).await;
                    record(tally, false, took, &answer, measured);
                    ledger.settled += u64::from(ledger.usage(user, &event_id, body, &answer));
                }
                _ => ledger.left_to_expire += 1,
            }
        }
        MixedStep::Ingest => {
            let event_id = format!("{}-{index}-{seq}", plan.run);
            let body = scenario::event(&event_id, user, seq);
            let (took, answer) = timed(conn, Method::POST, &usage_path, key, Some(&body)).await;
            record(tally, false, took, &answer, measured);
            ledger.usage(user, &event_id, body, &answer);
        }
        MixedStep::Duplicate => {
            let body = ledger.resend[seq as usize % ledger.resend.len()].clone();
            let (took, answer) = timed(conn, Method::POST, &usage_path, key, Some(&body)).await;
            record(tally, false, took, &answer, measured);
            ledger.duplicates_sent += 1;
            if let Ok(a) = &answer {
                match scenario::event_status(&a.body).as_deref() {
                    Some("duplicate") => ledger.duplicates_confirmed += 1,
                    Some("recorded") => ledger.duplicates_recorded += 1,
                    _ => {}
                }
            }
        }
        MixedStep::Dashboard => {
            let path = format!("{PREFIX}/{}/{user}", plan.dashboard_path);
            let (took, answer) = timed(conn, Method::GET, &path, key, None).await;
            record(tally, false, took, &answer, measured);
        }
    }
}

async fn worker(plan: Arc<Plan>, index: usize) -> Result<(Tally, Ledger)> {
    let args = &plan.args;
    let mut tally = Tally::new()?;
    let mut ledger = Ledger::default();
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
            Scenario::Check | Scenario::Reserve | Scenario::CheckBudgets => {
                let reserve = args.scenario == Scenario::Reserve;
                let mut body = scenario::check_body(user, reserve);
                if args.scenario == Scenario::CheckBudgets {
                    body["org_id"] = scenario::BUDGET_ORG.into();
                }
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
            Scenario::Mixed => {
                mixed_step(
                    &plan,
                    &mut conn,
                    &mut tally,
                    &mut ledger,
                    (index, seq, user),
                    measured,
                )
                .await
            }
        }
    }
    Ok((tally, ledger))
}

/// Every user the run loads.
fn users(args: &Args) -> Vec<String> {
    (0..args.connections)
        .flat_map(|c| {
            (0..args.users_per_connection.max(1))
                .map(move |k| format!("{}-{c}-{k}", args.user_prefix))
        })
        .collect()
}

/// `PUT /user/{user}/subscription` `{"plan": plan}` for every user.
async fn subscribe(args: &Args, plan: &str) -> Result<()> {
    let mut conn = Conn {
        addr: args.addr,
        sender: None,
    };
    for user in users(args) {
        let path = format!("{PREFIX}/user/{user}/subscription");
        let a = conn
            .send(
                Method::PUT,
                &path,
                &args.key,
                Some(&json!({ "plan": plan })),
            )
            .await?;
        if a.status != 200 {
            bail!(
                "subscribing {user} to {plan}: {} {}",
                a.status,
                String::from_utf8_lossy(&a.body)
            );
        }
    }
    Ok(())
}

/// Retries the unacknowledged usage requests (until a 200, 20 tries each), then audits
/// every user's export; the JSON summary of the audit.
async fn retry_and_audit(args: &Args, ledger: &mut Ledger, known_ids: bool) -> Result<Value> {
    let mut conn = Conn {
        addr: args.addr,
        sender: None,
    };
    let unacked = std::mem::take(&mut ledger.unacked);
    let retried = unacked.len();
    let mut differences = Vec::new();
    for (user, id, body) in unacked {
        let mut last = String::new();
        let mut ok = false;
        for attempt in 0..30u64 {
            let (_, answer) = timed(
                &mut conn,
                Method::POST,
                &format!("{PREFIX}/usage"),
                &args.key,
                Some(&body),
            )
            .await;
            match answer {
                Ok(a) if a.status == 200 => {
                    ok = true;
                    break;
                }
                Ok(a) => last = format!("{} {}", a.status, String::from_utf8_lossy(&a.body)),
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(100 * (attempt + 1).min(10))).await;
        }
        if ok {
            ledger.acked.entry(user).or_default().insert(id);
        } else {
            // Not acknowledged: if it is stored anyway, the audit reports it too.
            differences.push(format!(
                "{user}: event {id} never answered 200 on retry; last answer: {last}"
            ));
        }
    }
    let empty = BTreeSet::new();
    let (mut events, mut open, mut users_with_events) = (0, 0, 0);
    let all = users(args);
    for user in &all {
        let path = format!("{PREFIX}/user/{user}/export");
        let (_, answer) = timed(&mut conn, Method::GET, &path, &args.key, None).await;
        let a = answer.with_context(|| format!("exporting {user}"))?;
        if a.status != 200 {
            bail!(
                "exporting {user}: {} {}",
                a.status,
                String::from_utf8_lossy(&a.body)
            );
        }
        let v: Value = serde_json::from_slice(&a.body)?;
        let acked = known_ids.then(|| ledger.acked.get(user).unwrap_or(&empty));
        let u = audit::audit_user(&v["data"], acked)
            .map_err(|e| anyhow::anyhow!("export of {user} unreadable: {e}"))?;
        events += u.events;
        open += u.open_reservations;
        users_with_events += usize::from(u.events > 0);
        differences.extend(u.differences.into_iter().map(|d| format!("{user}: {d}")));
    }
    if ledger.duplicates_recorded > 0 {
        differences.push(format!(
            "{} re-sent acknowledged events were recorded anew (the first was lost)",
            ledger.duplicates_recorded
        ));
    }
    for d in differences.iter().take(20) {
        eprintln!("audit difference: {d}");
    }
    Ok(json!({
        "users": all.len(),
        "users_with_events": users_with_events,
        "events": events,
        "acknowledged_events": ledger.acked.values().map(BTreeSet::len).sum::<usize>(),
        "retried_usage_requests": retried,
        "open_reservations": open,
        "differences": differences.len(),
    }))
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
    if let Some(p) = &args.plan {
        subscribe(&args, p).await?;
    }
    let dashboard_path = if matches!(args.scenario, Scenario::Dashboard | Scenario::Mixed) {
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
    let mut ledger = Ledger::default();
    for t in tasks {
        let (tally, l) = t.await??;
        total.merge(&tally)?;
        ledger.merge(l);
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
    if args.scenario == Scenario::Mixed {
        out["mixed"] = json!({
            "reservations": ledger.reservations,
            "released": ledger.released,
            "settled": ledger.settled,
            "left_to_expire": ledger.left_to_expire,
            "duplicates_sent": ledger.duplicates_sent,
            "duplicates_confirmed": ledger.duplicates_confirmed,
            "unacknowledged_usage_requests": ledger.unacked.len(),
        });
    }
    let mut failed = false;
    if args.audit {
        let audit = retry_and_audit(&args, &mut ledger, args.scenario == Scenario::Mixed).await?;
        failed = audit["differences"] != json!(0);
        out["audit"] = audit;
    }
    println!("{out}");
    if failed {
        bail!("the audit found differences (see above)");
    }
    Ok(())
}
