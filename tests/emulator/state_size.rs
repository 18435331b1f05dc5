//! SPEC §12's item bound with reservations over budgets (issue 18): a user with usage on
//! 10 providers and 8 open reservations, each naming user + org + team with the org's
//! plan and two budgets (each reservation holds on three budget counters besides the
//! user's plan: the org's pooled `period` counter, the user's in the org, the user's in
//! the team), keeps a state item of at most 4 KB. The size is measured by DynamoDB's
//! rules (attribute names plus values: strings by their UTF-8 bytes, numbers by their
//! significant digits, maps and lists with their overhead) on the item as stored.

use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use meter_core::domain::{ProviderId, UserId};
use meter_core::store::dynamo::item_size::{item_size, value_size};
use meter_core::store::dynamo::{layout, DynamoStore};
use meter_core::testing::{event, TestClock};
use meter_tests::TestApp;
use serde_json::json;

/// The providers the user has usage on (as in tools/dynamo-cost).
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

/// What the scenario left: the state item's bytes, the bytes of its inline reservations,
/// how many are inline, and the open reservations (wherever kept).
struct Measured {
    size: usize,
    inline_bytes: usize,
    inline: usize,
    open: Vec<meter_core::domain::Reservation>,
    app: TestApp,
}

/// A user with usage on 10 providers and 8 open reservations, each naming `org` and its
/// team `team` with the org's plan and 2 budgets (3 budget holds each).
async fn eight_reservations_over_budgets(user: &str, org: &str, team: &str) -> Measured {
    let clock = TestClock::at("2026-03-10T15:30:05Z");
    let (client, table) = super::fresh_table().await;
    let store = Arc::new(DynamoStore::new(client.clone(), table.clone()));
    let app = TestApp::setup().store(store).clock(&clock).spawn().await;
    const P: &str = "/api/subscription";

    // The org's plan and two budgets, each on a counter of its own.
    app.put(
        &format!("{P}/org/{org}/subscription"),
        json!({"plan": "pro"}),
    )
    .await
    .assert_ok("org plan");
    for (id, body) in [
        (
            "org-members",
            json!({"scope": {"kind": "org", "org_id": org}, "applies_to": "each_member",
                   "limits": {"cost_usd": "20"}, "window": "month", "mode": "hard"}),
        ),
        (
            "team-members",
            json!({"scope": {"kind": "team", "org_id": org, "team_id": team},
                   "applies_to": "each_member", "limits": {"calls:*": 500, "cost_usd": "5"},
                   "window": "day", "mode": "hard"}),
        ),
    ] {
        app.put(&format!("{P}/budgets/{id}"), body)
            .await
            .assert_ok(id);
    }

    // This period's usage on 10 providers (recorded through the store, as the cost tool).
    let uid = UserId::parse(user).unwrap();
    let now = clock.now();
    let events: Vec<_> = PROVIDERS
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut e = event(&app.tenant, &uid, &format!("size-{i}"), 1500, "0.0123");
            e.provider = ProviderId::parse(*p).unwrap();
            e.model = None;
            e.timestamp = now - chrono::Duration::hours(1);
            e.recorded_at = e.timestamp;
            e.period_start = "2026-03-01T00:00:00Z".parse().unwrap();
            e.latency_ms = Some(420);
            e
        })
        .collect();
    app.store.record_events(&events).await.unwrap();

    // 8 open reservations, each over user + org + team with the org's plan and 2 budgets.
    for i in 0..8 {
        let r = app
            .check(
                json!({"user_id": user, "provider": "gemini", "model": "gemini-2.5-flash",
                          "estimated_input_tokens": 1200, "estimated_output_tokens": 300,
                          "org_id": org, "team_id": team, "reserve": true}),
            )
            .await;
        r.assert_ok(&format!("reservation {i}"));
    }

    let state = client
        .get_item()
        .table_name(&table)
        .key(
            layout::PK,
            AttributeValue::S(layout::user_pk(&app.tenant, user)),
        )
        .key(layout::SK, AttributeValue::S(layout::STATE_SK.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let reservations: Vec<(&String, &AttributeValue)> = state
        .iter()
        .filter(|(k, _)| k.starts_with(layout::RESERVATION_PREFIX))
        .collect();
    let open = meter_core::store::OpenReservationsStore::open_reservations(
        app.store.as_ref(),
        &app.tenant,
        &uid,
    )
    .await
    .unwrap();
    assert_eq!(open.len(), 8);
    for r in &open {
        assert_eq!(r.budget_holds.len(), 3, "{:?}", r.budget_holds);
    }
    Measured {
        size: item_size(&state),
        inline_bytes: reservations
            .iter()
            .map(|(k, v)| k.len() + value_size(v))
            .sum(),
        inline: reservations.len(),
        open,
        app,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_state_item_with_8_reservations_over_budgets_and_10_providers_stays_within_4_kb() {
    let m = eight_reservations_over_budgets("ann", "acme", "red").await;
    eprintln!(
        "short ids: state item {} bytes ({} of them the {} inline reservations)",
        m.size, m.inline_bytes, m.inline
    );
    assert_eq!(m.inline, 8, "short ids: every reservation inline");
    assert!(m.size <= 4096, "state item {} bytes", m.size);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reservations_whose_budget_holds_are_large_spill_and_the_state_item_stays_within_4_kb() {
    // 128-character ids (the most an id may have) make each budget hold's counter key
    // ≈ 160–430 bytes: such reservations spill to their own items.
    let (user, org, team) = ("u".repeat(128), "o".repeat(128), "t".repeat(128));
    let m = eight_reservations_over_budgets(&user, &org, &team).await;
    eprintln!(
        "128-character ids: state item {} bytes ({} inline reservations)",
        m.size, m.inline
    );
    assert_eq!(m.inline, 0, "large reservations spill");
    assert!(m.size <= 4096, "state item {} bytes", m.size);
    // A spilled reservation's holds go back when it closes, as an inline one's.
    for r in &m.open {
        m.app
            .post(
                &format!("/api/subscription/reservations/{}/release", r.id),
                json!({}),
            )
            .await
            .assert_ok("release");
    }
    let org_id = meter_core::domain::OrgId::parse(org.as_str()).unwrap();
    let counter =
        meter_core::store::org_period_counter(&org_id, "2026-03-01T00:00:00Z".parse().unwrap());
    let usage = m
        .app
        .store
        .get_budget_counters(&m.app.tenant, &[counter])
        .await
        .unwrap();
    assert!(
        usage[0]
            .by_provider
            .values()
            .all(|p| p.held == Default::default()),
        "{usage:?}"
    );
    let uid = UserId::parse(user.as_str()).unwrap();
    let left = meter_core::store::OpenReservationsStore::open_reservations(
        m.app.store.as_ref(),
        &m.app.tenant,
        &uid,
    )
    .await
    .unwrap();
    assert!(left.is_empty());
}
