//! `dynamo-cost`: DynamoDB requests and capacity units per meter operation, and the
//! on-demand cost per million events and checks. Run it against an emulator:
//!
//!   scripts/with-moto cargo run --release -p dynamo-cost
//!
//! It creates a fresh table, serves the routes in-process over a `DynamoStore` whose client
//! counts its requests (`RequestCounter`) and asks for `ReturnConsumedCapacity: TOTAL` on
//! each, and sends each operation `--reps` times for two users on the Enterprise plan (no
//! call or token limits, so no alert fires): a NEW user, and an AGED one with 24 closed
//! months of usage on 10 providers (recorded through the store port month by month, each
//! month closed by the service's aggregation at its end, as `meter aggregate --at` does).
//! Both have the current month's usage on the same 10 providers. Around each operation it
//! scans the table with a second, uncounted client, and computes units from the item sizes
//! before and after (see `units`). Prints one JSON line per (user, operation), one per
//! user with its largest item with 8 open reservations, and one with the costs (new user).
//! The budget rows (issue 18) name org `bench-org` and its team `red`, which hold two hard
//! budgets that never deny (a day's calls on the org, a month's cost for each member of the
//! team).

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use aws_sdk_dynamodb::Client;
use axum::body::Body;
use axum::http::Request;
use chrono::{DateTime, Datelike, TimeZone, Utc};
use http_body_util::BodyExt as _;
use meter_core::domain::{
    EventId, ModelId, PlanName, ProviderId, Role, Subscription, SubscriptionStatus, TenantId,
    UsageEvent, UserId,
};
use meter_core::periods::{Anchor, BillingCycle, Schedule};
use meter_core::service::aggregate::AggregateOptions;
use meter_core::service::{bootstrap, Meter};
use meter_core::store::dynamo::{self, DynamoStore, RequestCounter};
use meter_core::store::Store;
use meter_core::usage::UsageCounts;
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
const AGED: &str = "aged-user";
/// The providers both users have usage on.
const PROVIDERS: [&str; 10] = [
    "gemini",
    "openai",
    "anthropic",
    "mistral",
    "cohere",
    "groq",
    "deepseek",
    "xai",
    "together",
    "fireworks",
];
/// Closed months of the aged user.
const MONTHS: u32 = 24;

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
    user: &'static str,
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
        // The scan takes long enough for the service's caches (keys, plans, prices: 30 s)
        // to expire; a check of another user (it writes nothing) refreshes them, so that
        // the measured request costs what it costs with warm caches.
        let warm = json!({"user_id": "warm-user", "provider": "gemini", "model": "gemini-2.5-flash",
                          "estimated_input_tokens": 1, "estimated_output_tokens": 1});
        self.send("POST", "/api/subscription/check", Some(warm))
            .await?;
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

fn average(user: &'static str, name: &'static str, samples: Vec<Sample>) -> Row {
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
        user,
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

fn event(user: &str, id: &str) -> Value {
    json!({"event_id": id, "user_id": user, "provider": "gemini", "model": "gemini-2.5-flash",
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
            "user": row.user,
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

/// The first instant of the calendar month `back` months before the one of `now`.
fn month_start(now: DateTime<Utc>, back: u32) -> DateTime<Utc> {
    let m = now.year() * 12 + now.month0() as i32 - back as i32;
    Utc.with_ymd_and_hms(m.div_euclid(12), m.rem_euclid(12) as u32 + 1, 1, 0, 0, 0)
        .single()
        .expect("a month start")
}

/// An Enterprise subscription of `user` from `started_at` (calendar months).
fn enterprise(tenant: &TenantId, user: &UserId, started_at: DateTime<Utc>) -> Result<Subscription> {
    let schedule = Schedule::new(Anchor::Calendar, started_at, BillingCycle::Monthly);
    Ok(Subscription {
        tenant: tenant.clone(),
        user: user.clone(),
        plan: PlanName::parse("enterprise")?,
        cycle: BillingCycle::Monthly,
        anchor: Anchor::Calendar,
        started_at,
        current_period: schedule.period_containing(started_at)?,
        status: SubscriptionStatus::Active,
        auto_renew: true,
        pending_plan: None,
        prorations: Vec::new(),
        history: Vec::new(),
        version: 1,
        updated_at: started_at,
    })
}

/// One priced event of `user` per provider in the month starting at `month`, at `at`.
fn month_events(
    tenant: &TenantId,
    user: &UserId,
    month: DateTime<Utc>,
    at: DateTime<Utc>,
    tag: &str,
) -> Result<Vec<UsageEvent>> {
    PROVIDERS
        .iter()
        .map(|p| {
            Ok(UsageEvent {
                tenant: tenant.clone(),
                user: user.clone(),
                event_id: EventId::parse(format!("{user}-{tag}-{p}-{}", month.date_naive()))?,
                fingerprint: format!("fp-{tag}-{p}"),
                provider: ProviderId::parse(*p)?,
                model: Some(ModelId::parse("model-1")?),
                timestamp: at,
                period_start: month,
                counts: UsageCounts {
                    input_tokens: 1200,
                    output_tokens: 300,
                    ..UsageCounts::default()
                },
                cost_usd: Some(dec!(0.0012345)),
                price_version: Some(format!("{p}/model-1@2024-01-01T00:00:00Z")),
                estimated: false,
                endpoint: None,
                status_code: Some(200),
                latency_ms: Some(350),
                reservation_id: None,
                metadata: None,
                recorded_at: at,
                org_id: None,
                team_id: None,
                payer: None,
            })
        })
        .collect()
}

/// Builds the aged user's history: 24 months of usage on 10 providers, each month closed
/// by the aggregation at its end (as `meter aggregate --at`).
async fn age(
    store: &Arc<dyn Store>,
    meter: &Meter,
    tenant: &TenantId,
    now: DateTime<Utc>,
) -> Result<()> {
    let user = UserId::parse(AGED)?;
    let first = month_start(now, MONTHS);
    store
        .put_subscription(&enterprise(tenant, &user, first)?, None)
        .await?;
    for back in (1..=MONTHS).rev() {
        let month = month_start(now, back);
        let events = month_events(
            tenant,
            &user,
            month,
            month + chrono::Duration::hours(5),
            "hist",
        )?;
        store.record_events(&events).await?;
        let end = month_start(now, back - 1);
        let report = meter
            .aggregate(&AggregateOptions {
                at: Some(end + chrono::Duration::hours(1)),
                ..AggregateOptions::default()
            })
            .await?;
        if report.invoices_created < 1 {
            bail!("the aggregation at {end} closed no month");
        }
    }
    Ok(())
}

/// Measures every operation for `user`.
async fn profile(bench: &Bench, user: &'static str, reps: u32) -> Result<Vec<Row>> {
    const P: &str = "/api/subscription";
    let check = json!({"user_id": user, "provider": "gemini", "model": "gemini-2.5-flash",
                       "estimated_input_tokens": 1200, "estimated_output_tokens": 300});
    bench
        .send("POST", &format!("{P}/check"), Some(check.clone()))
        .await?;
    let mut rows = Vec::new();
    let mut samples = Vec::new();
    for _ in 0..reps {
        let (_, sample) = bench
            .measure("POST", &format!("{P}/check"), Some(check.clone()))
            .await?;
        samples.push(sample);
    }
    rows.push(average(user, "check", samples));

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
    rows.push(average(user, "check with reserve", reserves));
    rows.push(average(user, "release", releases));

    let mut samples = Vec::new();
    for i in 0..reps {
        let (_, sample) = bench
            .measure(
                "POST",
                &format!("{P}/usage"),
                Some(event(user, &format!("{user}-one-{i}"))),
            )
            .await?;
        samples.push(sample);
    }
    rows.push(average(user, "usage, 1 event", samples));

    let mut samples = Vec::new();
    for b in 0..reps {
        let events: Vec<Value> = (0..100)
            .map(|i| event(user, &format!("{user}-batch-{b}-{i}")))
            .collect();
        let (_, sample) = bench
            .measure(
                "POST",
                &format!("{P}/usage"),
                Some(json!({ "events": events })),
            )
            .await?;
        samples.push(sample);
    }
    rows.push(average(user, "usage, 100-event batch", samples));

    let mut samples = Vec::new();
    for _ in 0..reps {
        let (_, sample) = bench
            .measure("GET", &format!("{P}/dashboard/{user}"), None)
            .await?;
        samples.push(sample);
    }
    rows.push(average(user, "dashboard", samples));
    Ok(rows)
}

/// The two hard budgets the budget operations decide over: org `bench-org` at most 10^9
/// calls a day, and each member of its team `red` at most $10^6 a month (neither denies).
async fn budgets(store: &Arc<dyn Store>, tenant: &TenantId) -> Result<()> {
    use meter_core::budgets::{AppliesTo, Budget, Mode, Scope, Window};
    use meter_core::domain::{BudgetId, OrgId, TeamId};
    use meter_core::limits::{Limits, Metric};
    let org = OrgId::parse("bench-org")?;
    for (id, scope, applies_to, metric, limit, window) in [
        (
            "bench-day",
            Scope::Org {
                org_id: org.clone(),
            },
            AppliesTo::Scope,
            "calls:*",
            dec!(1000000000),
            Window::Day,
        ),
        (
            "bench-members",
            Scope::Team {
                org_id: org.clone(),
                team_id: TeamId::parse("red")?,
            },
            AppliesTo::EachMember,
            "cost_usd",
            dec!(1000000),
            Window::Month,
        ),
    ] {
        let budget = Budget {
            id: BudgetId::parse(id)?,
            scope,
            applies_to,
            limits: Limits(BTreeMap::from([(Metric::parse(metric)?, limit)])),
            window,
            mode: Mode::Hard,
            alert_thresholds: vec![80, 90, 100],
            version: 0,
            updated_at: Utc::now(),
        };
        store.put_budget(tenant, &budget).await?;
    }
    Ok(())
}

/// Measures the operations over budgets for `user`: calls naming org `bench-org` and its
/// team `red`, which hold the two budgets of [`budgets`].
async fn budget_profile(bench: &Bench, user: &'static str, reps: u32) -> Result<Vec<Row>> {
    const P: &str = "/api/subscription";
    let check = json!({"user_id": user, "provider": "gemini", "model": "gemini-2.5-flash",
                       "estimated_input_tokens": 1200, "estimated_output_tokens": 300,
                       "org_id": "bench-org", "team_id": "red"});
    bench
        .send("POST", &format!("{P}/check"), Some(check.clone()))
        .await?;
    let mut rows = Vec::new();
    let mut samples = Vec::new();
    for _ in 0..reps {
        let (_, sample) = bench
            .measure("POST", &format!("{P}/check"), Some(check.clone()))
            .await?;
        samples.push(sample);
    }
    rows.push(average(
        user,
        "check, user + org + team, 2 budgets",
        samples,
    ));

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
    rows.push(average(user, "check with reserve, 2 budgets", reserves));
    rows.push(average(user, "release, 2 budgets", releases));

    let mut samples = Vec::new();
    for i in 0..reps {
        let mut e = event(user, &format!("{user}-org-{i}"));
        e["org_id"] = json!("bench-org");
        e["team_id"] = json!("red");
        let (_, sample) = bench
            .measure("POST", &format!("{P}/usage"), Some(e))
            .await?;
        samples.push(sample);
    }
    rows.push(average(user, "usage, 1 event, 2 budgets", samples));
    Ok(rows)
}

/// The largest item of `user`'s partition once 8 reservations are open (they are
/// released afterwards): (sort key, bytes), and the state item's bytes.
async fn largest_with_open_holds(bench: &Bench, user: &str) -> Result<(String, u64, u64)> {
    const P: &str = "/api/subscription";
    let mut ids = Vec::new();
    for _ in 0..8 {
        let body = json!({"user_id": user, "provider": "gemini", "model": "gemini-2.5-flash",
                          "estimated_input_tokens": 1200, "estimated_output_tokens": 300,
                          "reserve": true});
        let (status, answer) = bench
            .send("POST", &format!("{P}/check"), Some(body))
            .await?;
        let id = answer["data"]["reservation_id"]
            .as_str()
            .with_context(|| format!("reserve answered {status}: {answer}"))?;
        ids.push(id.to_owned());
    }
    let pk = format!("T#default#U#{user}");
    let snapshot = bench.snapshot().await?;
    let mut largest = (String::new(), 0);
    let mut state = 0;
    for ((item_pk, sk), item) in &snapshot {
        if *item_pk != pk {
            continue;
        }
        let size = item_size(item);
        if sk == "STATE" {
            state = size;
            if std::env::var_os("DYNAMO_COST_DUMP").is_some() {
                let mut attrs: Vec<_> = item
                    .iter()
                    .map(|(k, v)| (k.len() as u64 + units::value_size(v), k.clone()))
                    .collect();
                attrs.sort();
                eprintln!("{user} STATE {size} bytes: {attrs:?}");
            }
        }
        if size > largest.1 {
            largest = (sk.clone(), size);
        }
    }
    for id in ids {
        bench
            .send(
                "POST",
                &format!("{P}/reservations/{id}/release"),
                Some(json!({})),
            )
            .await?;
    }
    Ok((largest.0, largest.1, state))
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
    let config = meter_core::config::load_aws().await;
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
    let now = Utc::now();
    bootstrap::bootstrap(store.as_ref(), &tenant, None, month_start(now, MONTHS + 1)).await?;
    let key = meter_core::auth::generate_key(&tenant, Role::Service, now);
    store.put_api_key(&key.record).await?;
    let meter = Arc::new(Meter::new(
        store.clone(),
        Arc::new(meter_core::alerts::LogPublisher),
    ));
    age(&store, &meter, &tenant, now).await?;
    store
        .put_subscription(&enterprise(&tenant, &UserId::parse(USER)?, now)?, None)
        .await?;
    // The current month's usage on the 10 providers, for both users.
    for user in [USER, AGED] {
        let events = month_events(
            &tenant,
            &UserId::parse(user)?,
            month_start(now, 0),
            now,
            "now",
        )?;
        store.record_events(&events).await?;
    }
    let bench = Bench {
        router: meter_core::http::app(meter),
        key: key.secret,
        plain,
        table,
        counter,
        capture,
    };
    // Warm caches (API key, plans, catalog).
    let warm: Vec<Value> = (0..10).map(|i| event(USER, &format!("warm-{i}"))).collect();
    let (s, _) = bench
        .send(
            "POST",
            "/api/subscription/usage",
            Some(json!({"events": warm})),
        )
        .await?;
    if s != 200 {
        bail!("warm-up usage answered {s}");
    }

    budgets(&store, &tenant).await?;
    let mut rows = profile(&bench, USER, reps).await?;
    rows.extend(budget_profile(&bench, USER, reps).await?);
    rows.extend(profile(&bench, AGED, reps).await?);
    rows.extend(budget_profile(&bench, AGED, reps).await?);
    for row in &rows {
        print_row(row);
    }
    for user in [USER, AGED] {
        let (sk, bytes, state) = largest_with_open_holds(&bench, user).await?;
        println!(
            "{}",
            json!({"user": user, "open_reservations": 8, "providers": PROVIDERS.len(),
                   "closed_months": if user == AGED { MONTHS } else { 0 },
                   "largest_item": sk, "largest_item_bytes": bytes, "state_item_bytes": state})
        );
    }
    let per = |name: &str| {
        rows.iter()
            .find(|r| r.name == name && r.user == USER)
            .map(|r| r.units)
    };
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
