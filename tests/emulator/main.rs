//! The hot path on DynamoDB and SNS in the emulator (`scripts/with-moto`): alerts reach an
//! SQS queue subscribed to the topic exactly once each, with their attributes; and the
//! DynamoDB request budget of a check, a reservation and an event.

mod alert_resolved;
mod batch_requests;
mod batch_scopes;
mod budgets;
mod credit_resolved;
mod credits;
mod enforcement;
mod hold_alarms;
mod holds;
mod migrate;
mod migrate_budgets;
mod migrate_grants;
mod migrate_org_billed;
mod one_payer;
mod org_alert_namesake;
mod org_late_draws;
mod org_read_counters;
mod org_repricing;
mod orgs;
mod prepaid;
mod prepaid_batches;
mod repriced_budget_alerts;
mod repricing;
mod state_size;
mod tenant_orgs;
mod wallet_buckets;
mod wallet_views;
mod wallets;

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_sdk_sqs::types::QueueAttributeName;
use meter_core::alerts::sns::SnsPublisher;
use meter_core::store::dynamo::{self, DynamoStore, RequestCounter};
use meter_tests::{Reply, TestApp};
use serde_json::{json, Value};

/// An app on a fresh table, counting the DynamoDB requests it makes.
struct Env {
    app: Arc<TestApp>,
    counter: RequestCounter,
}

async fn setup(topic_arn: Option<String>) -> Env {
    let (store, counter, config) = counted_store().await;
    let publisher: Arc<dyn meter_core::alerts::AlertPublisher> = match topic_arn {
        Some(arn) => Arc::new(SnsPublisher::new(aws_sdk_sns::Client::new(&config), arn)),
        None => Arc::new(meter_core::alerts::LogPublisher),
    };
    let app = TestApp::setup()
        .store(Arc::new(store))
        .publisher(publisher)
        .spawn()
        .await;
    Env {
        app: Arc::new(app),
        counter,
    }
}

/// A fresh table of the emulator, and a client of it.
async fn fresh_table() -> (aws_sdk_dynamodb::Client, String) {
    assert!(
        std::env::var("AWS_ENDPOINT_URL").is_ok(),
        "run through scripts/with-moto (see README)"
    );
    let client = meter_core::config::dynamo_client().await;
    let table = format!("meter-emu-{}", uuid::Uuid::new_v4().simple());
    dynamo::create_table(&client, &table).await.unwrap();
    (client, table)
}

/// Every item of `table` (a test's small table: one page), read consistently.
async fn scan_items(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
    client
        .scan()
        .table_name(table)
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default()
}

/// A store on a fresh table of the emulator, counting the requests it makes.
async fn counted_store() -> (DynamoStore, RequestCounter, aws_config::SdkConfig) {
    let config = meter_core::config::load_aws().await;
    let (_, table) = fresh_table().await;
    let (store, counter) = DynamoStore::with_request_counter(&config, table);
    (store, counter, config)
}

/// An app at `clock` on a fresh table (alerts to the log), counting its requests.
async fn setup_at(clock: &meter_core::testing::TestClock) -> (Arc<TestApp>, RequestCounter) {
    let (store, counter, _) = counted_store().await;
    let app = TestApp::setup()
        .store(Arc::new(store))
        .clock(clock)
        .spawn()
        .await;
    (Arc::new(app), counter)
}

/// Request counts by operation, as `RequestCounter::take` gives them.
fn ops(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn alerts_reach_an_sqs_subscriber_once_each_with_attributes() {
    let config = meter_core::config::load_aws().await;
    let sns = aws_sdk_sns::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let topic = sns
        .create_topic()
        .name(format!("alerts-{}", uuid::Uuid::new_v4().simple()))
        .send()
        .await
        .unwrap();
    let topic_arn = topic.topic_arn().unwrap().to_owned();
    let queue = sqs
        .create_queue()
        .queue_name(format!("q-{}", uuid::Uuid::new_v4().simple()))
        .send()
        .await
        .unwrap();
    let queue_url = queue.queue_url().unwrap().to_owned();
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap();
    let queue_arn = attrs.attributes().unwrap()[&QueueAttributeName::QueueArn].clone();
    sns.subscribe()
        .topic_arn(&topic_arn)
        .protocol("sqs")
        .endpoint(&queue_arn)
        .attributes("RawMessageDelivery", "true")
        .send()
        .await
        .unwrap();

    let env = setup(Some(topic_arn)).await;
    // 100 events cross 80, 90 and 100 % of the Free plan's 100 gemini calls, sent as 25
    // concurrent requests of 4 events, each request twice.
    let mut tasks = Vec::new();
    for round in 0..2 {
        for chunk in 0..25 {
            let events: Vec<_> = (0..4)
                .map(|i| json!({"event_id": format!("sns-{}", chunk * 4 + i), "user_id": "sns-user", "provider": "gemini", "model": "gemini-2.5-flash", "input_tokens": 1}))
                .collect();
            let app = env.app.clone();
            tasks.push(tokio::spawn(async move {
                let _ = round;
                app.usage(json!({ "events": events })).await.status
            }));
        }
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }

    let mut received: Vec<BTreeMap<String, String>> = Vec::new();
    for _ in 0..10 {
        let out = sqs
            .receive_message()
            .queue_url(&queue_url)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        for m in out.messages() {
            let mut a: BTreeMap<String, String> = m
                .message_attributes()
                .map(|attrs| {
                    attrs
                        .iter()
                        .map(|(k, v)| (k.clone(), v.string_value().unwrap_or("").to_owned()))
                        .collect()
                })
                .unwrap_or_default();
            let body: Value = serde_json::from_str(m.body().unwrap()).unwrap();
            a.insert(
                "alert_id".into(),
                body["alert_id"].as_str().unwrap().to_owned(),
            );
            received.push(a);
        }
        if received.len() >= 3 && out.messages().is_empty() {
            break;
        }
    }
    let mut thresholds: Vec<_> = received.iter().map(|a| a["threshold"].clone()).collect();
    thresholds.sort();
    assert_eq!(thresholds, ["100", "80", "90"], "{received:?}");
    for a in &received {
        assert_eq!(a["type"], "alert");
        assert_eq!(a["tenant_id"], "default");
        assert_eq!(a["user_id"], "sns-user");
        assert_eq!(a["metric"], "calls:gemini");
        let expected = match a["threshold"].as_str() {
            "80" => "info",
            "90" => "warning",
            _ => "error",
        };
        assert_eq!(a["severity"], expected);
    }
    let denied = env
        .app
        .check(json!({"user_id": "sns-user", "provider": "gemini"}))
        .await;
    assert_eq!(denied.status, 429);
}

#[tokio::test]
async fn a_warm_check_reads_one_item_a_reservation_is_one_update_an_event_one_transaction() {
    let env = setup(None).await;
    let check = json!({"user_id": "budget", "provider": "gemini", "model": "gemini-2.5-flash", "estimated_input_tokens": 10});
    // Warm the caches (key, plans, catalog).
    assert_eq!(env.app.check(check.clone()).await.status, 200);

    env.counter.take();
    assert_eq!(env.app.check(check.clone()).await.status, 200);
    assert_eq!(
        env.counter.take(),
        BTreeMap::from([("GetItem".to_owned(), 1)]),
        "a check"
    );

    let mut reserve = check.clone();
    reserve["reserve"] = json!(true);
    assert_eq!(env.app.check(reserve).await.status, 200);
    assert_eq!(
        env.counter.take(),
        BTreeMap::from([("GetItem".to_owned(), 1), ("UpdateItem".to_owned(), 1)]),
        "a reservation"
    );

    let Reply { status, body, .. } = env.app.usage(json!({"event_id": "b-1", "user_id": "budget", "provider": "gemini", "model": "gemini-2.5-flash", "input_tokens": 10})).await;
    assert_eq!(status, 200, "{body}");
    let counts = env.counter.take();
    assert_eq!(
        counts.get("TransactWriteItems"),
        Some(&1),
        "one event: {counts:?}"
    );
}

#[tokio::test]
async fn a_warm_dashboard_reads_the_state_item_three_times_and_queries_alerts_once() {
    let env = setup(None).await;
    // 85 of the Free plan's 100 gemini calls: usage in the period and an 80 % alert.
    let events: Vec<Value> = (0..85)
        .map(|i| json!({"event_id": format!("d-{i}"), "user_id": "dash", "provider": "gemini", "model": "gemini-2.5-flash", "input_tokens": 10}))
        .collect();
    let Reply { status, body, .. } = env.app.usage(json!({ "events": events })).await;
    assert_eq!(status, 200, "{body}");
    // Warm the caches (key, plans).
    assert_eq!(
        env.app.get("/api/subscription/dashboard/dash").await.status,
        200
    );

    env.counter.take();
    let Reply { status, body, .. } = env.app.get("/api/subscription/dashboard/dash").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["current_usage"]["total_calls"], 85);
    assert_eq!(body["data"]["alerts"]["unread_count"], 1);
    assert_eq!(
        env.counter.take(),
        BTreeMap::from([
            ("BatchGetItem".to_owned(), 1),
            ("GetItem".to_owned(), 2),
            ("Query".to_owned(), 1)
        ]),
        "a dashboard: subscription and unread count (GetItem), the periods' state and period items (BatchGetItem) and the latest alerts (Query): four requests, as before issue 17"
    );

    for (path, expected) in [
        (
            "/api/subscription/usage/dash",
            // The state item and the newest period item (display-only counts): one Query.
            BTreeMap::from([("Query".to_owned(), 1)]),
        ),
        (
            "/api/subscription/usage/dash/trends",
            // The subscription, then the state and period items of the periods shown.
            BTreeMap::from([("BatchGetItem".to_owned(), 1), ("GetItem".to_owned(), 1)]),
        ),
        (
            "/api/subscription/user/dash/subscription",
            BTreeMap::from([("GetItem".to_owned(), 1)]),
        ),
        (
            "/api/subscription/billing/dash",
            BTreeMap::from([("Query".to_owned(), 1)]),
        ),
    ] {
        assert_eq!(env.app.get(path).await.status, 200, "{path}");
        assert_eq!(env.counter.take(), expected, "{path}");
    }
}

#[tokio::test]
async fn the_web_dashboards_admin_reads_and_token_reads_stay_within_their_requests() {
    let env = setup(None).await;
    for user in ["wa", "wb", "wc"] {
        let events: Vec<Value> = (0..82)
            .map(|i| json!({"event_id": format!("{user}-{i}"), "user_id": user, "provider": "gemini", "model": "gemini-2.5-flash", "input_tokens": 10}))
            .collect();
        let Reply { status, body, .. } = env.app.usage(json!({ "events": events })).await;
        assert_eq!(status, 200, "{body}");
    }
    // Warm the caches (the admin key, plans).
    let admin = env.app.admin_key.clone();
    assert_eq!(
        env.app
            .get_as(&admin, "/api/subscription/admin/users")
            .await
            .status,
        200
    );

    env.counter.take();
    let Reply { status, body, .. } = env
        .app
        .get_as(&admin, "/api/subscription/admin/users?limit=100")
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["users"].as_array().unwrap().len(), 3);
    assert_eq!(body["data"]["users"][0]["calls"], 82);
    assert_eq!(
        env.counter.take(),
        BTreeMap::from([("Query".to_owned(), 1), ("BatchGetItem".to_owned(), 1)]),
        "a page of users: the subs index, then their state items"
    );
    let Reply { status, body, .. } = env
        .app
        .get_as(&admin, "/api/subscription/admin/alerts")
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"]["alerts"].as_array().unwrap().len(),
        3,
        "one 80 % alert each"
    );
    assert_eq!(
        env.counter.take(),
        BTreeMap::from([("Query".to_owned(), 1), ("BatchGetItem".to_owned(), 1)]),
        "the tenant's alert feed, then the alerts"
    );

    // The first token creates the tenant's signing key; later ones need no request.
    let Reply { status, body, .. } = env
        .app
        .post("/api/subscription/tokens", json!({"user_id": "wa"}))
        .await;
    assert_eq!(status, 200, "{body}");
    env.counter.take();
    let Reply { status, body, .. } = env
        .app
        .post("/api/subscription/tokens", json!({"user_id": "wa"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        env.counter.take(),
        BTreeMap::new(),
        "minting with a cached key"
    );
    let token = body["data"]["token"].as_str().unwrap().to_owned();
    let status = env
        .app
        .get_as(&token, "/api/subscription/usage/wa")
        .await
        .status;
    assert_eq!(status, 200);
    assert_eq!(
        env.counter.take(),
        BTreeMap::from([("Query".to_owned(), 1)]),
        "a token's read costs what the key's does (one Query: state and newest period item)"
    );
}
