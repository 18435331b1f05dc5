//! DynamoDB throttling and transaction conflicts, injected by an SDK interceptor on a
//! client pointed at the emulator (`scripts/with-moto`), with the production client
//! configuration (the SDK's standard retries, the adapter's own transaction retries).
//!
//! A throttled attempt never reaches the table: its body is replaced by `{}` (which the
//! emulator rejects without effect) and its answer by DynamoDB's 400 for the fault —
//! `ProvisionedThroughputExceededException` (or `ThrottlingException`,
//! `RequestLimitExceeded`), or for a conflict `TransactionCanceledException` with a
//! `TransactionConflict` reason (`TransactWriteItems`) or `TransactionConflictException`
//! (a plain write; tests in `contention`). A few faults are retried until
//! the request succeeds (attempts counted); faults that never stop give a clean 503
//! `store_unavailable` and no partial write, and the same request afterwards records once.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeDeserializationInterceptorContextMut, BeforeTransmitInterceptorContextMut,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::{HttpResponse, Metadata};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use meter_core::domain::{EventId, UserId};
use meter_core::store::dynamo::{self, DynamoStore};
use meter_core::store::{Store, UsageStore as _};
use meter_tests::{Reply, TestApp};
use serde_json::{json, Value};

/// The DynamoDB error an attempt gets instead of reaching the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `ProvisionedThroughputExceededException`.
    Throughput,
    /// `ThrottlingException`.
    Throttling,
    /// `RequestLimitExceeded`.
    RequestLimit,
    /// A transaction on the item is in progress: `TransactionCanceledException` with a
    /// `TransactionConflict` reason for `TransactWriteItems`, `TransactionConflictException`
    /// for a plain write.
    Conflict,
}

/// The fault planned for one operation.
#[derive(Debug)]
struct Planned {
    kind: Kind,
    /// How many more attempts get it (`None`: all).
    times: Option<u32>,
    /// Only attempts whose request body contains this text (`None`: every attempt).
    matching: Option<String>,
}

#[derive(Debug, Default)]
struct Plan {
    faults: BTreeMap<&'static str, Planned>,
    /// Attempts sent per operation, faulted or not.
    attempts: BTreeMap<String, u32>,
    /// Attempts faulted per operation.
    faulted: BTreeMap<String, u32>,
}

/// The interceptor: shares its plan with the test through clones.
#[derive(Debug, Clone, Default)]
pub(crate) struct Throttler(Arc<Mutex<Plan>>);

/// Set on an attempt that is faulted: (kind, items of the transaction if it is one).
#[derive(Debug, Clone)]
struct Faulted(Option<(Kind, Option<usize>)>);

impl Storable for Faulted {
    type Storer = StoreReplace<Self>;
}

impl Throttler {
    /// The next `times` attempts of `op` (all of them with `None`) get `kind`.
    pub(crate) fn fault(&self, op: &'static str, kind: Kind, times: Option<u32>) {
        self.plan(op, kind, times, None);
    }

    /// Like [`Throttler::fault`], but only attempts whose request body contains `text`
    /// (one user's items: its key) count and get the fault.
    pub(crate) fn fault_matching(
        &self,
        op: &'static str,
        kind: Kind,
        times: Option<u32>,
        text: &str,
    ) {
        self.plan(op, kind, times, Some(text.to_owned()));
    }

    fn plan(&self, op: &'static str, kind: Kind, times: Option<u32>, matching: Option<String>) {
        let mut plan = self.0.lock().unwrap();
        plan.faults.insert(
            op,
            Planned {
                kind,
                times,
                matching,
            },
        );
        plan.attempts.clear();
        plan.faulted.clear();
    }

    pub(crate) fn heal(&self) {
        let mut plan = self.0.lock().unwrap();
        plan.faults.clear();
        plan.attempts.clear();
        plan.faulted.clear();
    }

    pub(crate) fn attempts(&self, op: &str) -> u32 {
        self.0
            .lock()
            .unwrap()
            .attempts
            .get(op)
            .copied()
            .unwrap_or(0)
    }

    /// Attempts of `op` that got the fault since it was planned.
    pub(crate) fn faulted(&self, op: &str) -> u32 {
        self.0.lock().unwrap().faulted.get(op).copied().unwrap_or(0)
    }
}

impl Intercept for Throttler {
    fn name(&self) -> &'static str {
        "faults::Throttler"
    }

    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let op = cfg
            .load::<Metadata>()
            .map_or("unknown", Metadata::name)
            .to_owned();
        let body: Option<Value> = context
            .request()
            .body()
            .bytes()
            .and_then(|b| serde_json::from_slice(b).ok());
        let mut plan = self.0.lock().unwrap();
        *plan.attempts.entry(op.clone()).or_default() += 1;
        let kind = match plan.faults.get_mut(op.as_str()) {
            Some(p)
                if p.matching.as_ref().is_some_and(|text| {
                    !body.as_ref().is_some_and(|b| b.to_string().contains(text))
                }) =>
            {
                None
            }
            Some(Planned {
                kind, times: None, ..
            }) => Some(*kind),
            Some(Planned {
                kind,
                times: Some(n),
                ..
            }) if *n > 0 => {
                *n -= 1;
                Some(*kind)
            }
            _ => None,
        };
        if kind.is_some() {
            *plan.faulted.entry(op.clone()).or_default() += 1;
        }
        let faulted = kind.map(|kind| {
            // `None`: not a transaction.
            let items = body
                .as_ref()
                .and_then(|v| v["TransactItems"].as_array().map(Vec::len));
            // The table never sees this attempt.
            let request = context.request_mut();
            *request.body_mut() = SdkBody::from("{}");
            request.headers_mut().insert("content-length", "2");
            (kind, items)
        });
        cfg.interceptor_state().store_put(Faulted(faulted));
        Ok(())
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(Faulted(Some((kind, items)))) = cfg.load::<Faulted>().cloned() else {
            return Ok(());
        };
        let body = match (kind, items) {
            (Kind::Throughput, _) => json!({
                "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
                "message": "The level of configured provisioned throughput for the table was exceeded (injected)",
            }),
            (Kind::Throttling, _) => json!({
                "__type": "com.amazon.coral.availability#ThrottlingException",
                "message": "Rate of requests exceeds the allowed throughput (injected)",
            }),
            (Kind::RequestLimit, _) => json!({
                "__type": "com.amazonaws.dynamodb.v20120810#RequestLimitExceeded",
                "message": "Throughput exceeds the current throughput limit for your account (injected)",
            }),
            (Kind::Conflict, None) => json!({
                "__type": "com.amazonaws.dynamodb.v20120810#TransactionConflictException",
                "message": "Transaction is ongoing for the item (injected)",
            }),
            (Kind::Conflict, Some(items)) => {
                let mut reasons = vec![json!({"Code": "None"}); items.max(1)];
                reasons[0] = json!({"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item (injected)"});
                json!({
                    "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
                    "message": "Transaction cancelled, please refer cancellation reasons for specific reasons [TransactionConflict]",
                    "CancellationReasons": reasons,
                })
            }
        };
        let mut response = HttpResponse::new(
            StatusCode::try_from(400).expect("400 is a status"),
            SdkBody::from(body.to_string()),
        );
        response
            .headers_mut()
            .insert("content-type", "application/x-amz-json-1.0");
        *context.response_mut() = response;
        Ok(())
    }
}

pub(crate) struct Env {
    pub(crate) app: TestApp,
    pub(crate) throttler: Throttler,
    /// The same table through a client without faults, for audits.
    pub(crate) clean: DynamoStore,
}

pub(crate) async fn setup() -> Env {
    assert!(
        std::env::var("AWS_ENDPOINT_URL").is_ok(),
        "run through scripts/with-moto (see README)"
    );
    let config = meter_core::config::load_aws().await;
    let table = format!("meter-faults-{}", uuid::Uuid::new_v4().simple());
    let clean = DynamoStore::new(meter_core::config::dynamo_client().await, table.clone());
    dynamo::create_table(clean.client(), &table).await.unwrap();
    let throttler = Throttler::default();
    let client = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&config)
            .interceptor(throttler.clone())
            .build(),
    );
    let store: Arc<dyn Store> = Arc::new(DynamoStore::new(client, table));
    let app = TestApp::with_store(store).await;
    let env = Env {
        app,
        throttler,
        clean,
    };
    // Warm the key, plan and catalog caches: the faults below hit the hot path only.
    let warm = env
        .app
        .check(json!({"user_id": "warm", "provider": "gemini"}))
        .await;
    assert_eq!(warm.status, 200);
    env
}

impl Env {
    pub(crate) async fn ingest(&self, id: &str, user: &str) -> Reply {
        self.app.usage(
            json!({"events": [{"event_id": id, "user_id": user, "provider": "gemini", "model": "gemini-2.5-flash", "input_tokens": 40}]}),
        )
        .await
    }

    pub(crate) async fn reserve(&self, user: &str) -> Reply {
        self.app.check(
            json!({"user_id": user, "provider": "gemini", "estimated_input_tokens": 30, "reserve": true}),
        )
        .await
    }

    /// (recorded calls, held calls) of the user's current period, read without faults.
    pub(crate) async fn counts(&self, user: &str) -> (u64, u64) {
        let u = UserId::parse(user).unwrap();
        let now = chrono::Utc::now();
        let usage = self
            .clean
            .get_user_usage(&self.app.tenant, &u, &|s| {
                meter_core::service::period_start_at(s, now)
            })
            .await
            .unwrap()
            .usage;
        usage
            .by_provider
            .values()
            .fold((0, 0), |(r, h), p| (r + p.recorded.calls, h + p.held.calls))
    }

    pub(crate) async fn stored(&self, id: &str) -> bool {
        self.clean
            .get_event(&self.app.tenant, &EventId::parse(id).unwrap())
            .await
            .unwrap()
            .is_some()
    }
}

pub(crate) fn assert_unavailable(status: axum::http::StatusCode, body: &Value, what: &str) {
    assert_eq!(status, 503, "{what}: {body}");
    assert_eq!(body["error"]["code"], "store_unavailable", "{what}");
    let text = body.to_string();
    assert!(
        !text.contains("injected") && !text.contains("Throughput") && !text.contains("Transaction"),
        "{what}: the SDK's message leaked: {text}"
    );
}

#[tokio::test]
async fn a_few_throttles_and_conflicts_are_retried_until_the_request_succeeds() {
    let env = setup().await;

    // A throttled read: the SDK retries it (standard mode: 3 attempts). The first check
    // of a user in a process reads the state with the user's scope item (BatchGetItem).
    env.throttler
        .fault("BatchGetItem", Kind::Throughput, Some(2));
    let Reply { status, body, .. } = env
        .app
        .check(json!({"user_id": "tia", "provider": "gemini"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(env.throttler.attempts("BatchGetItem"), 3);

    // A throttled reservation (a conditional UpdateItem).
    env.throttler.fault("UpdateItem", Kind::Throughput, Some(2));
    let Reply { status, body, .. } = env.reserve("tia").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(env.throttler.attempts("UpdateItem"), 3);
    assert_eq!(env.counts("tia").await, (0, 1));

    // A throttled recording transaction.
    env.throttler
        .fault("TransactWriteItems", Kind::Throughput, Some(2));
    let Reply { status, body, .. } = env.ingest("tia-1", "tia").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["events"][0]["status"], "recorded");
    assert_eq!(env.throttler.attempts("TransactWriteItems"), 3);

    // Transaction conflicts: not retried by the SDK, by the adapter with backoff.
    env.throttler
        .fault("TransactWriteItems", Kind::Conflict, Some(4));
    let Reply { status, body, .. } = env.ingest("tia-2", "tia").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["events"][0]["status"], "recorded");
    assert_eq!(env.throttler.attempts("TransactWriteItems"), 5);

    env.throttler.heal();
    assert_eq!(
        env.counts("tia").await,
        (2, 1),
        "each event once, the hold kept"
    );
}

#[tokio::test]
async fn throttling_that_never_stops_answers_503_and_writes_nothing_then_the_retry_records_once() {
    let env = setup().await;

    env.throttler
        .fault("TransactWriteItems", Kind::Throughput, None);
    let Reply { status, body, .. } = env.ingest("uma-1", "uma").await;
    assert_unavailable(status, &body, "throttled ingest");
    assert!(
        env.throttler.attempts("TransactWriteItems") > 3,
        "the SDK's 3 attempts, then the adapter's until its retry budget is spent"
    );
    assert!(!env.stored("uma-1").await);
    assert_eq!(env.counts("uma").await, (0, 0));

    env.throttler
        .fault("TransactWriteItems", Kind::Conflict, None);
    let Reply { status, body, .. } = env.ingest("uma-1", "uma").await;
    assert_unavailable(status, &body, "conflicted ingest");
    assert_eq!(
        env.throttler.attempts("TransactWriteItems"),
        12,
        "the adapter's MAX_ATTEMPTS"
    );
    assert!(!env.stored("uma-1").await);
    assert_eq!(env.counts("uma").await, (0, 0));

    env.throttler.fault("UpdateItem", Kind::Throughput, None);
    let Reply { status, body, .. } = env.reserve("uma").await;
    assert_unavailable(status, &body, "throttled reservation");
    assert_eq!(env.counts("uma").await, (0, 0), "no hold");

    env.throttler.fault("GetItem", Kind::Throughput, None);
    let Reply { status, body, .. } = env
        .app
        .check(json!({"user_id": "uma", "provider": "gemini"}))
        .await;
    assert_unavailable(status, &body, "throttled check");

    // The throttling stops: the same request records the event once.
    env.throttler.heal();
    let Reply { status, body, .. } = env.ingest("uma-1", "uma").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["events"][0]["status"], "recorded");
    let Reply { status, body, .. } = env.ingest("uma-1", "uma").await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["events"][0]["status"], "duplicate");
    assert_eq!(env.counts("uma").await, (1, 0));
}
