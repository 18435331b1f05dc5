//! `Meter`: configuration, transport with retries, the routes, and the queue of undelivered
//! usage.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use rand::Rng;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, RETRY_AFTER, USER_AGENT};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::error::{ApiError, Error, LimitExceeded, MeterUnavailable};
use crate::types::{
    Alerts, AlertsQuery, Billing, CheckRequest, CheckResult, Dashboard, MarkRead, Plan, Pricing,
    Quote, QuoteRequest, RecordResult, Release, SubscriptionView, Trends, UsageEvent, UsageView,
};

const API_PREFIX: [&str; 2] = ["api", "subscription"];
const MAX_BATCH: usize = 100;
const BACKOFF_BASE: Duration = Duration::from_millis(100);
const BACKOFF_CAP: Duration = Duration::from_secs(2);

/// What to do when meter cannot answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnUnavailable {
    /// `check` fails with [`Error::Unavailable`]: no paid call without meter's answer.
    #[default]
    Deny,
    /// `check` answers allowed (marked `unavailable`) and usage waits in a bounded queue,
    /// retried in the background and by [`Meter::flush`] / [`Meter::close`].
    Allow,
}

/// Builds a [`Meter`]; every setting is checked by [`MeterBuilder::build`].
#[derive(Debug, Clone)]
pub struct MeterBuilder {
    base_url: String,
    api_key: String,
    timeout: Duration,
    on_unavailable: OnUnavailable,
    max_retries: u32,
    queue_size: usize,
    retry_interval: Duration,
}

impl MeterBuilder {
    /// Per attempt. Default 2 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
    pub fn on_unavailable(mut self, on_unavailable: OnUnavailable) -> Self {
        self.on_unavailable = on_unavailable;
        self
    }
    /// Retries of `record`, `release` and the reads on transport errors and 5xx. Default 3.
    pub fn max_retries(mut self, max_retries: u32) -> Self {
        self.max_retries = max_retries;
        self
    }
    /// The most usage events kept while meter is unavailable (the oldest are dropped past
    /// it). Default 1000.
    pub fn queue_size(mut self, queue_size: usize) -> Self {
        self.queue_size = queue_size;
        self
    }
    /// Between background retries of the queue. Default 5 s.
    pub fn retry_interval(mut self, retry_interval: Duration) -> Self {
        self.retry_interval = retry_interval;
        self
    }

    pub fn build(self) -> Result<Meter, Error> {
        let base = parse_base_url(&self.base_url)?;
        let key = self.api_key.trim();
        if key.is_empty() {
            return Err(Error::invalid("api_key must not be empty"));
        }
        if self.timeout.is_zero() {
            return Err(Error::invalid("timeout must be positive"));
        }
        if self.retry_interval.is_zero() {
            return Err(Error::invalid("retry_interval must be positive"));
        }
        if self.max_retries > 10 {
            return Err(Error::invalid("max_retries must be at most 10"));
        }
        if self.queue_size == 0 {
            return Err(Error::invalid("queue_size must be positive"));
        }
        let mut auth = HeaderValue::from_str(&format!("Bearer {key}"))
            .map_err(|_| Error::invalid("api_key holds characters a header cannot carry"))?;
        auth.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, auth);
        headers.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("meter-client-rust/", env!("CARGO_PKG_VERSION"))),
        );
        let http = reqwest::Client::builder()
            .timeout(self.timeout)
            .default_headers(headers)
            .build()
            .map_err(|e| Error::invalid(format!("the HTTP client cannot be built: {e}")))?;
        Ok(Meter {
            inner: Arc::new(Inner {
                http,
                base,
                timeout: self.timeout,
                on_unavailable: self.on_unavailable,
                max_retries: self.max_retries,
                queue_size: self.queue_size,
                retry_interval: self.retry_interval,
                queue: Mutex::new(Queue::default()),
                flush_lock: tokio::sync::Mutex::new(()),
            }),
        })
    }
}

fn parse_base_url(raw: &str) -> Result<Url, Error> {
    let bad = |why: &str| Error::invalid(format!("base_url {raw:?} {why}"));
    let mut url = Url::parse(raw.trim()).map_err(|_| bad("is not a URL"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().unwrap_or("").is_empty() {
        return Err(bad("must be an http(s) URL with a host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("must not have a query or fragment"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must not carry credentials"));
    }
    let mut path = url.path().trim_end_matches('/').to_owned();
    if let Some(p) = path.strip_suffix("/api/subscription") {
        path = p.to_owned();
    }
    url.set_path(&path);
    Ok(url)
}

#[derive(Default)]
struct Queue {
    events: VecDeque<Value>,
    inflight: usize,
    dropped: u64,
    retrier: bool,
    closed: bool,
}

struct Inner {
    http: reqwest::Client,
    base: Url,
    timeout: Duration,
    on_unavailable: OnUnavailable,
    max_retries: u32,
    queue_size: usize,
    retry_interval: Duration,
    queue: Mutex<Queue>,
    flush_lock: tokio::sync::Mutex<()>,
}

/// A client of meter's HTTP API for app backends. Cheap to clone (one connection pool).
///
/// ```no_run
/// # async fn demo() -> Result<(), meter_client::Error> {
/// use meter_client::{CheckRequest, Meter};
/// let meter = Meter::new("http://127.0.0.1:8080", "mk_…")?;
/// let ok = meter.check(CheckRequest::new("alice", "gemini-2.5-flash").estimate(500, 200)).await?;
/// println!("{:?}", ok.remaining);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Meter {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Meter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("Meter")
            .field("base_url", &self.inner.base.as_str())
            .field("on_unavailable", &self.inner.on_unavailable)
            .finish()
    }
}

/// What a request does on failure.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Retry {
    No,
    Yes,
}

impl Meter {
    /// A client with the defaults: 2 s timeout, [`OnUnavailable::Deny`].
    pub fn new(base_url: &str, api_key: &str) -> Result<Meter, Error> {
        Self::builder(base_url, api_key).build()
    }

    pub fn builder(base_url: &str, api_key: &str) -> MeterBuilder {
        MeterBuilder {
            base_url: base_url.to_owned(),
            api_key: api_key.to_owned(),
            timeout: Duration::from_secs(2),
            on_unavailable: OnUnavailable::Deny,
            max_retries: 3,
            queue_size: 1000,
            retry_interval: Duration::from_secs(5),
        }
    }

    pub fn on_unavailable(&self) -> OnUnavailable {
        self.inner.on_unavailable
    }

    // --- transport ------------------------------------------------------------------------

    fn url(&self, segments: &[&str], query: &[(&str, String)]) -> Url {
        let mut url = self.inner.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            // Each segment is percent-encoded (ids may hold `/`, `+`, `@`, `:`, `=`).
            path.pop_if_empty().extend(API_PREFIX).extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        url
    }

    async fn request<T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
        retry: Retry,
    ) -> Result<T, Error> {
        let data = self.request_value(method, url, body, retry).await?;
        serde_json::from_value(data).map_err(|e| Error::InvalidResponse(e.to_string()))
    }

    async fn request_value(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
        retry: Retry,
    ) -> Result<Value, Error> {
        let attempts = 1 + if retry == Retry::Yes {
            self.inner.max_retries
        } else {
            0
        };
        let mut failure = MeterUnavailable::new("meter was not asked");
        for attempt in 0..attempts {
            let mut retry_after = None;
            let mut req = self.inner.http.request(method.clone(), url.clone());
            if let Some(b) = body {
                req = req.json(b);
            }
            match req.send().await {
                Ok(resp) => {
                    retry_after = resp
                        .headers()
                        .get(RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok());
                    let status = resp.status();
                    match resp.bytes().await {
                        Ok(bytes) => match answer(status, &bytes, retry_after) {
                            Err(Error::Unavailable(e)) => failure = e,
                            other => return other,
                        },
                        Err(e) => failure = MeterUnavailable::new(transport(&e)),
                    }
                }
                Err(e) => failure = MeterUnavailable::new(transport(&e)),
            }
            if attempt + 1 < attempts {
                tokio::time::sleep(backoff(attempt, retry_after)).await;
            }
        }
        Err(Error::Unavailable(failure))
    }

    // --- hot path -------------------------------------------------------------------------

    /// May the user make this call now? A denial is [`Error::LimitExceeded`].
    pub async fn check(&self, req: CheckRequest) -> Result<CheckResult, Error> {
        validate_check(&req)?;
        self.check_value(&req).await
    }

    pub(crate) async fn check_value(&self, req: &CheckRequest) -> Result<CheckResult, Error> {
        let body = serde_json::to_value(req).map_err(|e| Error::invalid(e.to_string()))?;
        match self
            .request(
                Method::POST,
                self.url(&["check"], &[]),
                Some(&body),
                Retry::No,
            )
            .await
        {
            Err(Error::Unavailable(_)) if self.inner.on_unavailable == OnUnavailable::Allow => {
                tracing::warn!(user = %req.user_id, "meter unavailable: check allowed (on_unavailable=allow)");
                Ok(CheckResult {
                    allowed: true,
                    user_id: req.user_id.clone(),
                    provider: req.provider.clone(),
                    unavailable: true,
                    ..CheckResult::default()
                })
            }
            other => other,
        }
    }

    /// Records usage events (an empty `event_id` gets a fresh UUIDv7). Retried on transport
    /// errors and 5xx with backoff, under the same event ids. When meter stays unavailable:
    /// `Deny` fails with [`Error::Unavailable`] (its `events` are the undelivered ones),
    /// `Allow` queues them.
    pub async fn record(&self, mut events: Vec<UsageEvent>) -> Result<RecordResult, Error> {
        if events.is_empty() {
            return Err(Error::invalid("record needs at least one event"));
        }
        let mut bodies = Vec::with_capacity(events.len());
        for e in &mut events {
            if e.user_id.is_empty() {
                return Err(Error::invalid("every event needs a user_id"));
            }
            if e.event_id.is_empty() {
                e.event_id = uuid::Uuid::now_v7().to_string();
            }
            if e.team_id.is_some() && e.org_id.is_none() {
                return Err(Error::invalid("team_id needs org_id"));
            }
            bodies.push(serde_json::to_value(e).map_err(|e| Error::invalid(e.to_string()))?);
        }
        let mut out = RecordResult::default();
        for start in (0..bodies.len()).step_by(MAX_BATCH) {
            let end = (start + MAX_BATCH).min(bodies.len());
            match self.post_usage(&bodies[start..end]).await {
                Ok(r) => {
                    out.recorded += r.recorded;
                    out.events.extend(r.events);
                }
                Err(Error::Unavailable(mut e)) => {
                    let rest = bodies.split_off(start);
                    if self.inner.on_unavailable == OnUnavailable::Deny {
                        e.events = rest;
                        return Err(Error::Unavailable(e));
                    }
                    out.queued = rest.len();
                    self.enqueue(rest);
                    return Ok(out);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    async fn post_usage(&self, batch: &[Value]) -> Result<RecordResult, Error> {
        let body = json!({ "events": batch });
        self.request(
            Method::POST,
            self.url(&["usage"], &[]),
            Some(&body),
            Retry::Yes,
        )
        .await
    }

    /// One event of a call that already happened: delivered, or queued whatever
    /// `on_unavailable` says.
    pub(crate) async fn record_or_queue(&self, event: Value) -> Result<RecordResult, Error> {
        match self.post_usage(std::slice::from_ref(&event)).await {
            Err(Error::Unavailable(_)) => {
                self.enqueue(vec![event]);
                Ok(RecordResult {
                    queued: 1,
                    ..RecordResult::default()
                })
            }
            other => other,
        }
    }

    /// Frees a hold (idempotent): answers the reservation's final status.
    pub async fn release(&self, reservation_id: &str) -> Result<Release, Error> {
        let id = non_empty(reservation_id, "reservation_id")?;
        let url = self.url(&["reservations", id, "release"], &[]);
        self.request(Method::POST, url, None, Retry::Yes).await
    }

    /// The cost of a hypothetical event; nothing is recorded.
    pub async fn quote(&self, req: QuoteRequest) -> Result<Quote, Error> {
        if req.team_id.is_some() && req.org_id.is_none() {
            return Err(Error::invalid("team_id needs org_id"));
        }
        let body = serde_json::to_value(&req).map_err(|e| Error::invalid(e.to_string()))?;
        let url = self.url(&["pricing", "quote"], &[]);
        self.request(Method::POST, url, Some(&body), Retry::Yes)
            .await
    }

    // --- reads ----------------------------------------------------------------------------

    pub async fn plans(&self) -> Result<Vec<Plan>, Error> {
        #[derive(serde::Deserialize)]
        struct Plans {
            plans: Vec<Plan>,
        }
        let p: Plans = self.get(&["plans"], &[]).await?;
        Ok(p.plans)
    }

    pub async fn pricing(&self, provider: Option<&str>) -> Result<Pricing, Error> {
        let q: Vec<_> = provider
            .map(|p| ("provider", p.to_owned()))
            .into_iter()
            .collect();
        self.get(&["pricing"], &q).await
    }

    /// `billing_period`: `YYYY-MM` or `YYYY-MM-DD`; default the current period.
    pub async fn usage(
        &self,
        user_id: &str,
        billing_period: Option<&str>,
    ) -> Result<UsageView, Error> {
        let id = non_empty(user_id, "user_id")?;
        let q: Vec<_> = billing_period
            .map(|p| ("billing_period", p.to_owned()))
            .into_iter()
            .collect();
        self.get(&["usage", id], &q).await
    }

    /// `months`: 1–24, default 6.
    pub async fn trends(&self, user_id: &str, months: Option<u32>) -> Result<Trends, Error> {
        let id = non_empty(user_id, "user_id")?;
        let q: Vec<_> = months
            .map(|m| ("months", m.to_string()))
            .into_iter()
            .collect();
        self.get(&["usage", id, "trends"], &q).await
    }

    pub async fn dashboard(&self, user_id: &str) -> Result<Dashboard, Error> {
        let id = non_empty(user_id, "user_id")?;
        self.get(&["dashboard", id], &[]).await
    }

    pub async fn alerts(&self, user_id: &str, query: AlertsQuery) -> Result<Alerts, Error> {
        let id = non_empty(user_id, "user_id")?;
        let mut q = Vec::new();
        if query.unread_only {
            q.push(("unread_only", "true".to_owned()));
        }
        if let Some(l) = query.limit {
            q.push(("limit", l.to_string()));
        }
        self.get(&["alerts", id], &q).await
    }

    pub async fn mark_alert_read(&self, alert_id: &str) -> Result<MarkRead, Error> {
        let id = non_empty(alert_id, "alert_id")?;
        let url = self.url(&["alerts", id, "mark-read"], &[]);
        self.request(Method::POST, url, None, Retry::Yes).await
    }

    pub async fn billing(&self, user_id: &str) -> Result<Billing, Error> {
        let id = non_empty(user_id, "user_id")?;
        self.get(&["billing", id], &[]).await
    }

    pub async fn subscription(&self, user_id: &str) -> Result<SubscriptionView, Error> {
        let id = non_empty(user_id, "user_id")?;
        self.get(&["user", id, "subscription"], &[]).await
    }

    async fn get<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> Result<T, Error> {
        self.request(Method::GET, self.url(segments, query), None, Retry::Yes)
            .await
    }

    // --- queue ----------------------------------------------------------------------------

    /// Usage events not yet delivered: queued, or being sent by a flush.
    pub fn pending(&self) -> usize {
        let q = self.lock();
        q.events.len() + q.inflight
    }

    /// Events dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.inner.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, q: &mut Queue, events: Vec<Value>, front: bool) {
        if front {
            for e in events.into_iter().rev() {
                q.events.push_front(e);
            }
        } else {
            q.events.extend(events);
        }
        while q.events.len() > self.inner.queue_size {
            if let Some(lost) = q.events.pop_front() {
                q.dropped += 1;
                tracing::warn!(event_id = %lost["event_id"], size = self.inner.queue_size, "meter usage queue is full: dropped an event");
            }
        }
    }

    fn enqueue(&self, events: Vec<Value>) {
        let start = {
            let mut q = self.lock();
            self.push(&mut q, events, false);
            let start = !q.retrier && !q.closed;
            q.retrier |= start;
            start
        };
        if start {
            let weak = Arc::downgrade(&self.inner);
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => {
                    rt.spawn(retry_loop(weak, self.inner.retry_interval));
                }
                Err(_) => self.lock().retrier = false,
            }
        }
    }

    /// Sends the queued usage now; answers how many events meter answered. Events stay
    /// queued while meter is unavailable; events meter rejects as invalid are dropped
    /// (logged). Another API error (a revoked key) is returned, the events kept.
    pub async fn flush(&self) -> Result<usize, Error> {
        let _serial = self.inner.flush_lock.lock().await;
        let mut delivered = 0;
        loop {
            let batch: Vec<Value> = {
                let mut q = self.lock();
                let n = q.events.len().min(MAX_BATCH);
                q.inflight += n;
                q.events.drain(..n).collect()
            };
            if batch.is_empty() {
                return Ok(delivered);
            }
            // Settles the batch even if this future is dropped mid-send.
            let mut settle = Settle {
                meter: self,
                taken: batch.len(),
                remaining: batch,
            };
            match self.post_usage(&settle.remaining).await {
                Ok(_) => {
                    delivered += settle.remaining.len();
                    settle.remaining.clear();
                }
                Err(Error::Unavailable(_)) => return Ok(delivered),
                Err(e @ Error::Api(_)) if rejected(&e) => {
                    while !settle.remaining.is_empty() {
                        match self.post_usage(&settle.remaining[..1]).await {
                            Ok(_) => delivered += 1,
                            Err(Error::Unavailable(_)) => return Ok(delivered),
                            Err(e) if rejected(&e) => {
                                tracing::warn!(event_id = %settle.remaining[0]["event_id"], code = e.code().unwrap_or(""), "meter rejected a queued event; dropped");
                            }
                            Err(e) => return Err(e),
                        }
                        settle.remaining.remove(0);
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Stops the background retry and sends what is queued (once).
    pub async fn close(&self) -> Result<(), Error> {
        self.lock().closed = true;
        self.flush().await?;
        let left = self.pending();
        if left > 0 {
            tracing::warn!(
                left,
                "meter: usage events could not be delivered before close"
            );
        }
        Ok(())
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.inner.timeout
    }
}

/// Puts back what a flush did not deliver, and ends its in-flight count, however the flush
/// ends (returned, failed or dropped).
struct Settle<'a> {
    meter: &'a Meter,
    taken: usize,
    remaining: Vec<Value>,
}

impl Drop for Settle<'_> {
    fn drop(&mut self) {
        let mut q = self.meter.lock();
        q.inflight -= self.taken;
        let rest = std::mem::take(&mut self.remaining);
        if !rest.is_empty() {
            self.meter.push(&mut q, rest, true);
        }
    }
}

async fn retry_loop(inner: Weak<Inner>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let Some(inner) = inner.upgrade() else { return };
        let meter = Meter { inner };
        if let Err(e) = meter.flush().await {
            tracing::warn!(error = %e, "meter usage retry failed");
        }
        let mut q = meter.lock();
        if q.closed || (q.events.is_empty() && q.inflight == 0) {
            q.retrier = false;
            return;
        }
    }
}

fn rejected(e: &Error) -> bool {
    matches!(e, Error::Api(a) if matches!(a.status, 400 | 413 | 422))
}

pub(crate) fn validate_check(req: &CheckRequest) -> Result<(), Error> {
    non_empty(&req.user_id, "user_id")?;
    if req.team_id.is_some() && req.org_id.is_none() {
        return Err(Error::invalid("team_id needs org_id"));
    }
    Ok(())
}

fn non_empty<'a>(value: &'a str, what: &str) -> Result<&'a str, Error> {
    if value.is_empty() {
        Err(Error::invalid(format!("{what} must not be empty")))
    } else {
        Ok(value)
    }
}

fn transport(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "meter did not answer in time".into()
    } else if e.is_connect() {
        "meter could not be reached".into()
    } else {
        "the connection to meter failed".into()
    }
}

fn backoff(attempt: u32, retry_after: Option<u64>) -> Duration {
    let base = BACKOFF_BASE
        .saturating_mul(1 << attempt.min(10))
        .min(BACKOFF_CAP);
    let jittered = base.mul_f64(rand::rng().random_range(0.5..=1.0));
    match retry_after {
        Some(s) => jittered.max(Duration::from_secs(s).min(BACKOFF_CAP)),
        None => jittered,
    }
}

/// The `data` of a success envelope, or the error it carries (5xx: unavailable).
fn answer(status: StatusCode, bytes: &[u8], retry_after: Option<u64>) -> Result<Value, Error> {
    let body: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
    if status.is_success() && body["success"] == json!(true) {
        return Ok(body.get("data").cloned().unwrap_or(Value::Null));
    }
    let err = body.get("error").filter(|e| e.is_object());
    if status.is_server_error() || status.is_success() {
        let code = err.and_then(|e| e["code"].as_str()).unwrap_or("");
        return Err(Error::Unavailable(MeterUnavailable::new(format!(
            "meter answered {}{}{code}",
            status.as_u16(),
            if code.is_empty() { "" } else { " " }
        ))));
    }
    let Some(err) = err else {
        return Err(Error::Api(ApiError {
            status: status.as_u16(),
            code: "http_error".into(),
            message: format!(
                "meter answered {} without an error envelope",
                status.as_u16()
            ),
            details: Value::Null,
        }));
    };
    let api = ApiError {
        status: status.as_u16(),
        code: err["code"].as_str().unwrap_or("").to_owned(),
        message: err["message"].as_str().unwrap_or("").to_owned(),
        details: err.get("details").cloned().unwrap_or_else(|| json!({})),
    };
    if status == StatusCode::TOO_MANY_REQUESTS && api.code == "usage_limit_exceeded" {
        return Err(Error::LimitExceeded(Box::new(LimitExceeded::from_api(
            api,
            retry_after,
        ))));
    }
    Err(Error::Api(api))
}
