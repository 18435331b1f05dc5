//! A usage event as one `events` row: the columns the queries search by, and in the
//! `event` column the rest of the event as JSON, without what the columns hold, without
//! absent fields and zero counts, and without `recorded_at` when it equals `timestamp`.
//!
//! Rows written before this layout hold the whole event as JSON in `event`; they read
//! the same (the column values win, the repeated fields are ignored), so no table is
//! rewritten. What each part costs is measured by `scripts/bench-storage` (BENCHMARKS.md,
//! "Storage per event").

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::codec::{from_json, id, parse_ts, to_json};
use crate::domain::{
    EventId, Metadata, ModelId, OrgId, ProviderId, TeamId, TenantId, UsageEvent, UserId,
};
use crate::store::StoreResult;
use crate::usage::UsageCounts;

/// The columns to select, in [`EventRow`]'s order (a macro, for `concat!` in constants).
macro_rules! event_columns {
    () => {
        "tenant, event_id, user, fingerprint, provider, period_start, timestamp, event"
    };
}
pub(super) use event_columns;

/// `SELECT {EVENT_COLUMNS} FROM events …`.
pub(super) const EVENT_COLUMNS: &str = event_columns!();

/// One selected row (see [`EVENT_COLUMNS`]).
pub(super) struct EventRow {
    tenant: String,
    event_id: String,
    user: String,
    fingerprint: String,
    provider: String,
    period_start: String,
    timestamp: String,
    body: String,
}

impl EventRow {
    /// Reads the row of a statement selecting [`EVENT_COLUMNS`] first.
    pub(super) fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            tenant: r.get(0)?,
            event_id: r.get(1)?,
            user: r.get(2)?,
            fingerprint: r.get(3)?,
            provider: r.get(4)?,
            period_start: r.get(5)?,
            timestamp: r.get(6)?,
            body: r.get(7)?,
        })
    }

    pub(super) fn into_event(self) -> StoreResult<UsageEvent> {
        let b: Body = from_json(&self.body)?;
        let timestamp = parse_ts(&self.timestamp)?;
        let Counts(counts) = b.counts;
        // Every field named: a field added to `UsageEvent` does not compile until it is stored.
        Ok(UsageEvent {
            tenant: id(self.tenant, TenantId::parse)?,
            user: id(self.user, UserId::parse)?,
            event_id: id(self.event_id, EventId::parse)?,
            fingerprint: self.fingerprint,
            provider: id(self.provider, ProviderId::parse)?,
            model: b.model,
            timestamp,
            period_start: parse_ts(&self.period_start)?,
            counts,
            cost_usd: b.cost_usd,
            price_version: b.price_version,
            estimated: b.estimated,
            endpoint: b.endpoint,
            status_code: b.status_code,
            latency_ms: b.latency_ms,
            reservation_id: b.reservation_id,
            metadata: b.metadata,
            recorded_at: b.recorded_at.unwrap_or(timestamp),
            org_id: b.org_id,
            team_id: b.team_id,
        })
    }
}

/// The `event` column of `e`.
pub(super) fn body(e: &UsageEvent) -> StoreResult<String> {
    // Every field named, as in `into_event`.
    let UsageEvent {
        tenant: _,
        user: _,
        event_id: _,
        fingerprint: _,
        provider: _,
        model,
        timestamp,
        period_start: _,
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
    } = e;
    to_json(&Body {
        model: model.clone(),
        counts: Counts(*counts),
        cost_usd: *cost_usd,
        price_version: price_version.clone(),
        estimated: *estimated,
        endpoint: endpoint.clone(),
        status_code: *status_code,
        latency_ms: *latency_ms,
        reservation_id: reservation_id.clone(),
        metadata: metadata.clone(),
        recorded_at: (recorded_at != timestamp).then_some(*recorded_at),
        org_id: org_id.clone(),
        team_id: team_id.clone(),
    })
}

/// What the `event` column holds (unknown fields, such as the columns' copies in rows of
/// the earlier layout, are ignored).
#[derive(Serialize, Deserialize)]
struct Body {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    model: Option<ModelId>,
    #[serde(default)]
    counts: Counts,
    #[serde(
        default,
        with = "rust_decimal::serde::str_option",
        skip_serializing_if = "Option::is_none"
    )]
    cost_usd: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    price_version: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    estimated: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status_code: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    latency_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reservation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    metadata: Option<Metadata>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    recorded_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    org_id: Option<OrgId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    team_id: Option<TeamId>,
}

/// Counts with the zero ones left out (they read back as zero: `UsageCounts` defaults
/// absent fields).
#[derive(Default, Deserialize)]
#[serde(transparent)]
struct Counts(UsageCounts);

impl Serialize for Counts {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
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
        } = self.0;
        let all = [
            ("input_tokens", input_tokens),
            ("output_tokens", output_tokens),
            ("cached_input_tokens", cached_input_tokens),
            ("cache_write_tokens", cache_write_tokens),
            ("reasoning_tokens", reasoning_tokens),
            ("requests", requests),
            ("searches", searches),
            ("images", images),
            ("pages", pages),
        ];
        let mut m = s.serialize_map(None)?;
        for (k, v) in all.iter().filter(|(_, v)| *v != 0) {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{event, tenant, user};

    fn round_trip(e: &UsageEvent) -> UsageEvent {
        EventRow {
            tenant: e.tenant.to_string(),
            event_id: e.event_id.to_string(),
            user: e.user.to_string(),
            fingerprint: e.fingerprint.clone(),
            provider: e.provider.to_string(),
            period_start: super::super::codec::ts(&e.period_start),
            timestamp: super::super::codec::ts(&e.timestamp),
            body: body(e).unwrap(),
        }
        .into_event()
        .unwrap()
    }

    #[test]
    fn every_field_reads_back_and_the_body_leaves_out_the_columns() {
        let mut e = event(&tenant(), &user("alice"), "e1", 1200, "0.0123");
        e.counts.cached_input_tokens = 7;
        e.counts.images = 2;
        e.estimated = true;
        e.endpoint = Some("/v1/chat".into());
        e.status_code = Some(429);
        e.latency_ms = Some(310);
        e.reservation_id = Some("rsv_1".into());
        e.metadata = Some(serde_json::json!({"feature": "summary"}));
        e.recorded_at = e.timestamp + chrono::Duration::milliseconds(1500);
        e.org_id = Some(serde_json::from_value(serde_json::json!("acme")).unwrap());
        e.team_id = Some(serde_json::from_value(serde_json::json!("search")).unwrap());
        assert_eq!(round_trip(&e), e);
        let stored = body(&e).unwrap();
        for column in [
            "\"tenant\"",
            "\"event_id\"",
            "\"user\"",
            "\"fingerprint\"",
            "\"provider\"",
            "\"timestamp\"",
            "\"period_start\"",
            "\"requests\"",
        ] {
            assert!(!stored.contains(column), "{column} in {stored}");
        }
        assert!(stored.contains("\"recorded_at\""), "{stored}");
    }

    #[test]
    fn absent_fields_zero_counts_and_recorded_at_equal_to_the_timestamp_are_left_out() {
        let mut e = event(&tenant(), &user("alice"), "e1", 100, "0.5");
        e.recorded_at = e.timestamp;
        e.price_version = None;
        assert_eq!(round_trip(&e), e);
        let stored = body(&e).unwrap();
        assert!(
            !stored.contains("null") && !stored.contains("recorded_at"),
            "{stored}"
        );
        e.cost_usd = None;
        assert_eq!(round_trip(&e), e);
    }

    #[test]
    fn a_row_of_the_earlier_layout_reads_the_same() {
        let e = event(&tenant(), &user("alice"), "e1", 100, "0.5");
        let row = EventRow {
            tenant: e.tenant.to_string(),
            event_id: e.event_id.to_string(),
            user: e.user.to_string(),
            fingerprint: e.fingerprint.clone(),
            provider: e.provider.to_string(),
            period_start: super::super::codec::ts(&e.period_start),
            timestamp: super::super::codec::ts(&e.timestamp),
            body: serde_json::to_string(&e).unwrap(),
        };
        assert_eq!(row.into_event().unwrap(), e);
    }
}
