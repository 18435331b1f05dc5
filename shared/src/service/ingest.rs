//! Usage ingest: price a batch, record each event once, then raise alerts.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{period_at, Caller, Error, EventErrors, FieldError, Meter, Result};
use crate::domain::{EventId, Metadata, ModelId, OrgId, ProviderId, TeamId, UsageEvent, UserId};
use crate::periods::Period;
use crate::pricing::PriceOutcome;
use crate::store::RecordOutcome;
use crate::usage::UsageCounts;

/// One usage event as reported, validated but not yet priced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub event_id: EventId,
    pub user: UserId,
    pub provider: Option<ProviderId>,
    pub model: Option<ModelId>,
    /// When the call happened; `None`: now (the time it is recorded).
    pub timestamp: Option<DateTime<Utc>>,
    pub counts: UsageCounts,
    /// Token counts were estimated from characters.
    pub estimated: bool,
    pub endpoint: Option<String>,
    pub status_code: Option<u16>,
    pub latency_ms: Option<u64>,
    pub reservation_id: Option<String>,
    pub metadata: Option<Metadata>,
    /// The org and team the call was made within (§10); a team only with its org.
    pub org_id: Option<OrgId>,
    pub team_id: Option<TeamId>,
}

/// What became of each event of a batch, in request order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IngestReport {
    /// How many events this request recorded (duplicates and conflicts excluded).
    pub recorded: usize,
    pub events: Vec<EventResult>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventStatus {
    Recorded,
    /// The same event was recorded before: no effect.
    Duplicate,
    /// Another event was recorded under this id: this one was not.
    Conflict,
}

/// One event's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum EventResult {
    Stored(StoredEvent),
    Conflict(ConflictedEvent),
}

/// A recorded (or already recorded) event as priced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredEvent {
    pub event_id: EventId,
    pub status: EventStatus,
    pub provider: ProviderId,
    #[serde(serialize_with = "crate::domain::money::normalized_option")]
    pub cost_usd: Option<Decimal>,
    pub priced: bool,
    pub estimated: bool,
    pub price_version: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConflictedEvent {
    pub event_id: EventId,
    pub status: EventStatus,
    pub message: &'static str,
}

impl EventResult {
    pub fn status(&self) -> EventStatus {
        match self {
            EventResult::Stored(e) => e.status,
            EventResult::Conflict(e) => e.status,
        }
    }

    /// Whether the event has a price (a conflict has none of its own).
    pub fn priced(&self) -> bool {
        matches!(self, EventResult::Stored(e) if e.priced)
    }
}

impl Meter {
    /// Records a validated batch. Every event is priced first; if any cannot be (unknown
    /// or ambiguous model, overflow), the whole batch is rejected and nothing is recorded.
    #[tracing::instrument(skip_all, fields(tenant = %caller.tenant, events = inputs.len()))]
    pub async fn ingest(&self, caller: &Caller, inputs: Vec<NewEvent>) -> Result<IngestReport> {
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
        // Users whose events may count in budgets: (subscription, own scope has budgets).
        let mut scoped = BTreeMap::new();
        // Issue 19: the subscriptions of the users whose events may draw from a wallet.
        let mut paying = BTreeMap::new();
        // Issue 18: the active plans of the orgs the batch names, read once.
        let mut org_plans = super::orgs::OrgPlans::new();
        // Issue 18: the budgets of the scopes the batch names, listed once for the counter
        // writes and the budget alerts.
        let mut listed = super::enforce::ListedBudgets::new();
        // Issue 18 (§12): a user's events naming an org, or a user known to have budgets,
        // read the check's view instead of the state alone (service::ingest_view); the
        // first such call, per user, is read again after the write for the alerts.
        let mut view_call = BTreeMap::new();
        for (user, indices) in &by_user {
            // Issue 18 (§12): one read before the write (service::ingest_view).
            let limits = self
                .read_before_write(
                    tenant,
                    user,
                    &inputs,
                    indices,
                    now,
                    &mut org_plans,
                    &mut listed,
                    &mut view_call,
                )
                .await?;
            let sub = limits.subscription;
            // Issue 19: prepaid plans draw from a wallet (service::org_wallets).
            if self.tenant_sells_prepaid(tenant).await? {
                paying.insert(user.clone(), sub.clone());
            }
            if limits.user_budgets || indices.iter().any(|&i| inputs[i].org_id.is_some()) {
                scoped.insert(user.clone(), (sub.clone(), limits.user_budgets));
            }
            for &i in indices {
                let input = &inputs[i];
                let at = input.timestamp.unwrap_or(now);
                match catalog.price(
                    input.provider.as_ref(),
                    input.model.as_ref(),
                    at,
                    &input.counts,
                ) {
                    Ok(outcome) => {
                        events[i] = Some(to_event(
                            tenant,
                            input,
                            &outcome,
                            period_at(sub.as_ref(), at)?,
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
        invalid.extend(duplicates_in_batch(&events));
        if !invalid.is_empty() {
            invalid.sort_by_key(|e| e.index);
            return Err(Error::InvalidEvents {
                invalid: invalid.len(),
                total: inputs.len(),
                events: invalid,
            });
        }

        // Phase 2: record, one user at a time (each event all-or-nothing in the store).
        let mut results: Vec<Option<EventResult>> = vec![None; inputs.len()];
        for (user, indices) in &by_user {
            let mut batch: Vec<UsageEvent> =
                indices.iter().filter_map(|&i| events[i].clone()).collect();
            // Issue 18: what each event adds to its budget counters (service::enforce).
            let writes = match scoped.get(user) {
                Some((sub, user_budgets)) => {
                    self.ingest_writes(
                        tenant,
                        &batch,
                        sub.as_ref(),
                        *user_budgets,
                        &mut org_plans,
                        &mut listed,
                    )
                    .await?
                }
                None => Vec::new(),
            };
            // The invoice that bills each event, kept with it (docs/billing.md, "One payer
            // per call").
            for (e, w) in batch.iter_mut().zip(&writes) {
                e.payer = super::enforce::payer_of(w);
            }
            // Issue 19: whose wallet each event draws from (service::org_wallets).
            let payers = match paying.get(user) {
                Some(sub) => {
                    self.event_payers(tenant, user, sub.as_ref(), &batch, &mut org_plans)
                        .await?
                }
                None => Vec::new(),
            };
            let drawn: std::collections::BTreeSet<crate::credits::Subscriber> =
                payers.iter().flatten().cloned().collect();
            // The user's state after the write, for the plan alerts of the period it was read
            // in: read with the write where the store can (issue 23: SQLite's writer reads it
            // in the write's transaction), or after it below.
            let mut state_after: Option<(DateTime<Utc>, crate::store::UserUsage)> = None;
            let outcomes = {
                let _gate = self.gate(tenant, user).await;
                if !drawn.is_empty() {
                    self.store
                        .record_events_paying(&batch, &writes, &payers)
                        .await?
                } else if writes.iter().any(|w| !w.is_empty()) {
                    self.store.record_events_counted(&batch, &writes).await?
                } else if let (Some(start), false) = (one_period(&batch), scoped.contains_key(user))
                {
                    let (outcomes, state) =
                        self.store.record_events_then_limits(&batch, start).await?;
                    match state {
                        Ok(state) => state_after = Some((start, state)),
                        // Read again below, like any other period.
                        Err(e) => {
                            tracing::warn!(error = %e, user = %user, "could not read the user's state with the write")
                        }
                    }
                    outcomes
                } else {
                    self.store.record_events(&batch).await?
                }
            };
            // Issue 18: the events budget alerts look at (recorded and duplicates).
            let not_conflicts: Vec<UsageEvent> = match scoped.contains_key(user) {
                true => batch
                    .iter()
                    .zip(&outcomes)
                    .filter(|(_, o)| **o != RecordOutcome::Conflict)
                    .map(|(e, _)| e.clone())
                    .collect(),
                false => Vec::new(),
            };
            // Starts of the periods that got new usage: their alerts are evaluated below.
            // A duplicate's period too: when the first attempt was recorded but its answer
            // was lost (a timeout after commit), the client's retry is the only request
            // left to raise the alerts that event called for (raising is once-only).
            let mut touched = std::collections::BTreeSet::new();
            for ((&i, event), outcome) in indices.iter().zip(&batch).zip(outcomes) {
                results[i] = Some(match outcome {
                    RecordOutcome::Recorded => {
                        touched.insert(event.period_start);
                        stored(event, EventStatus::Recorded)
                    }
                    RecordOutcome::Duplicate => {
                        match self.store.get_event(tenant, &event.event_id).await? {
                            Some(first) => {
                                touched.insert(first.period_start);
                                stored(&first, EventStatus::Duplicate)
                            }
                            None => stored(event, EventStatus::Duplicate),
                        }
                    }
                    RecordOutcome::Conflict => EventResult::Conflict(ConflictedEvent {
                        event_id: event.event_id.clone(),
                        status: EventStatus::Conflict,
                        message: "an event with this event_id and other content was already recorded; this one was not",
                    }),
                });
            }
            // Issue 18: budget alerts (service::budget_alerts), judged on the counters read
            // after the write with the user's state for the plan alerts, in one read
            // (service::ingest_view).
            if let Some((sub, user_budgets)) = scoped.get(user) {
                let call = match view_call.get(user) {
                    Some(call) => call.clone(),
                    None => crate::budgets::CallScopes::user_only(user.clone()),
                };
                state_after = self
                    .budget_alerts_after_write(
                        tenant,
                        &call,
                        sub.as_ref(),
                        *user_budgets,
                        &not_conflicts,
                        touched.last().copied(),
                        &mut org_plans,
                        &mut listed,
                    )
                    .await;
            }
            // Issue 18: a user without a subscription whose events all name an org with an
            // active subscription is not on the Free plan for them: no plan alerts.
            if self
                .org_stands_in_for_free(tenant, &scoped, user, &not_conflicts, &mut org_plans)
                .await
            {
                touched.clear();
            }
            // Issue 19: the alarms of the wallets the events drew from (service::prepaid).
            for wallet in &drawn {
                if let Err(e) = self.observe_wallet_of(tenant, wallet).await {
                    tracing::warn!(error = %e, wallet = %wallet, "could not observe the wallet after ingest");
                }
            }
            for period_start in touched {
                let raised = match &state_after {
                    Some((p, state)) if *p == period_start => {
                        self.raise_alerts_of(tenant, user, period_start, state)
                            .await
                    }
                    _ => self.raise_alerts(tenant, user, period_start).await,
                };
                if let Err(e) = raised {
                    // The events are recorded; a missed alert is raised by the user's next
                    // recorded event in that period (thresholds are levels, not edges).
                    tracing::warn!(error = %e, user = %user, "could not evaluate alerts after ingest");
                }
            }
        }
        let events: Vec<EventResult> = results.into_iter().flatten().collect();
        let recorded = events
            .iter()
            .filter(|r| r.status() == EventStatus::Recorded)
            .count();
        Ok(IngestReport { recorded, events })
    }
}

/// The period start all of `batch`'s events share, if they share one (a single event
/// always does).
fn one_period(batch: &[UsageEvent]) -> Option<DateTime<Utc>> {
    let first = batch.first()?.period_start;
    batch
        .iter()
        .all(|e| e.period_start == first)
        .then_some(first)
}

/// The same event id twice in one batch with different content is a client bug.
fn duplicates_in_batch(events: &[Option<UsageEvent>]) -> Vec<EventErrors> {
    let mut seen = std::collections::HashMap::new();
    let mut out = Vec::new();
    for (index, e) in events.iter().enumerate() {
        let Some(e) = e else { continue };
        if let Some(prev) = seen.insert(&e.event_id, &e.fingerprint) {
            if prev != &e.fingerprint {
                out.push(EventErrors {
                    index,
                    event_id: Some(e.event_id.to_string()),
                    errors: vec![FieldError::new(
                        "event_id",
                        "duplicate_in_batch",
                        "appears twice in this batch with different content",
                    )],
                });
            }
        }
    }
    out
}

/// What tells a retry of an event from another event under the same id: SHA-256 over the
/// event as normalised and stored (the provider resolved, the usage read into counts, the
/// timestamp as an instant), not over the request's text. Equal meaning is equal
/// fingerprint: `+00:00` or `Z`, counts or the provider's usage object, keys in any order.
/// A timestamp the client left out (the server's time) is not part of it.
fn fingerprint(e: &UsageEvent, timestamp_given: bool) -> String {
    #[derive(Serialize)]
    struct Meaning<'a> {
        user: &'a UserId,
        provider: &'a ProviderId,
        model: Option<&'a ModelId>,
        timestamp: Option<DateTime<Utc>>,
        counts: &'a UsageCounts,
        estimated: bool,
        endpoint: Option<&'a str>,
        status_code: Option<u16>,
        latency_ms: Option<u64>,
        reservation_id: Option<&'a str>,
        metadata: Option<&'a Metadata>,
        // Left out when absent, so that events without scopes keep their fingerprints.
        #[serde(skip_serializing_if = "Option::is_none")]
        org_id: Option<&'a OrgId>,
        #[serde(skip_serializing_if = "Option::is_none")]
        team_id: Option<&'a TeamId>,
    }
    let meaning = Meaning {
        user: &e.user,
        provider: &e.provider,
        model: e.model.as_ref(),
        timestamp: timestamp_given.then_some(e.timestamp),
        counts: &e.counts,
        estimated: e.estimated,
        endpoint: e.endpoint.as_deref(),
        status_code: e.status_code,
        latency_ms: e.latency_ms,
        reservation_id: e.reservation_id.as_deref(),
        metadata: e.metadata.as_ref(),
        org_id: e.org_id.as_ref(),
        team_id: e.team_id.as_ref(),
    };
    // Serialising plain data cannot fail; maps (metadata) serialise with sorted keys.
    let canonical = serde_json::to_vec(&meaning).unwrap_or_default();
    hex::encode(Sha256::digest(&canonical))
}

fn to_event(
    tenant: &crate::domain::TenantId,
    input: &NewEvent,
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
    let mut event = UsageEvent {
        tenant: tenant.clone(),
        user: input.user.clone(),
        event_id: input.event_id.clone(),
        fingerprint: String::new(),
        provider: outcome.provider().clone(),
        model: input.model.clone(),
        timestamp: input.timestamp.unwrap_or(now),
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
        org_id: input.org_id.clone(),
        team_id: input.team_id.clone(),
        payer: None,
    };
    event.fingerprint = fingerprint(&event, input.timestamp.is_some());
    event
}

fn stored(e: &UsageEvent, status: EventStatus) -> EventResult {
    EventResult::Stored(StoredEvent {
        event_id: e.event_id.clone(),
        status,
        provider: e.provider.clone(),
        cost_usd: e.cost_usd,
        priced: e.cost_usd.is_some(),
        estimated: e.estimated,
        price_version: e.price_version.clone(),
    })
}
