//! The soak audit: recomputes a user's counters from the raw events (and holds from the
//! open reservations) of `GET /user/{id}/export` and compares them exactly.
//!
//! Per period and provider: `recorded.calls` = events, `recorded.tokens` = Σ input +
//! output tokens, `recorded.cost_usd` = Σ `cost_usd` (exact `Decimal`s parsed from their
//! strings, no float), `unpriced_calls`, `estimated_calls`, `error_calls` (status ≥ 400),
//! `latency_ms_sum`/`latency_count`; `held` = Σ `held` of the reservations still `held`.
//! Also: no event id twice, and (when known) exactly the acknowledged event ids.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use rust_decimal::Decimal;
use serde_json::Value;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Tally {
    calls: u64,
    tokens: u64,
    cost: Decimal,
}

/// The counters of one provider in one period, as the audit compares them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Counters {
    recorded: Tally,
    held: Tally,
    unpriced_calls: u64,
    estimated_calls: u64,
    error_calls: u64,
    latency_ms_sum: u64,
    latency_count: u64,
}

/// What one user's audit saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserAudit {
    pub events: usize,
    pub open_reservations: usize,
    /// Every difference found, in words (empty: the user is consistent).
    pub differences: Vec<String>,
}

fn u64_at(v: &Value, key: &str) -> Result<u64, String> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(0),
        Some(n) => n
            .as_u64()
            .ok_or_else(|| format!("`{key}` is not a count: {n}")),
    }
}

fn decimal_at(v: &Value, key: &str) -> Result<Option<Decimal>, String> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Decimal::from_str(s)
            .map(Some)
            .map_err(|e| format!("`{key}` {s:?} is not a decimal: {e}")),
        Some(other) => Err(format!("`{key}` is not a decimal string: {other}")),
    }
}

fn str_at<'a>(v: &'a Value, key: &str) -> Result<&'a str, String> {
    v.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("`{key}` missing"))
}

fn tally_at(v: &Value, key: &str) -> Result<Tally, String> {
    let t = v.get(key).cloned().unwrap_or(Value::Null);
    Ok(Tally {
        calls: u64_at(&t, "calls")?,
        tokens: u64_at(&t, "tokens")?,
        cost: decimal_at(&t, "cost_usd")?.unwrap_or_default(),
    })
}

fn add(a: &mut Tally, b: &Tally) {
    a.calls += b.calls;
    a.tokens += b.tokens;
    a.cost += b.cost;
}

/// Audits one user's export (`data` of the answer). `acknowledged`: the event ids the
/// load generator was told were stored, when it knows them.
pub fn audit_user(
    export: &Value,
    acknowledged: Option<&BTreeSet<String>>,
) -> Result<UserAudit, String> {
    let events = export["events"].as_array().ok_or("no `events` array")?;
    let mut expected: BTreeMap<(String, String), Counters> = BTreeMap::new();
    let mut ids = BTreeSet::new();
    let mut differences = Vec::new();
    for e in events {
        let id = str_at(e, "event_id")?;
        if !ids.insert(id.to_owned()) {
            differences.push(format!("event {id} is stored twice"));
        }
        let key = (
            str_at(e, "period_start")?.to_owned(),
            str_at(e, "provider")?.to_owned(),
        );
        let c = expected.entry(key).or_default();
        let counts = &e["counts"];
        let cost = decimal_at(e, "cost_usd")?;
        add(
            &mut c.recorded,
            &Tally {
                calls: 1,
                tokens: u64_at(counts, "input_tokens")? + u64_at(counts, "output_tokens")?,
                cost: cost.unwrap_or_default(),
            },
        );
        c.unpriced_calls += u64::from(cost.is_none());
        c.estimated_calls += u64::from(e["estimated"].as_bool().unwrap_or(false));
        c.error_calls += u64::from(u64_at(e, "status_code")? >= 400);
        if let Some(l) = e.get("latency_ms").and_then(Value::as_u64) {
            c.latency_ms_sum += l;
            c.latency_count += 1;
        }
    }
    if let Some(acked) = acknowledged {
        let missing: Vec<&String> = acked.difference(&ids).take(10).collect();
        let extra: Vec<&String> = ids.difference(acked).take(10).collect();
        if !missing.is_empty() {
            differences.push(format!(
                "{} acknowledged events missing, e.g. {missing:?}",
                acked.difference(&ids).count()
            ));
        }
        if !extra.is_empty() {
            differences.push(format!(
                "{} stored events were never acknowledged, e.g. {extra:?}",
                ids.difference(acked).count()
            ));
        }
    }

    let mut open = 0;
    for r in export["reservations"]
        .as_array()
        .ok_or("no `reservations` array")?
    {
        if str_at(r, "status")? != "held" {
            continue;
        }
        open += 1;
        let key = (
            str_at(r, "period_start")?.to_owned(),
            str_at(r, "provider")?.to_owned(),
        );
        add(
            &mut expected.entry(key).or_default().held,
            &tally_at(r, "held")?,
        );
    }

    let mut actual: BTreeMap<(String, String), Counters> = BTreeMap::new();
    for p in export["periods"].as_array().ok_or("no `periods` array")? {
        let start = str_at(p, "period_start")?;
        let by_provider = p["usage"]["by_provider"]
            .as_object()
            .ok_or("no `usage.by_provider`")?;
        for (provider, u) in by_provider {
            actual.insert(
                (start.to_owned(), provider.clone()),
                Counters {
                    recorded: tally_at(u, "recorded")?,
                    held: tally_at(u, "held")?,
                    unpriced_calls: u64_at(u, "unpriced_calls")?,
                    estimated_calls: u64_at(u, "estimated_calls")?,
                    error_calls: u64_at(u, "error_calls")?,
                    latency_ms_sum: u64_at(u, "latency_ms_sum")?,
                    latency_count: u64_at(u, "latency_count")?,
                },
            );
        }
    }
    let keys: BTreeSet<_> = expected.keys().chain(actual.keys()).cloned().collect();
    for key in keys {
        let want = expected.get(&key).cloned().unwrap_or_default();
        let got = actual.get(&key).cloned().unwrap_or_default();
        if want != got {
            differences.push(format!(
                "period {} provider {}: counters {got:?}, recomputed {want:?}",
                key.0, key.1
            ));
        }
    }
    Ok(UserAudit {
        events: events.len(),
        open_reservations: open,
        differences,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn export(recorded_cost: &str, held_calls: u64) -> Value {
        json!({
            "events": [
                {"event_id": "a", "period_start": "2026-11-01T00:00:00Z", "provider": "gemini",
                 "counts": {"input_tokens": 100, "output_tokens": 20, "cached_input_tokens": 50},
                 "cost_usd": "0.00010", "estimated": false, "status_code": 502, "latency_ms": 7},
                {"event_id": "b", "period_start": "2026-11-01T00:00:00Z", "provider": "gemini",
                 "counts": {"input_tokens": 1, "output_tokens": 2},
                 "cost_usd": "0.0000200", "estimated": true, "status_code": null, "latency_ms": null},
                {"event_id": "c", "period_start": "2026-11-01T00:00:00Z", "provider": "openai",
                 "counts": {"input_tokens": 3, "output_tokens": 4}, "cost_usd": null, "estimated": false}
            ],
            "reservations": [
                {"id": "r1", "period_start": "2026-11-01T00:00:00Z", "provider": "gemini", "status": "held",
                 "held": {"calls": 1, "tokens": 300, "cost_usd": "0.0003"}},
                {"id": "r2", "period_start": "2026-11-01T00:00:00Z", "provider": "gemini", "status": "released",
                 "held": {"calls": 1, "tokens": 300, "cost_usd": "0.0003"}}
            ],
            "periods": [{"period_start": "2026-11-01T00:00:00Z", "usage": {"by_provider": {
                "gemini": {"recorded": {"calls": 2, "tokens": 123, "cost_usd": recorded_cost},
                           "held": {"calls": held_calls, "tokens": 300 * held_calls, "cost_usd": if held_calls == 1 { "0.0003" } else { "0" }},
                           "unpriced_calls": 0, "estimated_calls": 1, "error_calls": 1,
                           "latency_ms_sum": 7, "latency_count": 1},
                "openai": {"recorded": {"calls": 1, "tokens": 7, "cost_usd": "0"},
                           "held": {"calls": 0, "tokens": 0, "cost_usd": "0"},
                           "unpriced_calls": 1, "estimated_calls": 0, "error_calls": 0,
                           "latency_ms_sum": 0, "latency_count": 0}
            }}}]
        })
    }

    #[test]
    fn consistent_export_has_no_differences_whatever_the_decimal_scale() {
        let acked: BTreeSet<String> = ["a", "b", "c"].map(str::to_owned).into();
        let a = audit_user(&export("0.00012", 1), Some(&acked)).unwrap();
        assert_eq!(a.differences, Vec::<String>::new());
        assert_eq!((a.events, a.open_reservations), (3, 1));
    }

    #[test]
    fn cost_off_by_the_smallest_unit_is_a_difference() {
        let a = audit_user(&export("0.00012000000000000000000001", 1), None).unwrap();
        assert_eq!(a.differences.len(), 1, "{:?}", a.differences);
        assert!(a.differences[0].contains("provider gemini"));
    }

    #[test]
    fn hold_without_an_open_reservation_is_a_difference() {
        let mut e = export("0.00012", 1);
        e["reservations"][0]["status"] = json!("settled");
        assert_eq!(audit_user(&e, None).unwrap().differences.len(), 1);
    }

    #[test]
    fn duplicate_and_missing_events_are_differences() {
        let mut e = export("0.00012", 1);
        e["events"][1]["event_id"] = json!("a");
        let acked: BTreeSet<String> = ["a", "b", "c"].map(str::to_owned).into();
        let d = audit_user(&e, Some(&acked)).unwrap().differences;
        assert!(d.iter().any(|d| d.contains("stored twice")), "{d:?}");
        assert!(
            d.iter().any(|d| d.contains("acknowledged events missing")),
            "{d:?}"
        );
    }
}
