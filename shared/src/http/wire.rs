//! Request bodies of the hot path, validated into the service's inputs.
//!
//! Every field is typed and bounded: ids ≤ 128 characters of a safe charset, counts ≤
//! 10^12, timestamps within 35 days back and 5 minutes ahead. Unknown fields are
//! rejected so that a typo (`input_token`) is never silently billed as zero.

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

use super::call_scopes::{read_scopes, SCOPE_FIELDS};
use super::fields::Fields;
use crate::domain::{EventId, ModelId, ProviderId, UserId};
use crate::service::reads::QuoteRequest;
use crate::service::{CheckRequest, Error, EventErrors, FieldError, NewEvent, Units};
use crate::usage::normalise;
use crate::usage::UsageCounts;

/// Most events in one `POST /usage`.
pub const MAX_BATCH: usize = 100;
/// How far back an event's timestamp may be.
pub const MAX_EVENT_AGE: Duration = Duration::days(35);
/// How far ahead of the server's clock an event's timestamp may be.
pub const MAX_CLOCK_SKEW: Duration = Duration::minutes(5);
/// Default and largest reservation lifetime.
pub const DEFAULT_RESERVATION_TTL: u64 = 300;
pub const MAX_RESERVATION_TTL: u64 = 3600;
/// Largest serialized `metadata` object.
pub const MAX_METADATA_BYTES: usize = 8 * 1024;

const CHECK_FIELDS: &[&str] = &[
    "user_id",
    "provider",
    "model",
    "estimated_input_tokens",
    "estimated_output_tokens",
    "units",
    "reserve",
    "reservation_ttl_seconds",
];
const UNIT_FIELDS: &[&str] = &["requests", "searches", "images", "pages"];

fn units(f: &mut Fields<'_>) -> Units {
    Units {
        requests: f.count("requests").unwrap_or(0),
        searches: f.count("searches").unwrap_or(0),
        images: f.count("images").unwrap_or(0),
        pages: f.count("pages").unwrap_or(0),
    }
}

/// Validates a check body.
pub fn parse_check(body: &Value) -> Result<CheckRequest, Error> {
    let mut f = Fields::new(body, "", &[CHECK_FIELDS, SCOPE_FIELDS])
        .map_err(|e| Error::Invalid(vec![e]))?;
    let user = f.id("user_id", true, UserId::parse);
    let (org_id, team_id) = read_scopes(&mut f);
    let provider = f.id("provider", false, ProviderId::parse);
    let model = f.id("model", false, ModelId::parse);
    let estimated_input_tokens = f.count("estimated_input_tokens").unwrap_or(0);
    let estimated_output_tokens = f.count("estimated_output_tokens").unwrap_or(0);
    let units = f.object("units", UNIT_FIELDS, units).unwrap_or_default();
    let reserve = f.boolean("reserve").unwrap_or(false);
    let ttl = f
        .uint("reservation_ttl_seconds", MAX_RESERVATION_TTL)
        .unwrap_or(DEFAULT_RESERVATION_TTL);
    if ttl == 0 {
        f.error(
            "reservation_ttl_seconds",
            "out_of_range",
            format!("must be between 1 and {MAX_RESERVATION_TTL}"),
        );
    }
    if provider.is_none()
        && model.is_none()
        && f.raw("provider").is_none()
        && f.raw("model").is_none()
    {
        f.error(
            "provider",
            "missing_field",
            "provider is required unless model names exactly one catalog entry",
        );
    }
    match (user, f.errors.is_empty()) {
        (Some(user), true) => Ok(CheckRequest {
            user,
            org_id,
            team_id,
            provider,
            model,
            estimated_input_tokens,
            estimated_output_tokens,
            units,
            reserve,
            reservation_ttl_seconds: ttl,
        }),
        _ => Err(Error::Invalid(f.errors)),
    }
}

/// Fields of an event besides its usage.
const EVENT_FIELDS: &[&str] = &[
    "event_id",
    "user_id",
    "provider",
    "model",
    "timestamp",
    "endpoint",
    "status_code",
    "latency_ms",
    "reservation_id",
    "metadata",
];

/// Counts of an event (and of a quote), each an integer in 0..=10^12; with `usage` (the
/// provider's own usage object) they are the fields that describe usage.
pub const COUNT_FIELDS: [&str; 11] = [
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "requests",
    "searches",
    "images",
    "pages",
    "input_chars",
    "output_chars",
];

/// Reads the usage of an event or quote: bounds and types field by field (every mistake
/// reported at once), then the one normalisation `meter pricing quote` uses too
/// (`usage::normalise::event_counts`): explicit token fields or the provider's `usage`
/// object (not both); characters when a token count is missing.
pub fn read_counts(f: &mut Fields<'_>) -> normalise::EventCounts {
    let errors_before = f.errors.len();
    for name in COUNT_FIELDS {
        f.count(name);
    }
    let none = normalise::EventCounts {
        counts: UsageCounts::default(),
        estimated: false,
    };
    if f.errors.len() != errors_before {
        return none;
    }
    match normalise::event_counts(f.map()) {
        Ok(c) => c,
        Err(e) => {
            f.error("usage", e.code(), e.to_string());
            none
        }
    }
}

/// Validates one event of a batch at `now`; `Err` lists every problem of the event.
pub fn parse_event(value: &Value, now: DateTime<Utc>) -> Result<NewEvent, Vec<FieldError>> {
    let mut f = Fields::new(
        value,
        "",
        &[EVENT_FIELDS, SCOPE_FIELDS, &COUNT_FIELDS, &["usage"]],
    )
    .map_err(|e| vec![e])?;
    let event_id = f.id("event_id", true, EventId::parse);
    let user = f.id("user_id", true, UserId::parse);
    let (org_id, team_id) = read_scopes(&mut f);
    let provider = f.id("provider", false, ProviderId::parse);
    let model = f.id("model", false, ModelId::parse);
    if f.raw("provider").is_none() && f.raw("model").is_none() {
        f.error(
            "provider",
            "missing_field",
            "provider is required unless model names exactly one catalog entry",
        );
    }
    let timestamp = f.timestamp("timestamp");
    if let Some(t) = timestamp {
        if t < now - MAX_EVENT_AGE {
            f.error(
                "timestamp",
                "timestamp_out_of_range",
                "must be at most 35 days in the past",
            );
        } else if t > now + MAX_CLOCK_SKEW {
            f.error(
                "timestamp",
                "timestamp_out_of_range",
                "must be at most 5 minutes in the future",
            );
        }
    }

    let normalise::EventCounts { counts, estimated } = read_counts(&mut f);
    if counts
        .cached_input_tokens
        .saturating_add(counts.cache_write_tokens)
        > counts.input_tokens
    {
        f.error("cached_input_tokens", "inconsistent_counts", "cached_input_tokens + cache_write_tokens must not exceed input_tokens (the whole prompt)");
    }
    if counts.reasoning_tokens > counts.output_tokens {
        f.error(
            "reasoning_tokens",
            "inconsistent_counts",
            "reasoning_tokens must not exceed output_tokens (the whole completion)",
        );
    }

    let endpoint = f.string("endpoint", false, 256).map(str::to_owned);
    let status_code = f.uint("status_code", 599).map(|c| c as u16);
    if matches!(status_code, Some(c) if c < 100) {
        f.error(
            "status_code",
            "out_of_range",
            "must be an HTTP status between 100 and 599",
        );
    }
    let latency_ms = f.uint("latency_ms", 86_400_000);
    let reservation_id = f.string("reservation_id", false, 256).map(str::to_owned);
    let metadata = match f.raw("metadata") {
        Some(m @ Value::Object(_)) if m.to_string().len() <= MAX_METADATA_BYTES => Some(m.clone()),
        Some(Value::Object(_)) => {
            f.error(
                "metadata",
                "too_long",
                format!("must serialize to at most {MAX_METADATA_BYTES} bytes"),
            );
            None
        }
        Some(_) => {
            f.error("metadata", "invalid_type", "must be a JSON object");
            None
        }
        None => None,
    };

    match (event_id, user, f.errors.is_empty()) {
        (Some(event_id), Some(user), true) => Ok(NewEvent {
            event_id,
            user,
            provider,
            model,
            timestamp,
            counts,
            estimated,
            endpoint,
            status_code,
            latency_ms,
            reservation_id,
            metadata,
            org_id,
            team_id,
        }),
        _ => Err(f.errors),
    }
}

/// Validates a `POST /usage` body: `{"events": [...]}` with 1–100 events, or a single
/// event object. Any invalid event rejects the whole batch.
pub fn parse_usage(body: &Value, now: DateTime<Utc>) -> Result<Vec<NewEvent>, Error> {
    let events: Vec<&Value> = match body {
        Value::Object(map) if map.contains_key("events") => {
            if map.len() != 1 {
                return Err(Error::invalid(
                    "",
                    "unknown_field",
                    "a batch body has only the field `events`",
                ));
            }
            match &map["events"] {
                Value::Array(items) => items.iter().collect(),
                _ => {
                    return Err(Error::invalid(
                        "events",
                        "invalid_type",
                        "must be an array of events",
                    ))
                }
            }
        }
        Value::Object(_) => vec![body],
        _ => {
            return Err(Error::invalid(
                "",
                "invalid_type",
                "the body must be a JSON object",
            ))
        }
    };
    if events.is_empty() || events.len() > MAX_BATCH {
        return Err(Error::invalid(
            "events",
            "batch_size",
            format!("must hold 1 to {MAX_BATCH} events"),
        ));
    }
    let mut parsed = Vec::with_capacity(events.len());
    let mut invalid = Vec::new();
    for (index, value) in events.iter().enumerate() {
        match parse_event(value, now) {
            Ok(e) => parsed.push(e),
            Err(errors) => invalid.push(EventErrors {
                index,
                event_id: value
                    .get("event_id")
                    .and_then(Value::as_str)
                    .map(|s| s.chars().take(128).collect()),
                errors,
            }),
        }
    }
    if invalid.is_empty() {
        Ok(parsed)
    } else {
        Err(Error::InvalidEvents {
            invalid: invalid.len(),
            total: events.len(),
            events: invalid,
        })
    }
}

/// Fields of a quote besides its usage ([`COUNT_FIELDS`] and `usage`).
const QUOTE_FIELDS: &[&str] = &["provider", "model", "timestamp"];

/// Validates a `POST /pricing/quote` body: an event without identity.
pub fn parse_quote(body: &Value) -> Result<QuoteRequest, Error> {
    let mut f = Fields::new(
        body,
        "",
        &[QUOTE_FIELDS, SCOPE_FIELDS, &COUNT_FIELDS, &["usage"]],
    )
    .map_err(|e| Error::Invalid(vec![e]))?;
    let (org_id, team_id) = read_scopes(&mut f);
    let provider = f.id("provider", false, ProviderId::parse);
    let model = f.id("model", false, ModelId::parse);
    let at = f.timestamp("timestamp");
    let counts = read_counts(&mut f);
    if !f.errors.is_empty() {
        return Err(Error::Invalid(f.errors));
    }
    Ok(QuoteRequest {
        org_id,
        team_id,
        provider,
        model,
        at,
        counts: counts.counts,
        estimated: counts.estimated,
    })
}
