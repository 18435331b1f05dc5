//! The schema migration to the compact `events` layout (issue 23; the layout is described
//! in `event_row`): the table is rebuilt, each row converted in SQL from either earlier
//! layout (the `event` column holding the whole event as JSON, or only what the other
//! columns did not hold), so that it reads back as the same event and holds the same
//! values a new write of that event would.
//!
//! - timestamps: the stored text is RFC 3339 with nine fractional digits; its nanoseconds
//!   are `unixepoch` of the seconds × 10⁹ + the digits. A text that this does not give back
//!   exactly (a leap second, a year outside 1677–2262) also goes to `extra`, as
//!   `event_row::nanos` does for new writes (the same clamp, so the same column value);
//! - the fingerprint: `unhex` of 64 lowercase hex digits, other text as is;
//! - `model` and `price_version`: each distinct text added to `event_labels`, then its id;
//! - `extra`: from the JSON's top-level members, those that `extra` keeps, without JSON
//!   nulls, `"estimated": false`, and `recorded_at` when it is `timestamp` (in any of the
//!   forms chrono writes: 9, 6, 3 or 0 fractional digits); each value's JSON text is kept
//!   as written (`event -> fullkey`), so metadata keeps its numbers' text.
//!
//! One transaction, like every migration: a `meter serve` started on an existing file
//! rewrites its events before it listens (other connections keep reading the old rows
//! until the commit). The old table's pages become free pages of the file, which new rows
//! reuse; `VACUUM` while the server is stopped returns them to the file system
//! (docs/operations.md).

/// The migration (an entry of `schema::MIGRATIONS`).
pub(super) const MIGRATION: &str = r#"
    CREATE TABLE event_labels (
        id     INTEGER PRIMARY KEY,
        label  TEXT NOT NULL UNIQUE
    ) STRICT;
    INSERT OR IGNORE INTO event_labels (label)
        SELECT event ->> '$.model' FROM events WHERE json_type(event, '$.model') = 'text'
        UNION ALL
        SELECT event ->> '$.price_version' FROM events
            WHERE json_type(event, '$.price_version') = 'text';

    CREATE TABLE events_compact (
        tenant               TEXT NOT NULL,
        event_id             TEXT NOT NULL,
        user                 TEXT NOT NULL,
        fingerprint          ANY NOT NULL,      -- 32-byte BLOB (SHA-256 hex), else TEXT
        provider             TEXT NOT NULL,
        period_start         INTEGER NOT NULL,  -- nanoseconds since the Unix epoch
        timestamp            INTEGER NOT NULL,  -- nanoseconds since the Unix epoch
        model                INTEGER,           -- event_labels.id
        cost                 TEXT,              -- exact decimal; NULL: unpriced
        price_version        INTEGER,           -- event_labels.id
        input_tokens         INTEGER NOT NULL DEFAULT 0,
        output_tokens        INTEGER NOT NULL DEFAULT 0,
        cached_input_tokens  INTEGER NOT NULL DEFAULT 0,
        cache_write_tokens   INTEGER NOT NULL DEFAULT 0,
        reasoning_tokens     INTEGER NOT NULL DEFAULT 0,
        requests             INTEGER NOT NULL DEFAULT 0,
        searches             INTEGER NOT NULL DEFAULT 0,
        images               INTEGER NOT NULL DEFAULT 0,
        pages                INTEGER NOT NULL DEFAULT 0,
        status_code          INTEGER,
        latency_ms           INTEGER,
        extra                TEXT,              -- JSON of the rest (event_row.rs); NULL: none
        PRIMARY KEY (tenant, event_id)
    ) STRICT;

    WITH s AS (
        SELECT e.rowid AS rid, e.*,
               coalesce(unixepoch(substr(e.timestamp, 1, 19)),
                        unixepoch(substr(e.timestamp, 1, 16)) + 60) AS ts_s,
               coalesce(unixepoch(substr(e.period_start, 1, 19)),
                        unixepoch(substr(e.period_start, 1, 16)) + 60) AS ps_s
        FROM events AS e
    ), t AS (
        SELECT s.*,
               coalesce(length(timestamp) = 30 AND substr(timestamp, 20, 1) = '.'
                        AND substr(timestamp, 30, 1) = 'Z'
                        AND substr(timestamp, 21, 9) NOT GLOB '*[^0-9]*'
                        AND ts_s BETWEEN -9223372034 AND 9223372034
                        AND strftime('%Y-%m-%dT%H:%M:%S', ts_s, 'unixepoch') = substr(timestamp, 1, 19),
                        0) AS ts_exact,
               coalesce(length(period_start) = 30 AND substr(period_start, 20, 1) = '.'
                        AND substr(period_start, 30, 1) = 'Z'
                        AND substr(period_start, 21, 9) NOT GLOB '*[^0-9]*'
                        AND ps_s BETWEEN -9223372034 AND 9223372034
                        AND strftime('%Y-%m-%dT%H:%M:%S', ps_s, 'unixepoch') = substr(period_start, 1, 19),
                        0) AS ps_exact,
               max(-9223372034, min(9223372034, coalesce(ts_s, 0))) * 1000000000
                   + CAST(substr(timestamp, 21, 9) AS INTEGER) AS ts_n,
               max(-9223372034, min(9223372034, coalesce(ps_s, 0))) * 1000000000
                   + CAST(substr(period_start, 21, 9) AS INTEGER) AS ps_n,
               (SELECT json_group_object(j.key, json(s.event -> j.fullkey))
                  FROM json_each(s.event) AS j
                 WHERE j.key IN ('estimated', 'endpoint', 'reservation_id', 'metadata',
                                 'recorded_at', 'org_id', 'team_id')
                   AND j.type NOT IN ('null', 'false')
                   AND NOT (j.key = 'recorded_at'
                            AND (j.value = s.timestamp
                                 OR j.value IS iif(substr(s.timestamp, 27, 3) = '000',
                                                   substr(s.timestamp, 1, 26) || 'Z', NULL)
                                 OR j.value IS iif(substr(s.timestamp, 24, 6) = '000000',
                                                   substr(s.timestamp, 1, 23) || 'Z', NULL)
                                 OR j.value IS iif(substr(s.timestamp, 21, 9) = '000000000',
                                                   substr(s.timestamp, 1, 19) || 'Z', NULL)))
               ) AS kept
        FROM s
    )
    INSERT INTO events_compact (tenant, event_id, user, fingerprint, provider, period_start,
            timestamp, model, cost, price_version, input_tokens, output_tokens,
            cached_input_tokens, cache_write_tokens, reasoning_tokens, requests, searches,
            images, pages, status_code, latency_ms, extra)
        SELECT tenant, event_id, user,
               CASE WHEN length(fingerprint) = 64 AND fingerprint NOT GLOB '*[^0-9a-f]*'
                    THEN unhex(fingerprint) ELSE fingerprint END,
               provider, ps_n, ts_n,
               (SELECT id FROM event_labels WHERE label = event ->> '$.model'),
               event ->> '$.cost_usd',
               (SELECT id FROM event_labels WHERE label = event ->> '$.price_version'),
               coalesce(event ->> '$.counts.input_tokens', 0),
               coalesce(event ->> '$.counts.output_tokens', 0),
               coalesce(event ->> '$.counts.cached_input_tokens', 0),
               coalesce(event ->> '$.counts.cache_write_tokens', 0),
               coalesce(event ->> '$.counts.reasoning_tokens', 0),
               coalesce(event ->> '$.counts.requests', 0),
               coalesce(event ->> '$.counts.searches', 0),
               coalesce(event ->> '$.counts.images', 0),
               coalesce(event ->> '$.counts.pages', 0),
               event ->> '$.status_code',
               event ->> '$.latency_ms',
               CASE WHEN ts_exact AND ps_exact THEN nullif(kept, '{}')
                    WHEN ts_exact THEN json_set(coalesce(kept, '{}'), '$.period_start', period_start)
                    WHEN ps_exact THEN json_set(coalesce(kept, '{}'), '$.timestamp', timestamp)
                    ELSE json_set(coalesce(kept, '{}'), '$.timestamp', timestamp,
                                  '$.period_start', period_start)
               END
        FROM t ORDER BY rid;

    DROP TABLE events;
    ALTER TABLE events_compact RENAME TO events;
    -- a user's events by time (export, erasure).
    CREATE INDEX events_by_user ON events (tenant, user, timestamp);
    -- the aggregation's re-pricing pass.
    CREATE INDEX events_unpriced ON events (tenant, event_id) WHERE cost IS NULL;
"#;

#[cfg(test)]
mod tests {
    use chrono::{Duration, NaiveDate, TimeZone, Utc};
    use rusqlite::Connection;
    use serde_json::{json, Value};

    use super::super::codec::ts;
    use super::super::{schema, SqliteStore};
    use super::MIGRATION;
    use crate::domain::{EventId, UsageEvent};
    use crate::store::{PrivacyStore, RecordOutcome, UsageStore};
    use crate::testing::{event, tenant, user};

    /// Events with every kind of value the conversion treats apart.
    fn events() -> Vec<UsageEvent> {
        let (t, alice) = (tenant(), user("alice"));
        let base = |id: &str| {
            let mut e = event(&t, &alice, id, 100, "0.5");
            e.recorded_at = e.timestamp;
            e
        };
        let mut all = Vec::new();

        let mut e = base("full");
        e.counts.output_tokens = 20;
        e.counts.cached_input_tokens = 7;
        e.counts.reasoning_tokens = 3;
        e.counts.requests = 1;
        e.counts.searches = 2;
        e.counts.images = 4;
        e.counts.pages = 5;
        e.counts.cache_write_tokens = 6;
        e.cost_usd = Some("0.012300".parse().unwrap());
        e.estimated = true;
        e.endpoint = Some("/v1/chat \"quoted\" é".into());
        e.status_code = Some(429);
        e.latency_ms = Some(310);
        e.reservation_id = Some("rsv_1".into());
        e.metadata = Some(json!({
            "feature": "summary", "n": 1.5, "big": 12345678901234567_u64, "none": null,
            "list": [1, "two", {"three": false}], "ünï": "\u{1F600}\n"
        }));
        e.recorded_at = e.timestamp + Duration::milliseconds(1500);
        e.org_id = Some(serde_json::from_value(json!("acme")).unwrap());
        e.team_id = Some(serde_json::from_value(json!("search")).unwrap());
        e.fingerprint = hex::encode([0xab_u8; 32]);
        all.push(e);

        // Whole seconds, milliseconds, microseconds, nanoseconds: recorded_at equal in
        // each form chrono writes.
        for (i, nanos) in [0, 120_000_000, 123_456_000, 123_456_789]
            .into_iter()
            .enumerate()
        {
            let mut e = base(&format!("precision{i}"));
            e.timestamp =
                Utc.with_ymd_and_hms(2025, 3, 10, 12, 0, 1).unwrap() + Duration::nanoseconds(nanos);
            e.recorded_at = e.timestamp;
            e.fingerprint = hex::encode([i as u8; 32]);
            all.push(e);
        }

        let mut e = base("unpriced");
        e.cost_usd = None;
        e.price_version = None;
        e.model = None;
        e.status_code = None;
        all.push(e);

        let mut e = base("estimated");
        e.estimated = true;
        e.recorded_at = e.timestamp + Duration::nanoseconds(1);
        all.push(e);

        let leap = NaiveDate::from_ymd_opt(2016, 12, 31)
            .unwrap()
            .and_hms_nano_opt(23, 59, 59, 1_500_000_000)
            .unwrap()
            .and_utc();
        let mut e = base("leap");
        e.timestamp = leap;
        e.recorded_at = leap;
        all.push(e);

        let mut e = base("far");
        e.timestamp = Utc.with_ymd_and_hms(2300, 1, 1, 0, 0, 0).unwrap();
        e.period_start = e.timestamp;
        e.recorded_at = e.timestamp;
        all.push(e);

        let mut e = base("upper-hex");
        e.fingerprint = "AB".repeat(32);
        all.push(e);
        all
    }

    /// The `event` column as the build before the compact layout wrote it: the event
    /// without what the columns hold, absent fields, zero counts and `recorded_at` equal
    /// to `timestamp`.
    fn previous_body(e: &UsageEvent) -> String {
        let mut v = serde_json::to_value(e).unwrap();
        let m = v.as_object_mut().unwrap();
        for k in [
            "tenant",
            "event_id",
            "user",
            "fingerprint",
            "provider",
            "timestamp",
            "period_start",
        ] {
            m.remove(k);
        }
        m.retain(|_, x| !x.is_null());
        if m.get("estimated") == Some(&json!(false)) {
            m.remove("estimated");
        }
        if e.recorded_at == e.timestamp {
            m.remove("recorded_at");
        }
        if let Some(c) = m.get_mut("counts").and_then(Value::as_object_mut) {
            c.retain(|_, n| n != &json!(0));
        }
        serde_json::to_string(&v).unwrap()
    }

    /// Each stored row, as comparable values (labels by text, the fingerprint's type and
    /// bytes, `extra` as JSON).
    fn rows(conn: &Connection) -> Vec<Vec<Value>> {
        let mut stmt = conn
            .prepare(
                "SELECT tenant, event_id, user, typeof(fingerprint), hex(fingerprint), provider,
                        period_start, timestamp,
                        (SELECT label FROM event_labels WHERE id = events.model), cost,
                        (SELECT label FROM event_labels WHERE id = events.price_version),
                        input_tokens, output_tokens, cached_input_tokens, cache_write_tokens,
                        reasoning_tokens, requests, searches, images, pages, status_code,
                        latency_ms, extra
                 FROM events ORDER BY tenant, event_id",
            )
            .unwrap();
        let n = stmt.column_count();
        stmt.query_map([], |r| {
            (0..n)
                .map(|i| {
                    Ok(match r.get_ref(i)? {
                        rusqlite::types::ValueRef::Null => Value::Null,
                        rusqlite::types::ValueRef::Integer(x) => json!(x),
                        rusqlite::types::ValueRef::Text(t) => {
                            let s = String::from_utf8(t.to_vec()).unwrap();
                            if i == n - 1 {
                                serde_json::from_str(&s).unwrap()
                            } else {
                                Value::String(s)
                            }
                        }
                        other => panic!("unexpected {other:?}"),
                    })
                })
                .collect()
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    }

    #[tokio::test]
    async fn events_of_both_earlier_layouts_migrate_to_the_same_reads_and_rows() {
        let dir = tempfile::tempdir().unwrap();
        let (old, fresh) = (dir.path().join("old.db"), dir.path().join("fresh.db"));
        let at = schema::MIGRATIONS
            .iter()
            .position(|m| std::ptr::eq(*m, MIGRATION))
            .expect("the migration is listed");
        let mut expected = Vec::new();
        {
            let mut conn = Connection::open(&old).unwrap();
            schema::migrate(&mut conn, &schema::MIGRATIONS[..at]).unwrap();
            for e in events() {
                // Each event twice: the whole event as JSON (builds before the compact
                // body), and the compact body of the build before this migration.
                for layout in ["whole", "body"] {
                    let e = UsageEvent {
                        event_id: EventId::parse(format!("{}-{layout}", e.event_id)).unwrap(),
                        ..e.clone()
                    };
                    let body = match layout {
                        "whole" => serde_json::to_string(&e).unwrap(),
                        _ => previous_body(&e),
                    };
                    conn.execute(
                        "INSERT INTO events (tenant, event_id, user, fingerprint, provider,
                             period_start, timestamp, priced, event)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                        rusqlite::params![
                            e.tenant.as_str(),
                            e.event_id.as_str(),
                            e.user.as_str(),
                            e.fingerprint,
                            e.provider.as_str(),
                            ts(&e.period_start),
                            ts(&e.timestamp),
                            e.cost_usd.is_some(),
                            body,
                        ],
                    )
                    .unwrap();
                    expected.push(e);
                }
            }
        }

        let store = SqliteStore::open(&old).unwrap();
        for e in &expected {
            assert_eq!(
                store
                    .get_event(&e.tenant, &e.event_id)
                    .await
                    .unwrap()
                    .as_ref(),
                Some(e),
                "{}",
                e.event_id
            );
        }
        // The same rows as this build writes for the same events.
        let written = SqliteStore::open(&fresh).unwrap();
        assert!(written
            .record_events(&expected)
            .await
            .unwrap()
            .iter()
            .all(|o| *o == RecordOutcome::Recorded));
        drop(written);
        let (migrated_rows, fresh_rows) = (
            rows(&Connection::open(&old).unwrap()),
            rows(&Connection::open(&fresh).unwrap()),
        );
        assert_eq!(migrated_rows.len(), expected.len());
        for (m, f) in migrated_rows.iter().zip(&fresh_rows) {
            assert_eq!(m, f);
        }

        // Export lists them by time; a retry is a duplicate, other content a conflict.
        let (t, alice) = (tenant(), user("alice"));
        let exported = store.user_records(&t, &alice).await.unwrap().events;
        let mut by_time = expected.clone();
        by_time.sort_by_key(|e| {
            (
                super::super::event_row::nanos(&e.timestamp).0,
                e.event_id.clone(),
            )
        });
        assert_eq!(exported, by_time);
        let mut conflict = expected[0].clone();
        conflict.fingerprint = hex::encode([1_u8; 32]);
        assert_eq!(
            store
                .record_events(&[expected[0].clone(), expected[1].clone(), conflict])
                .await
                .unwrap(),
            vec![
                RecordOutcome::Duplicate,
                RecordOutcome::Duplicate,
                RecordOutcome::Conflict
            ]
        );
        // The unpriced events are the ones listed for re-pricing.
        let unpriced = store.unpriced_events(None, 100).await.unwrap().items;
        let ids: Vec<&str> = unpriced.iter().map(|e| e.event_id.as_str()).collect();
        assert_eq!(ids, ["unpriced-body", "unpriced-whole"]);
    }
}
