//! The guard around one paid call: reserve → the call → record its usage, or release.

use std::future::Future;
use std::time::Instant;

use serde::Serialize;
use serde_json::Value;

use crate::client::{validate_check, Meter};
use crate::error::{Error, GuardError};
use crate::types::{CheckRequest, CheckResult, RecordResult, Units, Usage, UsageEvent};
use crate::usage::read_usage;

/// What a guard checks and records.
#[derive(Debug, Clone, Default)]
pub struct GuardOptions {
    pub user_id: String,
    pub model: Option<String>,
    pub provider: Option<String>,
    pub estimated_input_tokens: Option<u64>,
    pub estimated_output_tokens: Option<u64>,
    /// Units checked and recorded with the call (a search, a page, …).
    pub units: Units,
    pub reservation_ttl_seconds: Option<u32>,
    /// Needs a server with organisation support.
    pub org_id: Option<String>,
    /// Needs a server with organisation support.
    pub team_id: Option<String>,
    pub metadata: Option<Value>,
    pub endpoint: Option<String>,
}

impl GuardOptions {
    /// A guard for a call of `user_id` to `model` (the provider is found from the model).
    pub fn new(user_id: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            user_id: user_id.into(),
            model: Some(model.into()),
            ..Self::default()
        }
    }
    /// A guard for a provider without models (web search, scraping, …).
    pub fn for_provider(user_id: impl Into<String>, provider: impl Into<String>) -> Self {
        Self {
            user_id: user_id.into(),
            provider: Some(provider.into()),
            ..Self::default()
        }
    }
    pub fn provider(mut self, provider: impl Into<String>) -> Self {
        self.provider = Some(provider.into());
        self
    }
    /// Estimated input and output tokens: priced and held by the reservation.
    pub fn estimate(mut self, input_tokens: u64, output_tokens: u64) -> Self {
        self.estimated_input_tokens = Some(input_tokens);
        self.estimated_output_tokens = Some(output_tokens);
        self
    }
    pub fn units(mut self, units: Units) -> Self {
        self.units = units;
        self
    }
    /// Needs a server with organisation support.
    pub fn org(mut self, org_id: impl Into<String>, team_id: Option<String>) -> Self {
        self.org_id = Some(org_id.into());
        self.team_id = team_id;
        self
    }
    pub fn metadata(mut self, metadata: Value) -> Self {
        self.metadata = Some(metadata);
        self
    }
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    fn check_request(&self) -> Result<CheckRequest, Error> {
        if self.user_id.is_empty() {
            return Err(Error::invalid("a guard needs a user_id"));
        }
        if self.model.is_none() && self.provider.is_none() {
            return Err(Error::invalid("a guard needs a model or a provider"));
        }
        let req = CheckRequest {
            user_id: self.user_id.clone(),
            provider: self.provider.clone(),
            model: self.model.clone(),
            estimated_input_tokens: self.estimated_input_tokens,
            estimated_output_tokens: self.estimated_output_tokens,
            units: self.units,
            reserve: true,
            reservation_ttl_seconds: self.reservation_ttl_seconds,
            org_id: self.org_id.clone(),
            team_id: self.team_id.clone(),
        };
        validate_check(&req)?;
        Ok(req)
    }
}

/// A guarded call's response, with what meter said and recorded.
#[derive(Debug)]
#[non_exhaustive]
pub struct Guarded<T> {
    pub response: T,
    /// The check's answer (`unavailable` when `Allow` let the call go without meter).
    pub check: CheckResult,
    /// The recorded event's id (a UUIDv7).
    pub event_id: String,
    /// The token counts recorded (`None` for a call recorded by its units only).
    pub usage: Option<Usage>,
    /// meter's answer, or `queued: 1` when the event waits for meter to come back.
    pub record: RecordResult,
}

impl Meter {
    /// Reserve → `call` → record its usage, or release on an error.
    ///
    /// Checks with `reserve: true` (a denial is [`Error::LimitExceeded`]; an unavailable
    /// meter is [`Error::Unavailable`] with `Deny`), awaits `call`, reads the usage object of
    /// its response (serialised to JSON: OpenAI, Anthropic, Gemini shapes) and records it
    /// under a fresh UUIDv7 `event_id` with the reservation; retried with the same id, and
    /// queued if meter stays unavailable (the call already happened, so its usage is kept
    /// whatever `on_unavailable` says). If `call` fails, the reservation is released and the
    /// error returned as [`GuardError::Call`].
    ///
    /// ```no_run
    /// # async fn demo(meter: meter_client::Meter) -> Result<(), Box<dyn std::error::Error>> {
    /// use meter_client::GuardOptions;
    /// let out = meter
    ///     .guard(GuardOptions::new("alice", "gemini-2.5-flash").estimate(2000, 500), || async {
    ///         // the provider call; any `Serialize` response with a usage object
    ///         Ok::<_, std::io::Error>(serde_json::json!({"usageMetadata": {"promptTokenCount": 1800, "candidatesTokenCount": 420}}))
    ///     })
    ///     .await?;
    /// println!("{:?}", out.record.events);
    /// # Ok(()) }
    /// ```
    pub async fn guard<F, Fut, T, E>(
        &self,
        options: GuardOptions,
        call: F,
    ) -> Result<Guarded<T>, GuardError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        T: Serialize,
    {
        self.guarded(options, call, |resp| {
            let json = serde_json::to_value(resp)
                .map_err(|e| Error::Usage(format!("the response cannot be read as JSON: {e}")))?;
            read_usage(&json)
        })
        .await
    }

    /// [`Meter::guard`] for calls whose response carries no usage object (a stream, …): the
    /// call answers its response and its token counts.
    pub async fn guard_with_usage<F, Fut, T, E>(
        &self,
        options: GuardOptions,
        call: F,
    ) -> Result<Guarded<T>, GuardError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(T, Usage), E>>,
    {
        let out = self
            .guarded(options, call, |(_, usage)| Ok(Some(*usage)))
            .await?;
        Ok(Guarded {
            response: out.response.0,
            check: out.check,
            event_id: out.event_id,
            usage: out.usage,
            record: out.record,
        })
    }

    async fn guarded<F, Fut, T, E, X>(
        &self,
        options: GuardOptions,
        call: F,
        extract: X,
    ) -> Result<Guarded<T>, GuardError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        X: FnOnce(&T) -> Result<Option<Usage>, Error>,
    {
        let req = options.check_request()?;
        let check = self.check_value(&req).await?;
        let reservation = check.reservation_id.clone();
        let started = Instant::now();
        let response = match call().await {
            Ok(r) => r,
            Err(e) => {
                self.release_quietly(reservation.as_deref()).await;
                return Err(GuardError::Call(e));
            }
        };
        let latency = started.elapsed();
        let usage = match extract(&response) {
            Ok(None) if options.units.is_empty() => Err(Error::Usage(
                "the response carries no usage object this client reads (OpenAI, Anthropic, Gemini); use guard_with_usage".into(),
            )),
            other => other,
        };
        let usage = match usage {
            Ok(u) => u,
            Err(e) => {
                self.release_quietly(reservation.as_deref()).await;
                return Err(GuardError::Meter(e));
            }
        };
        let mut event = UsageEvent::new(options.user_id);
        event.model = options.model;
        event.provider = options.provider;
        event.timestamp = Some(chrono::Utc::now());
        event.units = options.units;
        event.reservation_id = reservation.clone();
        event.latency_ms = Some(u64::try_from(latency.as_millis()).unwrap_or(u64::MAX));
        event.metadata = options.metadata;
        event.endpoint = options.endpoint;
        event.org_id = options.org_id;
        event.team_id = options.team_id;
        if let Some(u) = usage {
            event = event.tokens(u);
        }
        let event_id = event.event_id.clone();
        let body = serde_json::to_value(&event).map_err(|e| Error::invalid(e.to_string()))?;
        match self.record_or_queue(body).await {
            Ok(record) => Ok(Guarded {
                response,
                check,
                event_id,
                usage,
                record,
            }),
            Err(e) => {
                self.release_quietly(reservation.as_deref()).await;
                Err(GuardError::Meter(e))
            }
        }
    }

    async fn release_quietly(&self, reservation_id: Option<&str>) {
        if let Some(id) = reservation_id {
            if let Err(e) = self.release(id).await {
                // The hold expires with its TTL.
                tracing::warn!(error = %e, timeout = ?self.timeout(), "meter: releasing a reservation failed");
            }
        }
    }
}
