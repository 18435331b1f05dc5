//! A usage event as one `events` row (the layout of `compact_events`, issue 23): a column
//! per field that queries search by or that most events carry, each in a compact form, and
//! in `extra` the rarely set rest as JSON.
//!
//! - `timestamp` and `period_start` are INTEGER nanoseconds since the Unix epoch (8 bytes
//!   instead of 30 characters; integer order is time order). An instant those cannot give
//!   back exactly (a leap second, a year outside 1677–2262; ingest accepts neither) also
//!   keeps its RFC 3339 text in `extra`, which wins on reading.
//! - `fingerprint` is the 32-byte BLOB of a SHA-256 fingerprint in lowercase hex (what
//!   ingest writes); any other text is stored as TEXT.
//! - `model` and `price_version` are ids into `event_labels`, which holds each distinct
//!   text once (rows are never deleted from it, so an id always names its text).
//! - `cost` is the exact decimal text as given (scale kept), NULL when unpriced; the nine
//!   counts are INTEGER (0 when absent); `status_code` and `latency_ms` NULL when absent.
//! - `extra`: `estimated` when true, `endpoint`, `reservation_id`, `metadata`,
//!   `recorded_at` when it differs from `timestamp`, `org_id`, `team_id`, `payer`; NULL
//!   when none.
//!
//! What each part costs is measured by `scripts/bench-storage` (BENCHMARKS.md, "Storage
//! per event").

use chrono::{DateTime, Utc};
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSqlOutput, ValueRef};
use rusqlite::{params, Connection, OptionalExtension, ToSql};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::codec::{count, from_json, id, parse_count, parse_money, parse_ts, to_json, ts};
use crate::domain::{
    EventId, Metadata, ModelId, OrgId, Payer, ProviderId, TeamId, TenantId, UsageEvent, UserId,
};
use crate::store::{StoreError, StoreResult};
use crate::usage::UsageCounts;

/// The columns to select, in [`EventRow`]'s order (a macro, for `concat!` in constants).
/// The labels are looked up by correlated subqueries, so a statement's `FROM events …`
/// stays as it is.
macro_rules! event_columns {
    () => {
        "tenant, event_id, user, fingerprint, provider, period_start, timestamp, \
         (SELECT label FROM event_labels WHERE id = events.model), cost, \
         (SELECT label FROM event_labels WHERE id = events.price_version), \
         input_tokens, output_tokens, cached_input_tokens, cache_write_tokens, \
         reasoning_tokens, requests, searches, images, pages, status_code, latency_ms, extra"
    };
}
pub(super) use event_columns;

/// `SELECT {EVENT_COLUMNS} FROM events …`.
pub(super) const EVENT_COLUMNS: &str = event_columns!();

/// Seconds beyond which (either side of the epoch) a timestamp's nanoseconds are clamped:
/// with a leap second's extra second, ±(this + 1) s still fits an `i64` of nanoseconds.
/// The migration (`compact_events`) clamps with the same bound.
const MAX_SECONDS: i64 = 9_223_372_034;

/// A timestamp as its column: nanoseconds since the epoch, and whether they give back
/// exactly `t` (if not, its text goes to `extra`).
pub(super) fn nanos(t: &DateTime<Utc>) -> (i64, bool) {
    let secs = t.timestamp().clamp(-MAX_SECONDS, MAX_SECONDS);
    let n = secs
        .saturating_mul(1_000_000_000)
        .saturating_add(i64::from(t.timestamp_subsec_nanos()));
    (n, DateTime::from_timestamp_nanos(n) == *t)
}

/// The `fingerprint` column: the bytes of a lowercase hex fingerprint, other text as is
/// (decoded once, into the value itself: binding it borrows, no allocation).
enum StoredFingerprint<'a> {
    Sha256([u8; 32]),
    Text(&'a str),
}

impl<'a> StoredFingerprint<'a> {
    fn of(s: &'a str) -> Self {
        let lower_hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
        let mut bytes = [0_u8; 32];
        if s.len() == 64 && s.bytes().all(lower_hex) && hex::decode_to_slice(s, &mut bytes).is_ok()
        {
            StoredFingerprint::Sha256(bytes)
        } else {
            StoredFingerprint::Text(s)
        }
    }
}

impl ToSql for StoredFingerprint<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            StoredFingerprint::Sha256(bytes) => ValueRef::Blob(bytes),
            StoredFingerprint::Text(s) => ValueRef::Text(s.as_bytes()),
        }))
    }
}

/// A `fingerprint` column read back as the text it was written from.
struct Fingerprint(String);

impl FromSql for Fingerprint {
    fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
        match v {
            ValueRef::Blob(b) => Ok(Self(hex::encode(b))),
            ValueRef::Text(t) => std::str::from_utf8(t)
                .map(|s| Self(s.to_owned()))
                .map_err(|e| FromSqlError::Other(Box::new(e))),
            _ => Err(FromSqlError::InvalidType),
        }
    }
}

/// The id of `label` in `event_labels`, added if new (inside the caller's transaction).
fn label_id(conn: &Connection, label: &str) -> StoreResult<i64> {
    let found: Option<i64> = conn
        .prepare_cached("SELECT id FROM event_labels WHERE label = ?1")?
        .query_row([label], |r| r.get(0))
        .optional()?;
    match found {
        Some(id) => Ok(id),
        None => Ok(conn
            .prepare_cached("INSERT INTO event_labels (label) VALUES (?1) RETURNING id")?
            .query_row([label], |r| r.get(0))?),
    }
}

fn label(conn: &Connection, text: Option<&str>) -> StoreResult<Option<i64>> {
    text.map(|t| label_id(conn, t)).transpose()
}

/// Inserts `e` unless its (tenant, event id) is stored; whether it was inserted.
pub(super) fn insert(conn: &Connection, e: &UsageEvent) -> StoreResult<bool> {
    // Every field named: a field added to `UsageEvent` does not compile until it is stored.
    let UsageEvent {
        tenant,
        user,
        event_id,
        fingerprint,
        provider,
        model,
        timestamp,
        period_start,
        counts,
        cost_usd,
        price_version,
        estimated,
        endpoint,
        status_code,
        latency_ms,
        reservation_id,
        metadata,
        recorded_at,
        org_id,
        team_id,
        payer,
    } = e;
    let (ts_nanos, ts_exact) = nanos(timestamp);
    let (ps_nanos, ps_exact) = nanos(period_start);
    let extra = ExtraOut {
        estimated: *estimated,
        endpoint: endpoint.as_deref(),
        reservation_id: reservation_id.as_deref(),
        metadata: metadata.as_ref(),
        recorded_at: (recorded_at != timestamp).then_some(recorded_at),
        org_id: org_id.as_ref(),
        team_id: team_id.as_ref(),
        payer: payer.as_ref(),
        timestamp: (!ts_exact).then(|| ts(timestamp)),
        period_start: (!ps_exact).then(|| ts(period_start)),
    };
    let extra = if extra.is_empty() {
        None
    } else {
        Some(to_json(&extra)?)
    };
    let model = label(conn, model.as_ref().map(|m| m.as_str()))?;
    let price_version = label(conn, price_version.as_deref())?;
    let UsageCounts {
        input_tokens,
        output_tokens,
        cached_input_tokens,
        cache_write_tokens,
        reasoning_tokens,
        requests,
        searches,
        images,
        pages,
    } = *counts;
    let inserted = conn
        .prepare_cached(
            "INSERT INTO events (tenant, event_id, user, fingerprint, provider, period_start,
                 timestamp, model, cost, price_version, input_tokens, output_tokens,
                 cached_input_tokens, cache_write_tokens, reasoning_tokens, requests, searches,
                 images, pages, status_code, latency_ms, extra)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                 ?17, ?18, ?19, ?20, ?21, ?22)
             ON CONFLICT (tenant, event_id) DO NOTHING",
        )?
        .execute(params![
            tenant.as_str(),
            event_id.as_str(),
            user.as_str(),
            StoredFingerprint::of(fingerprint),
            provider.as_str(),
            ps_nanos,
            ts_nanos,
            model,
            cost_usd.map(|c| c.to_string()),
            price_version,
            count(input_tokens)?,
            count(output_tokens)?,
            count(cached_input_tokens)?,
            count(cache_write_tokens)?,
            count(reasoning_tokens)?,
            count(requests)?,
            count(searches)?,
            count(images)?,
            count(pages)?,
            status_code,
            latency_ms.map(count).transpose()?,
            extra,
        ])?;
    Ok(inserted == 1)
}

/// The fingerprint stored for (tenant, event id), if the event is stored.
pub(super) fn stored_fingerprint(
    conn: &Connection,
    tenant: &str,
    event_id: &str,
) -> StoreResult<Option<String>> {
    let found: Option<Fingerprint> = conn
        .prepare_cached("SELECT fingerprint FROM events WHERE tenant = ?1 AND event_id = ?2")?
        .query_row(params![tenant, event_id], |r| r.get(0))
        .optional()?;
    Ok(found.map(|f| f.0))
}

/// Prices a stored event: its cost (exact, scale kept) and price version.
pub(super) fn set_price(
    conn: &Connection,
    tenant: &str,
    event_id: &str,
    cost: Decimal,
    price_version: &str,
) -> StoreResult<()> {
    let version = label_id(conn, price_version)?;
    conn.prepare_cached(
        "UPDATE events SET cost = ?3, price_version = ?4 WHERE tenant = ?1 AND event_id = ?2",
    )?
    .execute(params![tenant, event_id, cost.to_string(), version])?;
    Ok(())
}

/// One selected row (see [`EVENT_COLUMNS`]).
pub(super) struct EventRow {
    tenant: String,
    event_id: String,
    user: String,
    fingerprint: String,
    provider: String,
    period_start: i64,
    timestamp: i64,
    model: Option<String>,
    cost: Option<String>,
    price_version: Option<String>,
    counts: [i64; 9],
    status_code: Option<i64>,
    latency_ms: Option<i64>,
    extra: Option<String>,
}

impl EventRow {
    /// Reads the row of a statement selecting [`EVENT_COLUMNS`] first.
    pub(super) fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        let mut counts = [0; 9];
        for (i, c) in counts.iter_mut().enumerate() {
            *c = r.get(10 + i)?;
        }
        Ok(Self {
            tenant: r.get(0)?,
            event_id: r.get(1)?,
            user: r.get(2)?,
            fingerprint: r.get::<_, Fingerprint>(3)?.0,
            provider: r.get(4)?,
            period_start: r.get(5)?,
            timestamp: r.get(6)?,
            model: r.get(7)?,
            cost: r.get(8)?,
            price_version: r.get(9)?,
            counts,
            status_code: r.get(19)?,
            latency_ms: r.get(20)?,
            extra: r.get(21)?,
        })
    }

    pub(super) fn into_event(self) -> StoreResult<UsageEvent> {
        let x: ExtraIn = match &self.extra {
            Some(json) => from_json(json)?,
            None => ExtraIn::default(),
        };
        let instant = |exact: Option<String>, n: i64| match exact {
            Some(text) => parse_ts(&text),
            None => Ok(DateTime::from_timestamp_nanos(n)),
        };
        let timestamp = instant(x.timestamp, self.timestamp)?;
        let [input_tokens, output_tokens, cached_input_tokens, cache_write_tokens, reasoning_tokens, requests, searches, images, pages] =
            self.counts;
        let counts = UsageCounts {
            input_tokens: parse_count(input_tokens)?,
            output_tokens: parse_count(output_tokens)?,
            cached_input_tokens: parse_count(cached_input_tokens)?,
            cache_write_tokens: parse_count(cache_write_tokens)?,
            reasoning_tokens: parse_count(reasoning_tokens)?,
            requests: parse_count(requests)?,
            searches: parse_count(searches)?,
            images: parse_count(images)?,
            pages: parse_count(pages)?,
        };
        let status_code = self
            .status_code
            .map(|s| u16::try_from(s).map_err(|_| StoreError::Corrupt(format!("status code {s}"))))
            .transpose()?;
        // Every field named, as in `insert`.
        Ok(UsageEvent {
            tenant: id(self.tenant, TenantId::parse)?,
            user: id(self.user, UserId::parse)?,
            event_id: id(self.event_id, EventId::parse)?,
            fingerprint: self.fingerprint,
            provider: id(self.provider, ProviderId::parse)?,
            model: self.model.map(|m| id(m, ModelId::parse)).transpose()?,
            timestamp,
            period_start: instant(x.period_start, self.period_start)?,
            counts,
            cost_usd: self.cost.as_deref().map(parse_money).transpose()?,
            price_version: self.price_version,
            estimated: x.estimated,
            endpoint: x.endpoint,
            status_code,
            latency_ms: self.latency_ms.map(parse_count).transpose()?,
            reservation_id: x.reservation_id,
            metadata: x.metadata,
            recorded_at: x.recorded_at.unwrap_or(timestamp),
            org_id: x.org_id,
            team_id: x.team_id,
            payer: x.payer,
        })
    }
}

/// The `extra` column as written. The field order is `UsageEvent`'s (the migration builds
/// the same JSON from rows of the earlier layouts).
#[derive(Serialize)]
struct ExtraOut<'a> {
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    estimated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    endpoint: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reservation_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<&'a Metadata>,
    #[serde(skip_serializing_if = "Option::is_none")]
    recorded_at: Option<&'a DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    org_id: Option<&'a OrgId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    team_id: Option<&'a TeamId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payer: Option<&'a Payer>,
    /// The exact text of a timestamp its nanoseconds column cannot hold.
    #[serde(skip_serializing_if = "Option::is_none")]
    timestamp: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    period_start: Option<String>,
}

impl ExtraOut<'_> {
    fn is_empty(&self) -> bool {
        let Self {
            estimated,
            endpoint,
            reservation_id,
            metadata,
            recorded_at,
            org_id,
            team_id,
            payer,
            timestamp,
            period_start,
        } = self;
        !estimated
            && endpoint.is_none()
            && reservation_id.is_none()
            && metadata.is_none()
            && recorded_at.is_none()
            && org_id.is_none()
            && team_id.is_none()
            && payer.is_none()
            && timestamp.is_none()
            && period_start.is_none()
    }
}

/// The `extra` column as read (absent fields: false or none).
#[derive(Default, Deserialize)]
struct ExtraIn {
    #[serde(default)]
    estimated: bool,
    #[serde(default)]
    endpoint: Option<String>,
    #[serde(default)]
    reservation_id: Option<String>,
    #[serde(default)]
    metadata: Option<Metadata>,
    #[serde(default)]
    recorded_at: Option<DateTime<Utc>>,
    #[serde(default)]
    org_id: Option<OrgId>,
    #[serde(default)]
    team_id: Option<TeamId>,
    #[serde(default)]
    payer: Option<Payer>,
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(default)]
    period_start: Option<String>,
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, NaiveDate, TimeZone};

    use super::*;
    use crate::testing::{event, tenant, user};

    fn db() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::schema::migrate(&mut conn, super::super::schema::MIGRATIONS).unwrap();
        conn
    }

    fn round_trip(conn: &Connection, e: &UsageEvent) -> UsageEvent {
        assert!(insert(conn, e).unwrap());
        conn.query_row(
            &format!("SELECT {EVENT_COLUMNS} FROM events WHERE tenant = ?1 AND event_id = ?2"),
            params![e.tenant.as_str(), e.event_id.as_str()],
            EventRow::read,
        )
        .unwrap()
        .into_event()
        .unwrap()
    }

    fn extra_of(conn: &Connection, e: &UsageEvent) -> Option<String> {
        conn.query_row(
            "SELECT extra FROM events WHERE event_id = ?1",
            [e.event_id.as_str()],
            |r| r.get(0),
        )
        .unwrap()
    }

    /// Every field set.
    fn full_event(id: &str) -> UsageEvent {
        let mut e = event(&tenant(), &user("alice"), id, 1200, "0.012300");
        e.counts.cached_input_tokens = 7;
        e.counts.images = 2;
        e.counts.pages = 1;
        e.estimated = true;
        e.endpoint = Some("/v1/chat".into());
        e.status_code = Some(429);
        e.latency_ms = Some(310);
        e.reservation_id = Some("rsv_1".into());
        e.metadata = Some(serde_json::json!({"feature": "summary", "n": 1.5, "none": null}));
        e.recorded_at = e.timestamp + Duration::milliseconds(1500);
        e.org_id = Some(serde_json::from_value(serde_json::json!("acme")).unwrap());
        e.team_id = Some(serde_json::from_value(serde_json::json!("search")).unwrap());
        e
    }

    #[test]
    fn every_field_reads_back_and_a_plain_event_has_no_extra() {
        let conn = db();
        let e = full_event("e1");
        assert_eq!(round_trip(&conn, &e), e);
        assert!(extra_of(&conn, &e).unwrap().contains("recorded_at"));

        let mut plain = event(&tenant(), &user("alice"), "e2", 100, "0.5");
        plain.recorded_at = plain.timestamp;
        plain.fingerprint = hex::encode([7u8; 32]);
        assert_eq!(round_trip(&conn, &plain), plain);
        assert_eq!(extra_of(&conn, &plain), None);
        let (kind, len): (String, i64) = conn
            .query_row(
                "SELECT typeof(fingerprint), length(fingerprint) FROM events WHERE event_id = 'e2'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((kind.as_str(), len), ("blob", 32));
    }

    #[test]
    fn unpriced_events_read_back_and_pricing_keeps_the_cost_scale() {
        let conn = db();
        let mut e = event(&tenant(), &user("alice"), "e1", 100, "0.5000");
        e.cost_usd = None;
        e.price_version = None;
        e.model = None;
        e.status_code = None;
        assert_eq!(round_trip(&conn, &e), e);
        set_price(
            &conn,
            e.tenant.as_str(),
            "e1",
            "0.25000".parse().unwrap(),
            "v@1",
        )
        .unwrap();
        let priced = conn
            .query_row(
                &format!("SELECT {EVENT_COLUMNS} FROM events WHERE event_id = 'e1'"),
                [],
                EventRow::read,
            )
            .unwrap()
            .into_event()
            .unwrap();
        assert_eq!(priced.cost_usd.unwrap().to_string(), "0.25000");
        assert_eq!(priced.price_version.as_deref(), Some("v@1"));
    }

    #[test]
    fn timestamps_a_column_cannot_hold_keep_their_text() {
        let conn = db();
        let leap = NaiveDate::from_ymd_opt(2016, 12, 31)
            .unwrap()
            .and_hms_nano_opt(23, 59, 59, 1_500_000_000)
            .unwrap()
            .and_utc();
        let far = Utc.with_ymd_and_hms(2300, 1, 1, 0, 0, 0).unwrap() + Duration::nanoseconds(1);
        let early = Utc.with_ymd_and_hms(1969, 12, 31, 23, 59, 59).unwrap()
            + Duration::nanoseconds(500_000_000);
        for (i, t) in [leap, far, early].into_iter().enumerate() {
            let mut e = event(&tenant(), &user("alice"), &format!("e{i}"), 100, "0.5");
            e.timestamp = t;
            e.recorded_at = t;
            e.period_start = t;
            assert_eq!(round_trip(&conn, &e), e, "{t}");
        }
        assert_eq!(nanos(&early), (-500_000_000, true));
        assert!(!nanos(&leap).1 && !nanos(&far).1);
    }

    #[test]
    fn other_fingerprints_are_stored_as_text() {
        let conn = db();
        let mut e = event(&tenant(), &user("alice"), "e1", 100, "0.5");
        for (i, fp) in ["fp-1", &"A".repeat(64), &"ab".repeat(33)]
            .into_iter()
            .enumerate()
        {
            e.event_id = EventId::parse(format!("e{i}")).unwrap();
            e.fingerprint = fp.to_owned();
            assert_eq!(round_trip(&conn, &e), e);
            assert_eq!(
                stored_fingerprint(&conn, e.tenant.as_str(), e.event_id.as_str()).unwrap(),
                Some(fp.to_owned())
            );
        }
    }
}
