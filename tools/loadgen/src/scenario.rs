//! The requests of each scenario: what one iteration of a connection sends.

use clap::ValueEnum;
use serde_json::{json, Value};

/// What the load consists of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// `POST /check` without a reservation.
    Check,
    /// `POST /check` with `reserve: true`, each reservation released right after.
    Reserve,
    /// `POST /check` naming the org [`BUDGET_ORG`] (which the caller gave two hard
    /// budgets beforehand, e.g. scripts/bench): the check over the user's plan and every
    /// budget of the org.
    CheckBudgets,
    /// `POST /usage` with one event (a unique `event_id` each).
    Event,
    /// `POST /usage` with a batch of 100 events of one user.
    Batch,
    /// `GET /dashboard/{user}` (falls back to `GET /alerts/{user}` where the route is absent).
    Dashboard,
    /// The soak mix, by iteration: 30 % checks, 20 % reservations (released, settled by
    /// an event, or left to expire), 40 % one-event ingests of which a quarter re-send an
    /// acknowledged event (10 % duplicates overall), 10 % dashboards.
    Mixed,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Check => "check",
            Scenario::Reserve => "reserve",
            Scenario::CheckBudgets => "check-budgets",
            Scenario::Event => "event",
            Scenario::Batch => "batch",
            Scenario::Dashboard => "dashboard",
            Scenario::Mixed => "mixed",
        }
    }

    /// Usage events carried by one request (for events/s).
    pub fn events_per_request(self, batch: usize) -> u64 {
        match self {
            Scenario::Event => 1,
            Scenario::Batch => batch as u64,
            _ => 0,
        }
    }
}

/// The org the `check-budgets` scenario's checks name.
pub const BUDGET_ORG: &str = "bench-org";

/// The routes, under the service's prefix.
pub const PREFIX: &str = "/api/subscription";

pub fn check_body(user: &str, reserve: bool) -> Value {
    let mut body = json!({
        "user_id": user,
        "provider": "gemini",
        "model": "gemini-2.5-flash",
        "estimated_input_tokens": 100,
        "estimated_output_tokens": 100,
    });
    if reserve {
        body["reserve"] = Value::Bool(true);
    }
    body
}

pub fn event(event_id: &str, user: &str, seq: u64) -> Value {
    json!({
        "event_id": event_id,
        "user_id": user,
        "provider": "gemini",
        "model": "gemini-2.5-flash",
        "input_tokens": 100 + (seq % 900),
        "output_tokens": 50 + (seq % 200),
        "latency_ms": 100 + (seq % 400),
        "status_code": 200,
    })
}

/// One event, or a batch of `n` events of one user, with ids unique to this run.
pub fn usage_body(run: &str, worker: usize, seq: u64, user: &str, n: usize) -> Value {
    if n <= 1 {
        return event(&format!("{run}-{worker}-{seq}"), user, seq);
    }
    let events: Vec<Value> = (0..n)
        .map(|i| event(&format!("{run}-{worker}-{seq}-{i}"), user, seq + i as u64))
        .collect();
    json!({ "events": events })
}

/// What the mixed scenario does in iteration `seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MixedStep {
    Check,
    /// Reserve, then 0: release, 1: settle with an event, 2: leave to expire (2 s TTL).
    Reserve(u8),
    Ingest,
    /// Re-send an event that was acknowledged before.
    Duplicate,
    Dashboard,
}

pub fn mixed_step(seq: u64) -> MixedStep {
    match seq % 10 {
        0..=2 => MixedStep::Check,
        3 | 4 => MixedStep::Reserve(((seq / 10) % 3) as u8),
        5..=7 => MixedStep::Ingest,
        8 if (seq / 10) % 5 < 2 => MixedStep::Duplicate,
        8 => MixedStep::Ingest,
        _ => MixedStep::Dashboard,
    }
}

/// The status (`recorded`, `duplicate`, …) of the first event of a usage answer.
pub fn event_status(answer: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(answer).ok()?;
    v.get("data")?
        .get("events")?
        .get(0)?
        .get("status")?
        .as_str()
        .map(str::to_owned)
}

/// The reservation id of a successful reserve answer.
pub fn reservation_id(answer: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(answer).ok()?;
    v.get("data")?
        .get("reservation_id")?
        .as_str()
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_events_have_distinct_ids_and_one_user() {
        let body = usage_body("r", 3, 7, "u-1", 100);
        let events = body["events"].as_array().unwrap();
        assert_eq!(events.len(), 100);
        let ids: std::collections::BTreeSet<&str> = events
            .iter()
            .map(|e| e["event_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids.len(), 100);
        assert!(events.iter().all(|e| e["user_id"] == "u-1"));
    }

    #[test]
    fn single_event_is_a_bare_object() {
        let body = usage_body("r", 0, 1, "u-1", 1);
        assert_eq!(body["event_id"], "r-0-1");
        assert!(body.get("events").is_none());
    }

    #[test]
    fn mixed_steps_have_the_documented_shares() {
        let mut n = std::collections::BTreeMap::new();
        for seq in 0..1200 {
            let key = match mixed_step(seq) {
                MixedStep::Reserve(_) => "reserve",
                MixedStep::Check => "check",
                MixedStep::Ingest => "ingest",
                MixedStep::Duplicate => "duplicate",
                MixedStep::Dashboard => "dashboard",
            };
            *n.entry(key).or_insert(0) += 1;
        }
        assert_eq!(n["check"], 360);
        assert_eq!(n["reserve"], 240);
        assert_eq!(n["ingest"] + n["duplicate"], 480);
        // 10 % of the ingest requests re-send an acknowledged event.
        assert_eq!(n["duplicate"], 48);
        assert_eq!(n["dashboard"], 120);
    }

    #[test]
    fn reservation_id_is_read_from_the_data_envelope() {
        let answer = br#"{"success":true,"data":{"allowed":true,"reservation_id":"rsv-1"}}"#;
        assert_eq!(reservation_id(answer).as_deref(), Some("rsv-1"));
        assert_eq!(reservation_id(br#"{"success":false}"#), None);
    }
}
