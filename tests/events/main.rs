//! Every file of `events/` through the function it belongs to, as `cargo lambda invoke
//! --data-file` would send it: API Gateway v2 requests are decoded with
//! `lambda_http::request::from_str` and served by the same router the function's `main`
//! runs, on a fresh SQLite store; the status is the one in the file name
//! (`<case>.<status>.json`) and the response body must validate against `openapi.yaml`.
//! The schedule event is decoded as EventBridge delivers it and drives the aggregation pass.
//!
//! Also checked here: the routes of `template.yaml`, `openapi.yaml`, the routers and the
//! event files agree with each other.

mod budgets;
mod contract;
mod enforcement;
mod prepaid;
mod tenant_orgs;
mod wallets;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use chrono::{DateTime, Datelike, Duration, TimeZone, Utc};
use meter_core::domain::{
    Alert, Invoice, InvoiceStatus, LineItem, PlanName, Reservation, ReservationStatus, Severity,
    TenantId, UserId,
};
use meter_core::service::Meter;
use meter_core::usage::Tally;
use meter_tests::TestApp;
use rust_decimal::{Decimal, RoundingStrategy};
use rust_decimal_macros::dec;
use serde_json::Value;

use contract::{Contract, Route};

/// The keys the committed events carry (`scripts/lambda-local` swaps in keys it creates).
pub const ADMIN_KEY: &str = "mk_events_admin_key_000000000000";
pub const SERVICE_KEY: &str = "mk_events_service_key_0000000000";
/// The open reservation and the alert that `release.200.json` and `mark-read.200.json` name.
const RESERVATION_ID: &str = "rsv_00000000000000000000000000000001_YWxpY2U";
const ALERT_ID: &str = "alt_events_0001";
/// The invoice of `alice`'s previous period that `billing.200.json` shows.
const INVOICE_ID: &str = "inv_events_0001";

/// Routes that take no input (no path id, query or body), so have no bad-input event.
const NO_INPUT: &[(&str, &str)] = &[("GET", "/api/subscription/plans")];

/// The web dashboard's pages (docs/web.md): public (the page holds no data, so
/// no key and no 401/403) and not JSON; their events are checked for status and content
/// type, and each needs one event.
const WEB_PAGES: &[(&str, &str)] = &[("GET", "/"), ("GET", "/ui/{asset}")];

fn is_web_page(route: &Route) -> bool {
    WEB_PAGES
        .iter()
        .any(|(m, p)| route.0 == *m && route.1 == *p)
}

const HTTP_FUNCTIONS: &[&str] = &["limit-check", "usage-ingest", "usage-dashboard"];
const SCHEDULED_FUNCTION: &str = "usage-aggregate";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The router a function's `main` runs (`functions/<name>/src/main.rs`). usage-dashboard
/// also takes the API's `$default` route, so it runs every route: a wrong method on
/// another function's path (which API Gateway sends to `$default`) answers 405 there too.
fn router_of(function: &str) -> fn(Arc<Meter>) -> Router {
    match function {
        "limit-check" => meter_core::http::check_router,
        "usage-ingest" => meter_core::http::usage_router,
        "usage-dashboard" => meter_core::http::app,
        other => panic!("no router for function {other}"),
    }
}

/// One committed event file.
struct EventFile {
    function: String,
    name: String,
    path: PathBuf,
    /// From `<case>.<status>.json`; `None` for non-HTTP events.
    status: Option<u16>,
}

fn event_files() -> Vec<EventFile> {
    let mut out = Vec::new();
    let root = repo().join("events");
    for dir in std::fs::read_dir(&root).expect("events/ exists") {
        let dir = dir.unwrap().path();
        assert!(
            dir.is_dir(),
            "{} : events/ holds one folder per function",
            dir.display()
        );
        let function = dir.file_name().unwrap().to_string_lossy().into_owned();
        for file in std::fs::read_dir(&dir).unwrap() {
            let path = file.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let stem = name.strip_suffix(".json").unwrap_or_else(|| {
                panic!("{}: only .json files belong in events/", path.display())
            });
            let status = stem.rsplit_once('.').map(|(_, s)| {
                s.parse::<u16>()
                    .unwrap_or_else(|_| panic!("{name}: `<case>.<status>.json`"))
            });
            out.push(EventFile {
                function: function.clone(),
                name,
                path,
                status,
            });
        }
    }
    out.sort_by(|a, b| (&a.function, &a.name).cmp(&(&b.function, &b.name)));
    out
}

fn period_start(now: DateTime<Utc>) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0)
        .unwrap()
}

/// The invoice the aggregation would have written for `alice`'s previous period on the
/// basic plan: every kind of line item, exact amounts, the total rounded to cents.
fn previous_invoice(tenant: &TenantId, now: DateTime<Utc>) -> Invoice {
    let end = period_start(now);
    let start = period_start(end - Duration::days(1));
    let line = |kind: &str, description: &str, amount: Decimal| LineItem {
        kind: kind.to_owned(),
        description: description.to_owned(),
        amount_usd: amount,
    };
    let (base, usage, overage, proration, adjustments) = (
        dec!(29),
        dec!(2.00136),
        dec!(0.00272),
        dec!(16.129032258064516129032258065),
        dec!(0.00042),
    );
    let exact = base + usage + overage + proration + adjustments;
    let mut extra = BTreeMap::new();
    extra.insert(
        "rounding".to_owned(),
        meter_core::billing::ROUNDING.to_owned(),
    );
    extra.insert("exact_total_usd".to_owned(), exact.normalize().to_string());
    Invoice {
        id: INVOICE_ID.to_owned(),
        tenant: tenant.clone(),
        user: "alice".to_owned(),
        period: meter_core::periods::Period { start, end },
        plan: PlanName::parse("basic").unwrap(),
        base_usd: base,
        usage_usd: usage,
        overage_usd: overage,
        proration_usd: proration,
        adjustments_usd: adjustments,
        total_usd: exact.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero),
        line_items: vec![
            line("base", "basic plan, monthly base price", base),
            line("usage", "gemini: 2 calls, 3200 tokens", usage),
            line("overage", "usage past the $2 cap at 2 per USD", overage),
            line(
                "proration",
                "upgrade from free to basic: prorated difference",
                proration,
            ),
            line(
                "adjustment",
                "usage of an earlier period recorded after its invoice",
                adjustments,
            ),
        ],
        status: InvoiceStatus::Pending,
        created_at: end + Duration::minutes(5),
        published: true,
        extra,
    }
}

/// `function`'s router on a fresh store as a deployment has it after `meter keys create`
/// (default tenant, plans, catalog), with the events' keys, one open reservation, one
/// unread alert and one invoice of `alice`.
async fn fresh_app(function: &str, reservation_expires_in: Duration) -> TestApp {
    let app = TestApp::setup()
        .keys(ADMIN_KEY, SERVICE_KEY)
        .router(router_of(function))
        .spawn()
        .await;
    let (store, tenant, now) = (&app.store, app.tenant.clone(), Utc::now());
    let alice = UserId::parse("alice").unwrap();
    assert_eq!(Reservation::user_of_id(RESERVATION_ID), Some(alice.clone()));
    let reservation = Reservation {
        id: RESERVATION_ID.to_owned(),
        tenant: tenant.clone(),
        user: alice.clone(),
        provider: meter_core::domain::ProviderId::parse("gemini").unwrap(),
        period_start: period_start(now),
        held: Tally {
            calls: 1,
            tokens: 1600,
            cost_usd: dec!(0.00136),
        },
        status: ReservationStatus::Held,
        created_at: now - Duration::seconds(10),
        expires_at: now + reservation_expires_in,
        budget_holds: Vec::new(),
    };
    store.reserve(&reservation, &[]).await.unwrap();
    let alert = Alert {
        id: ALERT_ID.to_owned(),
        tenant,
        user: alice,
        period_start: period_start(now),
        key: "calls:gemini@80".to_owned(),
        metric: Some("calls:gemini".to_owned()),
        threshold: Some(80),
        severity: Severity::Info,
        title: "80% of gemini calls used".to_owned(),
        message: "alice has used 80 of 100 gemini calls this period".to_owned(),
        created_at: now,
        read: false,
        published: true,
        org: None,
        budget: None,
    };
    assert!(store.create_alert_once(&alert).await.unwrap());
    assert!(store
        .put_invoice_once(&previous_invoice(&alert.tenant, now))
        .await
        .unwrap());
    seed_budget(&app).await;
    wallets::seed(&app).await;
    app
}

/// The budget `get-budget.200.json` and `delete-budget.200.json` name: every member of
/// acme at most $20 a month.
async fn seed_budget(app: &TestApp) {
    use meter_core::budgets::{AppliesTo, Budget, Mode, Scope, Window};
    let budget = Budget {
        id: meter_core::domain::BudgetId::parse("acme-members").unwrap(),
        scope: Scope::Org {
            org_id: meter_core::domain::OrgId::parse("acme").unwrap(),
        },
        applies_to: AppliesTo::EachMember,
        limits: meter_core::limits::Limits(
            [(meter_core::limits::Metric::CostUsd, dec!(20))].into(),
        ),
        window: Window::Month,
        mode: Mode::Hard,
        alert_thresholds: vec![80, 90, 100],
        version: 0,
        updated_at: Utc::now(),
    };
    let put = app.store.put_budget(&app.tenant, &budget).await.unwrap();
    assert!(matches!(put, meter_core::store::BudgetPut::Created(_)));
}

/// The route an API Gateway v2 event was matched to (`routeKey`), e.g.
/// `POST /api/subscription/check`.
fn route_of(event: &Value) -> Route {
    let key = event["routeKey"]
        .as_str()
        .expect("an HTTP API event has a routeKey");
    let (method, path) = key.split_once(' ').expect("routeKey is `METHOD /path`");
    (method.to_owned(), path.to_owned())
}

#[tokio::test]
async fn every_http_event_gets_its_status_from_its_function_and_matches_the_contract() {
    let contract = Contract::load();
    let template = contract::template_routes();
    let mut failures = Vec::new();
    let mut served = 0;
    let mut routes_with_events: BTreeMap<String, BTreeSet<Route>> = BTreeMap::new();
    let mut statuses: BTreeMap<Route, BTreeSet<u16>> = BTreeMap::new();
    let mut default_route_events = 0;
    for file in event_files()
        .into_iter()
        .filter(|f| HTTP_FUNCTIONS.contains(&f.function.as_str()))
    {
        let label = format!("events/{}/{}", file.function, file.name);
        let text = std::fs::read_to_string(&file.path).unwrap();
        let event: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{label}: {e}"));
        if event["routeKey"] == "$default" {
            default_route_events += 1;
            if let Err(e) = serve_default_route(&contract, &file, &text).await {
                failures.push(format!("{label}: {e}"));
            }
            served += 1;
            continue;
        }
        let route = route_of(&event);
        routes_with_events
            .entry(file.function.clone())
            .or_default()
            .insert(route.clone());
        if !template
            .get(&file.function)
            .is_some_and(|r| r.contains(&route))
        {
            failures.push(format!(
                "{label}: {route:?} is not a route of {} in template.yaml",
                file.function
            ));
        }
        let Some(status) = file.status else {
            failures.push(format!(
                "{label}: an HTTP event's name ends in .<status>.json"
            ));
            continue;
        };
        statuses.entry(route.clone()).or_default().insert(status);
        if is_web_page(&route) {
            let app = fresh_app(&file.function, Duration::seconds(300)).await;
            let request = lambda_http::request::from_str(&text).unwrap();
            let reply = app.send(request).await;
            let got = reply.status.as_u16();
            let ty = reply
                .headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            served += 1;
            if got != status || (status == 200 && !ty.starts_with("text/html")) {
                failures.push(format!("{label}: expected {status}, got {got} ({ty})"));
            }
            continue;
        }
        if let Err(e) = contract.response_schema(&route, status) {
            failures.push(format!("{label}: {e}"));
        }
        let request = match lambda_http::request::from_str(&text) {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{label}: lambda_http cannot decode it: {e}"));
                continue;
            }
        };
        if request.method().as_str() != route.0 || request.uri().path() != event["rawPath"] {
            failures.push(format!(
                "{label}: decoded as {} {}, not its routeKey/rawPath",
                request.method(),
                request.uri()
            ));
        }
        let app = fresh_app(&file.function, Duration::seconds(300)).await;
        let reply = app.send(request).await;
        let (got, body) = (reply.status.as_u16(), reply.body);
        served += 1;
        if got != status {
            failures.push(format!("{label}: expected {status}, got {got}: {body}"));
            continue;
        }
        if let Err(e) = contract.validate(&route, status, &body) {
            failures.push(format!(
                "{label}: the {status} body does not match openapi.yaml: {e}\n  body: {body}"
            ));
        }
    }
    for (function, routes) in &template {
        if function == SCHEDULED_FUNCTION {
            continue;
        }
        for route in routes {
            if !routes_with_events
                .get(function)
                .is_some_and(|r| r.contains(route))
            {
                failures.push(format!(
                    "{function}: template route {route:?} has no file in events/{function}/"
                ));
            }
            // Each route: one allowed call, one refused for its key, one with bad input.
            let has = |wanted: &[u16]| {
                statuses
                    .get(route)
                    .is_some_and(|s| wanted.iter().any(|w| s.contains(w)))
            };
            if is_web_page(route) {
                continue; // one event each, checked above
            }
            let takes_input = !NO_INPUT.iter().any(|(m, p)| route.0 == *m && route.1 == *p);
            for (what, wanted, needed) in [
                ("200", &[200][..], true),
                ("401/403", &[401, 403][..], true),
                (
                    "bad-input (400/404/415/422)",
                    &[400, 404, 415, 422][..],
                    takes_input,
                ),
            ] {
                if needed && !has(wanted) {
                    failures.push(format!("{function}: {route:?} has no {what} event"));
                }
            }
        }
    }
    eprintln!("{served} events served with their status");
    assert!(served >= 20, "only {served} events were served");
    assert!(
        default_route_events >= 3,
        "the $default route needs events (unknown path, wrong method)"
    );
    assert!(
        failures.is_empty(),
        "{} problems:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A `$default` event (a request no route of the API matches): it goes to the function
/// the template gives the `$default` route, which answers meter's JSON envelope, 404
/// `route_not_found` or 405 `method_not_allowed`, never API Gateway's `{"message": …}`.
async fn serve_default_route(
    contract: &Contract,
    file: &EventFile,
    text: &str,
) -> Result<(), String> {
    let owner = contract::template_default_route()
        .ok_or("template.yaml has no $default route (an HttpApi event without Method and Path)")?;
    if owner != file.function {
        return Err(format!(
            "the $default route goes to {owner}, not {}",
            file.function
        ));
    }
    let (response, code) = match file.status {
        Some(404) => ("NotFound", "route_not_found"),
        Some(405) => ("MethodNotAllowed", "method_not_allowed"),
        other => {
            return Err(format!(
                "a $default event answers 404 or 405, not {other:?}"
            ))
        }
    };
    let request = lambda_http::request::from_str(text).map_err(|e| e.to_string())?;
    let app = fresh_app(&file.function, Duration::seconds(300)).await;
    let reply = app.send(request).await;
    let status = reply.status.as_u16();
    let body = reply.body;
    if !body.is_object() {
        return Err(format!("not JSON: {body}"));
    }
    if Some(status) != file.status || body["error"]["code"] != code {
        return Err(format!(
            "expected {:?} {code}, got {status}: {body}",
            file.status
        ));
    }
    contract.validate_component(response, &body)
}

#[test]
fn events_exist_only_for_the_four_functions_and_each_has_some() {
    let files = event_files();
    let functions: BTreeSet<&str> = files.iter().map(|f| f.function.as_str()).collect();
    let expected: BTreeSet<&str> = HTTP_FUNCTIONS
        .iter()
        .copied()
        .chain([SCHEDULED_FUNCTION])
        .collect();
    assert_eq!(functions, expected);
    for f in &files {
        assert!(Path::new(&repo())
            .join("functions")
            .join(&f.function)
            .join("Cargo.toml")
            .exists());
    }
}

#[tokio::test]
async fn the_schedule_event_decodes_as_eventbridge_sends_it_and_the_pass_expires_holds() {
    let text =
        std::fs::read_to_string(repo().join("events/usage-aggregate/schedule.json")).unwrap();
    let event: aws_lambda_events::event::cloudwatch_events::CloudWatchEvent =
        serde_json::from_str(&text).unwrap();
    assert_eq!(event.detail_type.as_deref(), Some("Scheduled Event"));
    assert_eq!(event.source.as_deref(), Some("aws.events"));
    // The function accepts any JSON (`LambdaEvent<Value>`): the file must be that too.
    let _: Value = serde_json::from_str(&text).unwrap();

    // The handler's work (functions/usage-aggregate/src/main.rs): one aggregation pass.
    let app = fresh_app("limit-check", Duration::seconds(-1)).await;
    let opts = meter_core::service::aggregate::AggregateOptions::default();
    let first = app.meter.aggregate(&opts).await.unwrap();
    assert_eq!((first.expired_reservations, first.alerts_delivered), (1, 0));
    assert!(first.complete);
    let again = app.meter.aggregate(&opts).await.unwrap();
    assert_eq!(
        (
            again.expired_reservations,
            again.invoices_created,
            again.repriced_events
        ),
        (0, 0, 0),
        "a second pass changes nothing"
    );
    let release =
        std::fs::read_to_string(repo().join("events/limit-check/release.200.json")).unwrap();
    let body = app
        .send(lambda_http::request::from_str(&release).unwrap())
        .await
        .body;
    assert_eq!(body["data"]["status"], "expired", "{body}");
}

/// Serves one committed event on a fresh store: its status and JSON body.
async fn serve(function: &str, file: &str) -> (u16, Value) {
    let text = std::fs::read_to_string(repo().join("events").join(function).join(file)).unwrap();
    let app = fresh_app(function, Duration::seconds(300)).await;
    let reply = app
        .send(lambda_http::request::from_str(&text).unwrap())
        .await;
    (reply.status.as_u16(), reply.body)
}

#[tokio::test]
async fn the_billing_event_shows_the_seeded_invoice_with_exact_amounts_and_every_line_kind() {
    let (status, body) = serve("usage-dashboard", "billing.200.json").await;
    assert_eq!(status, 200, "{body}");
    let invoices = body["data"]["invoices"].as_array().unwrap();
    assert_eq!(invoices.len(), 1, "{body}");
    let invoice = &invoices[0];
    assert_eq!(invoice["id"], INVOICE_ID);
    assert_eq!(invoice["plan"], "basic");
    // 29 + 2.00136 + 0.00272 + 16.129032258064516129032258065 + 0.00042 = 47.1335322…
    assert_eq!(invoice["total_usd"], "47.13");
    assert_eq!(invoice["proration_usd"], "16.129032258064516129032258065");
    let kinds: Vec<&str> = invoice["line_items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["base", "usage", "overage", "proration", "adjustment"]
    );
    Contract::load()
        .validate(
            &(
                "GET".to_owned(),
                "/api/subscription/billing/{user_id}".to_owned(),
            ),
            200,
            &body,
        )
        .unwrap();
}

#[tokio::test]
async fn put_pricing_needs_the_catalog_format_with_an_id() {
    let (status, body) = serve("usage-dashboard", "put-pricing.200.json").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"]["ids"],
        serde_json::json!(["acme/acme-1@2026-01-01T00:00:00Z"])
    );
    let (status, body) = serve("usage-dashboard", "put-pricing-without-id.422.json").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("invalid_price_version")),
        "{body}"
    );
    assert_eq!(
        body["error"]["details"]["errors"][0]["field"],
        "versions[0]"
    );
}

/// The 200 body of a served event must validate, and each mutation of it must not.
/// What a broken body has, and how to break a real one so (applied to its `data`).
type Mutation = (&'static str, fn(&mut Value));

async fn assert_contract_rejects(file: &str, route: &str, mutations: &[Mutation]) {
    let contract = Contract::load();
    let (method, path) = route.split_once(' ').unwrap();
    let route = (method.to_owned(), path.to_owned());
    let (status, body) = serve("usage-dashboard", file).await;
    assert_eq!(status, 200, "{body}");
    contract.validate(&route, 200, &body).unwrap();
    for (what, mutate) in mutations {
        let mut broken = body.clone();
        mutate(&mut broken["data"]);
        assert!(
            contract.validate(&route, 200, &broken).is_err(),
            "{file}: openapi.yaml accepts a body with {what}"
        );
    }
}

fn remove(v: &mut Value, key: &str) {
    v.as_object_mut().unwrap().remove(key);
}

#[tokio::test]
async fn the_contract_rejects_read_bodies_that_differ_from_the_real_ones() {
    assert_contract_rejects(
        "dashboard.200.json",
        "GET /api/subscription/dashboard/{user_id}",
        &[
            ("alerts as a bare array", |d| {
                d["alerts"] = d["alerts"]["items"].clone()
            }),
            ("limits as a bare metric map", |d| {
                d["limits"] = d["limits"]["limits"].clone()
            }),
            ("a projected cost as a float", |d| {
                d["projections"]["projected_monthly_cost"] = serde_json::json!(0.5)
            }),
            ("no cost_cap", |d| remove(&mut d["projections"], "cost_cap")),
            ("no days_remaining", |d| {
                remove(&mut d["summary"], "days_remaining")
            }),
            ("a percentage as a string", |d| {
                d["usage_percentages"]["cost_usd"] = serde_json::json!("0")
            }),
            ("trends without periods", |d| {
                remove(&mut d["trends"], "periods")
            }),
        ],
    )
    .await;
    assert_contract_rejects(
        "billing.200.json",
        "GET /api/subscription/billing/{user_id}",
        &[
            ("a float total", |d| {
                d["invoices"][0]["total_usd"] = serde_json::json!(47.13)
            }),
            ("an unknown line kind", |d| {
                d["invoices"][0]["line_items"][0]["kind"] = serde_json::json!("tax")
            }),
            ("no adjustments_usd", |d| {
                remove(&mut d["invoices"][0], "adjustments_usd")
            }),
            ("a period without its name", |d| {
                remove(&mut d["invoices"][0]["period"], "name")
            }),
        ],
    )
    .await;
    assert_contract_rejects(
        "usage.200.json",
        "GET /api/subscription/usage/{user_id}",
        &[
            ("a float provider cost", |d| {
                d["provider_breakdown"]["gemini"]["cost"] = serde_json::json!(0.0)
            }),
            ("no error_rate", |d| remove(d, "error_rate")),
            ("a null average latency", |d| {
                d["avg_response_time_ms"] = Value::Null
            }),
        ],
    )
    .await;
    assert_contract_rejects(
        "trends.200.json",
        "GET /api/subscription/usage/{user_id}/trends",
        &[("no user_id", |d| remove(d, "user_id"))],
    )
    .await;
    assert_contract_rejects(
        "subscription.200.json",
        "GET /api/subscription/user/{user_id}/subscription",
        &[
            ("no subscription key", |d| remove(d, "subscription")),
            ("an unknown status", |d| {
                d["status"] = serde_json::json!("paused")
            }),
        ],
    )
    .await;
    assert_contract_rejects(
        "put-subscription.200.json",
        "PUT /api/subscription/user/{user_id}/subscription",
        &[
            ("no change", |d| remove(d, "change")),
            ("a null subscription", |d| d["subscription"] = Value::Null),
            ("a subscription without its version", |d| {
                remove(&mut d["subscription"], "version")
            }),
        ],
    )
    .await;
    assert_contract_rejects(
        "put-plan.200.json",
        "PUT /api/subscription/plans/{name}",
        &[
            ("the plan unwrapped", |d| *d = d["plan"].clone()),
            ("a float price", |d| {
                d["plan"]["monthly_price_usd"] = serde_json::json!(49.0)
            }),
        ],
    )
    .await;
    assert_contract_rejects(
        "put-pricing.200.json",
        "PUT /api/subscription/pricing",
        &[("no ids", |d| remove(d, "ids"))],
    )
    .await;
}

#[test]
fn every_route_the_routers_serve_is_in_openapi_and_the_template() {
    let contract = Contract::load();
    let template = contract::template_routes();
    let served = contract::router_routes();
    assert!(served.len() >= 7, "routes.rs parsing found only {served:?}");
    let in_template: BTreeSet<&Route> = template.values().flatten().collect();
    for route in &served {
        assert!(
            contract.operation(route).is_some(),
            "{route:?} is served but not in openapi.yaml"
        );
        assert!(
            in_template.contains(route),
            "{route:?} is served but not in template.yaml"
        );
    }
}

#[test]
fn openapi_and_the_template_describe_the_same_routes_with_the_same_functions() {
    let contract = Contract::load();
    let template = contract::template_routes();
    let mut from_template = BTreeSet::new();
    for (function, routes) in &template {
        for route in routes {
            let op = contract.operation(route).unwrap_or_else(|| {
                panic!("{route:?} ({function}) is in template.yaml but not in openapi.yaml")
            });
            assert_eq!(op["x-function"], function.as_str(), "{route:?}: x-function");
            from_template.insert(route.clone());
        }
    }
    let from_openapi: BTreeSet<Route> = contract.routes().into_iter().collect();
    assert_eq!(from_openapi, from_template);
    assert_eq!(
        from_openapi.len(),
        45,
        "18 operations of the API, the web dashboard's GET /, GET /ui/{{asset}}, \
         POST /tokens, GET /admin/users and GET /admin/alerts, the four budget routes, the seven org routes, \
         the eight wallet routes, GET /org/{{org_id}}/export, GET /admin/wallets and GET /admin/orgs"
    );
}

#[test]
fn every_error_code_of_the_code_is_in_openapi() {
    let contract = Contract::load();
    let codes = contract.error_codes();
    let src = std::fs::read_to_string(repo().join("shared/src/http/error.rs")).unwrap();
    // `ApiError::status_and_code`: every literal code it maps a variant to.
    let body = src
        .split("pub fn status_and_code(&self)")
        .nth(1)
        .unwrap()
        .split("pub fn status(&self)")
        .next()
        .unwrap();
    let mut found = 0;
    for piece in body.split(", \"").skip(1) {
        let code = piece.split('"').next().unwrap();
        assert!(
            codes.contains(code),
            "error code `{code}` is missing from ErrorCode in openapi.yaml"
        );
        found += 1;
    }
    assert!(found >= 12, "found only {found} codes in error.rs");
    // Codes built elsewhere with `bad_request("…")` or `bad_parameter("…")`.
    for file in [
        "shared/src/http/routes.rs",
        "shared/src/http/extract.rs",
        "shared/src/service/reads.rs",
        "shared/src/service/dashboard.rs",
    ] {
        let src = std::fs::read_to_string(repo().join(file)).unwrap();
        let calls = src.split("bad_request(").skip(1);
        for piece in calls.chain(src.split("bad_parameter(").skip(1)) {
            let piece = piece.trim_start();
            if let Some(rest) = piece.strip_prefix('"') {
                let code = rest.split('"').next().unwrap();
                assert!(
                    codes.contains(code),
                    "{file}: code `{code}` is missing from openapi.yaml"
                );
            }
        }
    }
}

#[test]
fn every_field_error_code_of_the_code_is_a_validation_code_in_openapi() {
    let contract = Contract::load();
    let (validation, all) = (contract.validation_codes(), contract.error_codes());
    let found = contract::field_error_codes();
    let codes: BTreeSet<&str> = found.iter().map(|(_, c)| c.as_str()).collect();
    for must in [
        "unknown_plan",
        "invalid_value",
        "negative_limit",
        "duplicate_id",
        "invalid_count",
    ] {
        assert!(
            codes.contains(must),
            "the source scan missed `{must}`: {codes:?}"
        );
    }
    for (file, code) in &found {
        assert!(
            validation.contains(code) && all.contains(code),
            "{file}: 422 code `{code}` is missing from ValidationCode or ErrorCode in openapi.yaml"
        );
    }
}

#[test]
fn the_contract_rejects_a_response_that_breaks_it() {
    let contract = Contract::load();
    let route = ("POST".to_owned(), "/api/subscription/check".to_owned());
    let ok = serde_json::json!({"success": true, "data": {
        "allowed": true, "user_id": "alice", "provider": "gemini", "plan": "free",
        "period": {"start": "2026-11-01T00:00:00Z", "end": "2026-12-01T00:00:00Z"},
        "estimated_cost_usd": "0.0008", "usage_status": "active",
        "remaining": {"calls:gemini": 99, "cost_usd": "1.9992"},
        "usage_percentages": {"calls:gemini": 1.0}}});
    contract.validate(&route, 200, &ok).unwrap();
    let mut float_money = ok.clone();
    float_money["data"]["estimated_cost_usd"] = serde_json::json!(0.0008);
    assert!(
        contract.validate(&route, 200, &float_money).is_err(),
        "money must be a string"
    );
    let mut missing = ok.clone();
    missing["data"].as_object_mut().unwrap().remove("plan");
    assert!(contract.validate(&route, 200, &missing).is_err());
    let wrong_code = serde_json::json!({"success": false, "error": {"code": "forbidden", "message": "m", "details": {}}});
    assert!(contract.validate(&route, 401, &wrong_code).is_err());
    assert!(
        contract.validate(&route, 418, &wrong_code).is_err(),
        "undocumented status"
    );
}

/// `x-beyond-schema` (the rules a request schema cannot state, which scripts/test-openapi
/// lets a schema-valid request be refused for) names, for each rule, a status and code
/// that the operation's own error responses document, and says what the rule is.
#[test]
fn every_rule_beyond_the_schema_is_a_documented_error_of_its_operation() {
    let contract = Contract::load();
    let codes = contract.error_codes();
    let mut rules = 0;
    for route in contract.routes() {
        let op = contract.operation(&route).unwrap();
        let Some(list) = op.get("x-beyond-schema") else {
            continue;
        };
        for rule in list.as_array().expect("x-beyond-schema is a list") {
            let status = rule["status"].as_u64().expect("a status") as u16;
            let code = rule["code"].as_str().expect("a code");
            let field = rule["field"].as_str().expect("a field");
            let text = rule["rule"].as_str().expect("the rule");
            assert!(!text.is_empty(), "{route:?} {code}: the rule says nothing");
            assert!(
                codes.contains(code),
                "{route:?}: `{code}` is not an ErrorCode"
            );
            let problem = serde_json::json!({"field": field, "code": code, "message": "m"});
            let error = match (status, route.1.as_str()) {
                (422, "/api/subscription/usage") => serde_json::json!({"code": "invalid_events",
                    "details": {"events": [{"index": 0, "errors": [problem]}]}}),
                (422, _) => serde_json::json!({"code": code, "details": {"errors": [problem]}}),
                _ => serde_json::json!({"code": code, "details": {}}),
            };
            let mut body = serde_json::json!({"success": false, "error": error});
            body["error"]["message"] = serde_json::json!("m");
            contract
                .validate(&route, status, &body)
                .unwrap_or_else(|e| {
                    panic!("{route:?}: rule `{code}` is not a documented {status} answer: {e}")
                });
            rules += 1;
        }
    }
    assert!(rules >= 20, "only {rules} rules beyond the schema");
}

#[tokio::test]
async fn a_subscription_whose_plan_is_gone_answers_404_not_found_as_openapi_says() {
    use meter_core::domain::{Subscription, SubscriptionStatus};
    use meter_core::periods::{Anchor, BillingCycle, Schedule};
    let app = fresh_app("usage-dashboard", Duration::seconds(300)).await;
    let now = Utc::now();
    let sub = Subscription {
        tenant: TenantId::parse("default").unwrap(),
        user: UserId::parse("orphan").unwrap(),
        plan: PlanName::parse("retired").unwrap(),
        cycle: BillingCycle::Monthly,
        anchor: Anchor::Calendar,
        started_at: period_start(now),
        current_period: Schedule::calendar().period_containing(now).unwrap(),
        status: SubscriptionStatus::Active,
        auto_renew: true,
        pending_plan: None,
        prorations: Vec::new(),
        history: Vec::new(),
        version: 0,
        updated_at: now,
    };
    app.store.put_subscription(&sub, None).await.unwrap();
    let contract = Contract::load();
    let requests = [
        (
            "POST",
            "/api/subscription/check",
            "/api/subscription/check",
            r#"{"user_id": "orphan", "provider": "gemini", "model": "gemini-2.5-flash"}"#,
        ),
        (
            "GET",
            "/api/subscription/user/{user_id}/subscription",
            "/api/subscription/user/orphan/subscription",
            "",
        ),
        (
            "GET",
            "/api/subscription/usage/{user_id}",
            "/api/subscription/usage/orphan",
            "",
        ),
        (
            "GET",
            "/api/subscription/usage/{user_id}/trends",
            "/api/subscription/usage/orphan/trends",
            "",
        ),
        (
            "GET",
            "/api/subscription/dashboard/{user_id}",
            "/api/subscription/dashboard/orphan",
            "",
        ),
    ];
    for (method, route, path, body) in requests {
        let request = axum::http::Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {SERVICE_KEY}"))
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body))
            .unwrap();
        let reply = app.send(request).await;
        let (status, answer) = (reply.status.as_u16(), reply.body);
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (404, Some("not_found")),
            "{method} {path}: {answer}"
        );
        contract
            .validate(&(method.to_owned(), route.to_owned()), 404, &answer)
            .unwrap_or_else(|e| panic!("{method} {route}: {e}"));
    }
}
