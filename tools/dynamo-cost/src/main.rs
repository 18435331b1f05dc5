//! `dynamo-cost`: DynamoDB requests and capacity units per meter operation, and the
//! on-demand cost per million events and checks. Run it against an emulator:
//!
//!   scripts/with-moto cargo run --release -p dynamo-cost
//!
//! It creates a fresh table, serves the routes in-process over a `DynamoStore` whose client
//! counts its requests (`RequestCounter`) and asks for `ReturnConsumedCapacity: TOTAL` on
//! each, and sends each operation `--reps` times for one user on the Enterprise plan (no
//! call or token limits, so no alert fires) whose state item already holds a period of
//! usage. Around each operation it scans the table with a second, uncounted client, and
//! computes units from the item sizes before and after (see `units`). Prints one JSON line
//! per operation and one with the costs.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use aws_sdk_dynamodb::Client;
use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt as _;
use meter_core::domain::{PlanName, Role, Subscription, SubscriptionStatus, TenantId, UserId};
use meter_core::periods::{Anchor, BillingCycle, Schedule};
use meter_core::service::{bootstrap, Meter};
use meter_core::store::dynamo::{self, DynamoStore, RequestCounter};
use meter_core::store::Store;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use serde_json::{json, Value};
use tower::ServiceExt as _;

mod capture;
mod units;

use capture::Capture;
use units::{call_units, item_size, reported_units, to_json, Snapshot, Units};

/// On-demand prices, us-east-1, USD per million request units, in force since
/// 2024-11-01 (they were 1.25 and 0.25 before).
const WRITE_PRICE: Decimal = dec!(0.625);
const READ_PRICE: Decimal = dec!(0.125);
const OLD_WRITE_PRICE: Decimal = dec!(1.25);
const OLD_READ_PRICE: Decimal = dec!(0.25);
const USER: &str = "cost-user";

struct Bench {
    router: axum::Router,
    key: String,
    plain: Client,
    table: String,
    counter: RequestCounter,
    capture: Capture,
}

/// What one operation cost, averaged over its repetitions.
struct Row {
    name: &'static str,
    status: u16,
    requests: BTreeMap<String, Decimal>,
    units: Units,
    reported: Decimal,
    reps: u32,
}

impl Bench {
    async fn snapshot(&self) -> Result<Snapshot> {
        let mut out = Snapshot::new();
        let mut start = None;
        loop {
            let page = self
                .plain
                .scan()
                .table_name(&self.table)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await?;
            for item in page.items() {
                let json: units::Item = item.iter().map(|(k, v)| (k.clone(), to_json(v))).collect();
                let s = |n: &str| {
                    item.get(n)
                        .and_then(|v| v.as_s().ok())
                        .cloned()
                        .unwrap_or_default()
                };
                out.insert((s("PK"), s("SK")), json);
            }
            match page.last_evaluated_key() {
                Some(k) => start = Some(k.clone()),
                None => return Ok(out),
            }
        }
    }

    async fn send(&self, method: &str, path: &str, body: Option<Value>) -> Result<(u16, Value)> {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {}", self.key))
            .header("content-type", "application/json")
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))?;
        let res = self.router.clone().oneshot(req).await?;
        let status = res.status().as_u16();
        let bytes = res.into_body().collect().await?.to_bytes();
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    /// Sends one request and returns its answer and what it cost in DynamoDB.
    async fn measure(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<(Value, Sample)> {
        let before = self.snapshot().await?;
        self.counter.take();
        self.capture.take();
        let (status, answer) = self.send(method, path, body).await?;
        let mut requests = self.counter.take();
        let calls = self.capture.take();
        let after = self.snapshot().await?;
        let mut units = Units::default();
        let mut reported = Decimal::ZERO;
        for c in &calls {
            if c.status >= 400 {
                // A cancelled transaction or failed condition: charged all the same.
                *requests.entry("failed".to_owned()).or_default() += 1;
            }
            units += call_units(c, &before, &after);
            reported += reported_units(c).unwrap_or(Decimal::ZERO);
        }
        Ok((
            answer,
            Sample {
                status,
                requests,
                units,
                reported,
            },
        ))
    }
}

/// What one request cost.
struct Sample {
    status: u16,
    requests: BTreeMap<String, u64>,
    units: Units,
    reported: Decimal,
}

fn average(name: &'static str, samples: Vec<Sample>) -> Row {
    let n = Decimal::from(samples.len().max(1) as u64);
    let mut requests: BTreeMap<String, Decimal> = BTreeMap::new();
    let mut units = Units::default();
    let mut reported = Decimal::ZERO;
    let mut status = 0;
    for Sample {
        status: s,
        requests: r,
        units: u,
        reported: rep,
    } in &samples
    {
        status = status.max(*s);
        for (op, k) in r {
            *requests.entry(op.clone()).or_default() += Decimal::from(*k);
        }
        units += *u;
        reported += rep;
    }
    for v in requests.values_mut() {
        *v /= n;
    }
    Row {
        name,
        status,
        requests,
        units: Units {
            read: units.read / n,
            write: units.write / n,
            index_write: units.index_write / n,
        },
        reported: reported / n,
        reps: samples.len() as u32,
    }
}

fn event(id: &str) -> Value {
    json!({"event_id": id, "user_id": USER, "provider": "gemini", "model": "gemini-2.5-flash",
           "input_tokens": 1200, "output_tokens": 300, "latency_ms": 350, "status_code": 200})
}

fn print_row(row: &Row) {
    let reqs: Decimal = row
        .requests
        .iter()
        .filter(|(k, _)| k.as_str() != "failed")
        .map(|(_, v)| v)
        .sum();
    println!(
        "{}",
        json!({
            "operation": row.name,
            "status": row.status,
            "reps": row.reps,
            "requests": reqs.normalize().to_string(),
            "by_operation": row.requests.iter().map(|(k, v)| (k.clone(), json!(v.normalize().to_string()))).collect::<serde_json::Map<_, _>>(),
            "read_units": row.units.read.normalize().to_string(),
            "write_units": row.units.write.normalize().to_string(),
            "index_write_units": row.units.index_write.normalize().to_string(),
            "emulator_reported_units": row.reported.normalize().to_string(),
        })
    );
}

#[tokio::main]
async fn main() -> Result<()> {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    if !(endpoint.starts_with("http://127.") || endpoint.starts_with("http://localhost")) {
        bail!("set AWS_ENDPOINT_URL to a local emulator: run through scripts/with-moto");
    }
    let reps: u32 = std::env::args()
        .skip_while(|a| a != "--reps")
        .nth(1)
        .map(|r| r.parse())
        .transpose()?
        .unwrap_or(5);
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let plain = Client::new(&config);
    let table = format!("meter-cost-{}", uuid::Uuid::new_v4().simple());
    dynamo::create_table(&plain, &table).await?;
    let counter = RequestCounter::default();
    let capture = Capture::default();
    let client = Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&config)
            .interceptor(counter.clone())
            .interceptor(capture.clone())
            .build(),
    );
    let store: Arc<dyn Store> = Arc::new(DynamoStore::new(client, table.clone()));
    let tenant = TenantId::parse("default")?;
    let now = chrono::Utc::now();
    bootstrap::bootstrap(store.as_ref(), &tenant, None, now).await?;
    let key = meter_core::auth::generate_key(&tenant, Role::Service, now);
    store.put_api_key(&key.record).await?;
    let user = UserId::parse(USER)?;
    let schedule = Schedule::new(Anchor::Calendar, now, BillingCycle::Monthly);
    store
        .put_subscription(
            &Subscription {
                tenant: tenant.clone(),
                user: user.clone(),
                plan: PlanName::parse("enterprise")?,
                cycle: BillingCycle::Monthly,
                anchor: Anchor::Calendar,
                started_at: now,
                current_period: schedule.period_containing(now)?,
                status: SubscriptionStatus::Active,
                auto_renew: true,
                pending_plan: None,
                prorations: Vec::new(),
                history: Vec::new(),
                version: 1,
                updated_at: now,
            },
            None,
        )
        .await?;
    let meter = Arc::new(Meter::new(
        store,
        Arc::new(meter_core::alerts::LogPublisher),
    ));
    let bench = Bench {
        router: meter_core::http::app(meter),
        key: key.secret,
        plain,
        table,
        counter,
        capture,
    };
    const P: &str = "/api/subscription";

    // A period of usage in the state item, and warm caches (API key, plans, catalog).
    let warm: Vec<Value> = (0..10).map(|i| event(&format!("warm-{i}"))).collect();
    let (s, _) = bench
        .send("POST", &format!("{P}/usage"), Some(json!({"events": warm})))
        .await?;
    if s != 200 {
        bail!("warm-up usage answered {s}");
    }
    let check = json!({"user_id": USER, "provider": "gemini", "model": "gemini-2.5-flash",
                       "estimated_input_tokens": 1200, "estimated_output_tokens": 300});
    bench
        .send("POST", &format!("{P}/check"), Some(check.clone()))
        .await?;
    let (probe, _) = bench
        .send("GET", &format!("{P}/dashboard/{USER}"), None)
        .await?;
    let dashboard = if probe == 404 { "alerts" } else { "dashboard" };

    let mut rows = Vec::new();
    let mut samples = Vec::new();
    for _ in 0..reps {
        let (_, sample) = bench
            .measure("POST", &format!("{P}/check"), Some(check.clone()))
            .await?;
        samples.push(sample);
    }
    rows.push(average("check", samples));

    let (mut reserves, mut releases) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        let mut body = check.clone();
        body["reserve"] = json!(true);
        let (answer, sample) = bench
            .measure("POST", &format!("{P}/check"), Some(body))
            .await?;
        reserves.push(sample);
        let id = answer["data"]["reservation_id"]
            .as_str()
            .context("a reserve answer without reservation_id")?
            .to_owned();
        let (_, sample) = bench
            .measure(
                "POST",
                &format!("{P}/reservations/{id}/release"),
                Some(json!({})),
            )
            .await?;
        releases.push(sample);
    }
    rows.push(average("check with reserve", reserves));
    rows.push(average("release", releases));

    let mut samples = Vec::new();
    for i in 0..reps {
        let (_, sample) = bench
            .measure(
                "POST",
                &format!("{P}/usage"),
                Some(event(&format!("one-{i}"))),
            )
            .await?;
        samples.push(sample);
    }
    rows.push(average("usage, 1 event", samples));

    let mut samples = Vec::new();
    for b in 0..reps {
        let events: Vec<Value> = (0..100).map(|i| event(&format!("batch-{b}-{i}"))).collect();
        let (_, sample) = bench
            .measure(
                "POST",
                &format!("{P}/usage"),
                Some(json!({ "events": events })),
            )
            .await?;
        samples.push(sample);
    }
    rows.push(average("usage, 100-event batch", samples));

    let mut samples = Vec::new();
    for _ in 0..reps {
        let (_, sample) = bench
            .measure("GET", &format!("{P}/{dashboard}/{USER}"), None)
            .await?;
        samples.push(sample);
    }
    rows.push(average(
        if dashboard == "dashboard" {
            "dashboard"
        } else {
            "alerts (no dashboard route)"
        },
        samples,
    ));

    for row in &rows {
        print_row(row);
    }
    let state = bench
        .snapshot()
        .await?
        .get(&(format!("T#default#U#{USER}"), "STATE".to_owned()))
        .map_or(0, item_size);
    let per = |name: &str| rows.iter().find(|r| r.name == name).map(|r| r.units);
    let cost = |u: Units, w: Decimal, r: Decimal| u.write * w + u.read * r;
    let (Some(check), Some(one), Some(batch)) = (
        per("check"),
        per("usage, 1 event"),
        per("usage, 100-event batch"),
    ) else {
        bail!("missing rows");
    };
    let per_event_batched = Units {
        read: batch.read / dec!(100),
        write: batch.write / dec!(100),
        index_write: batch.index_write / dec!(100),
    };
    println!(
        "{}",
        json!({
            "state_item_bytes": state,
            "prices": {"write_per_million": WRITE_PRICE.to_string(), "read_per_million": READ_PRICE.to_string(),
                       "region": "us-east-1", "mode": "on-demand", "since": "2024-11-01"},
            "usd_per_million_checks": cost(check, WRITE_PRICE, READ_PRICE).round_dp(4).to_string(),
            "usd_per_million_events_single": cost(one, WRITE_PRICE, READ_PRICE).round_dp(4).to_string(),
            "usd_per_million_events_batched": cost(per_event_batched, WRITE_PRICE, READ_PRICE).round_dp(4).to_string(),
            "before_2024_11_usd_per_million_checks": cost(check, OLD_WRITE_PRICE, OLD_READ_PRICE).round_dp(4).to_string(),
            "before_2024_11_usd_per_million_events_single": cost(one, OLD_WRITE_PRICE, OLD_READ_PRICE).round_dp(4).to_string(),
            "before_2024_11_usd_per_million_events_batched": cost(per_event_batched, OLD_WRITE_PRICE, OLD_READ_PRICE).round_dp(4).to_string(),
        })
    );
    Ok(())
}
