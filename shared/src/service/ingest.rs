//! POST /usage: validate, price, record once, then raise alerts.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::{period_at, Caller, Meter};
use crate::domain::{UsageEvent, UserId};
use crate::http::error::{EventErrors, FieldError};
use crate::http::wire::EventInput;
use crate::http::ApiError;
use crate::periods::Period;
use crate::pricing::PriceOutcome;
use crate::store::RecordOutcome;

impl Meter {
    /// Records a validated batch. Every event is priced first; if any cannot be (unknown
    /// or ambiguous model, overflow), the whole batch is rejected and nothing is recorded.
    #[tracing::instrument(skip_all, fields(tenant = %caller.tenant, events = inputs.len()))]
    pub async fn ingest(
        &self,
        caller: &Caller,
        inputs: Vec<EventInput>,
    ) -> Result<Value, ApiError> {
        let now = self.now();
        let tenant = &caller.tenant;
        let catalog = self.catalog(tenant).await?;

        // Group by user, keeping each event's position in the request.
        let mut by_user: BTreeMap<UserId, Vec<usize>> = BTreeMap::new();
        for (i, e) in inputs.iter().enumerate() {
            by_user.entry(e.user.clone()).or_default().push(i);
        }

        // Phase 1: price everything (reads only).
        let mut events: Vec<Option<UsageEvent>> = vec![None; inputs.len()];
        let mut invalid = Vec::new();
        for (user, indices) in &by_user {
            let sub = self.store.get_subscription(tenant, user).await?;
            for &i in indices {
                let input = &inputs[i];
                match catalog.price(
                    input.provider.as_ref(),
                    input.model.as_ref(),
                    input.timestamp,
                    &input.counts,
                ) {
                    Ok(outcome) => {
                        events[i] = Some(to_event(
                            tenant,
                            input,
                            &outcome,
                            period_at(sub.as_ref(), input.timestamp)?,
                            now,
                        ))
                    }
                    Err(e) => invalid.push(EventErrors {
                        index: i,
                        event_id: Some(input.event_id.to_string()),
                        errors: vec![FieldError::new("model", e.code(), e.to_string())],
                    }),
                }
            }
        }
        if !invalid.is_empty() {
            invalid.sort_by_key(|e| e.index);
            return Err(ApiError::InvalidEvents {
                invalid: invalid.len(),
                total: inputs.len(),
                events: invalid,
            });
        }

        // Phase 2: record, one user at a time (each event all-or-nothing in the store).
        let mut results: Vec<Value> = vec![Value::Null; inputs.len()];
        for (user, indices) in &by_user {
            let batch: Vec<UsageEvent> =
                indices.iter().filter_map(|&i| events[i].clone()).collect();
            let outcomes = {
                let _gate = self.gate(tenant, user).await;
                self.store.record_events(&batch).await?
            };
            // Starts of the periods that got new usage: their alerts are evaluated below.
            // A duplicate's period too: when the first attempt was recorded but its answer
            // was lost (a timeout after commit), the client's retry is the only request
            // left to raise the alerts that event called for (raising is once-only).
            let mut touched = std::collections::BTreeSet::new();
            for ((&i, event), outcome) in indices.iter().zip(&batch).zip(outcomes) {
                results[i] = match outcome {
                    RecordOutcome::Recorded => {
                        touched.insert(event.period_start);
                        event_json(event, "recorded")
                    }
                    RecordOutcome::Duplicate => {
                        match self.store.get_event(tenant, &event.event_id).await? {
                            Some(stored) => {
                                touched.insert(stored.period_start);
                                event_json(&stored, "duplicate")
                            }
                            None => event_json(event, "duplicate"),
                        }
                    }
                    RecordOutcome::Conflict => json!({
                        "event_id": event.event_id,
                        "status": "conflict",
                        "message": "an event with this event_id and other content was already recorded; this one was not",
                    }),
                };
            }
            for period_start in touched {
                if let Err(e) = self.raise_alerts(tenant, user, period_start).await {
                    // The events are recorded; a missed alert is raised by the user's next
                    // recorded event in that period (thresholds are levels, not edges).
                    tracing::warn!(error = %e, user = %user, "could not evaluate alerts after ingest");
                }
            }
        }
        let recorded = results.iter().filter(|r| r["status"] == "recorded").count();
        Ok(json!({ "recorded": recorded, "events": results }))
    }
}

fn to_event(
    tenant: &crate::domain::TenantId,
    input: &EventInput,
    outcome: &PriceOutcome,
    period: Period,
    now: chrono::DateTime<chrono::Utc>,
) -> UsageEvent {
    let (cost_usd, price_version) = match outcome {
        PriceOutcome::Priced {
            cost_usd,
            version_id,
            ..
        } => (Some(*cost_usd), Some(version_id.clone())),
        PriceOutcome::Unpriced { .. } => (None, None),
    };
    UsageEvent {
        tenant: tenant.clone(),
        user: input.user.clone(),
        event_id: input.event_id.clone(),
        fingerprint: input.fingerprint.clone(),
        provider: outcome.provider().clone(),
        model: input.model.clone(),
        timestamp: input.timestamp,
        period_start: period.start,
        counts: input.counts,
        cost_usd,
        price_version,
        estimated: input.estimated,
        endpoint: input.endpoint.clone(),
        status_code: input.status_code,
        latency_ms: input.latency_ms,
        reservation_id: input.reservation_id.clone(),
        metadata: input.metadata.clone(),
        recorded_at: now,
    }
}

fn event_json(e: &UsageEvent, status: &str) -> Value {
    json!({
        "event_id": e.event_id,
        "status": status,
        "provider": e.provider,
        "cost_usd": e.cost_usd.map(|c| c.normalize().to_string()),
        "priced": e.cost_usd.is_some(),
        "estimated": e.estimated,
        "price_version": e.price_version,
    })
}
