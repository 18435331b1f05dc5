//! SPEC §12 on the counter items of the org reads (issue 18): every event naming an org
//! writes the org's, the member's and the team's `period` usage, and no read on the
//! ingest path reads those items. Months of events, each month from a new process (as
//! Lambda runs them), must not leave a window set per month on them: a batch's read of
//! its definitions takes each such item along once a day per process, in the room its
//! request has, and the batch's write removes the ended windows.

use std::collections::BTreeSet;
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{Duration, Months};
use meter_core::store::dynamo::{layout, DynamoStore};
use meter_core::testing::TestClock;
use meter_tests::TestApp;
use serde_json::json;

use super::ops;

/// The window prefixes (`p<start>`) on each counter item of the table, by `PK`.
async fn counter_windows(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Vec<(String, BTreeSet<String>)> {
    let mut out = Vec::new();
    for item in super::scan_items(client, table).await {
        let Some(AttributeValue::S(pk)) = item.get(layout::PK) else {
            continue;
        };
        if !pk.contains("#BC#") {
            continue;
        }
        let windows = item
            .keys()
            .filter(|k| k.starts_with('p') && k.contains('|'))
            .map(|k| k.split('|').next().unwrap().to_owned())
            .collect();
        out.push((pk.clone(), windows));
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_org_reads_counters_keep_a_few_windows_over_months_of_events() {
    let (client, table) = super::fresh_table().await;
    let config = meter_core::config::load_aws().await;
    let start = TestClock::at("2026-01-10T12:00:00Z").now();
    const MONTHS: u32 = 7;
    for month in 0..MONTHS {
        // A new process each month: nothing remembered of the months before.
        let clock = TestClock::at(&(start + Months::new(month)).to_rfc3339());
        let (store, counter) = DynamoStore::with_request_counter(&config, table.clone());
        let app = TestApp::setup()
            .store(Arc::new(store))
            .clock(&clock)
            .spawn()
            .await;
        for (n, id) in ["a", "b"].iter().enumerate() {
            counter.take();
            app.usage(
                json!({"event_id": format!("{id}-{month}"), "user_id": "ann",
                             "provider": "gemini", "model": "gemini-2.5-flash",
                             "input_tokens": 10, "org_id": "acme", "team_id": "red"}),
            )
            .await
            .assert_ok("event");
            if n == 1 {
                // The sweep costs no request: the batch is its usual read before the
                // write, the write and the read after it for the alerts.
                assert_eq!(
                    counter.take(),
                    ops(&[("BatchGetItem", 2), ("TransactWriteItems", 1)]),
                    "month {month}"
                );
            }
        }
        clock.set(clock.now() + Duration::minutes(1));
    }

    let items = counter_windows(&client, &table).await;
    // The org's, ann's in the org and the team's items.
    assert_eq!(items.len(), 3, "{items:?}");
    for (pk, windows) in &items {
        // Kept: the three newest windows at the read, and the month the write added.
        assert!(
            windows.len() <= 4,
            "{pk} holds {} windows of {MONTHS} months: {windows:?}",
            windows.len()
        );
        let month_window = |m: &str| {
            let at: chrono::DateTime<chrono::Utc> = m.parse().unwrap();
            format!("p{}", at.timestamp())
        };
        assert!(
            windows.contains(&month_window("2026-07-01T00:00:00Z")),
            "{pk}: the current month {windows:?}"
        );
        for ended in [
            "2026-01-01T00:00:00Z",
            "2026-02-01T00:00:00Z",
            "2026-03-01T00:00:00Z",
        ] {
            assert!(
                !windows.contains(&month_window(ended)),
                "{pk}: {ended} was removed {windows:?}"
            );
        }
    }
}
