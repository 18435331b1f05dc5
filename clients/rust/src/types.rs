//! Typed results of meter's routes and the requests this client sends.
//!
//! Money is [`Decimal`] (the API sends exact decimal strings), timestamps are
//! `DateTime<Utc>`, counts `u64`, percentages `f64`. Results ignore fields they do not know,
//! so newer servers stay readable.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A metric amount: calls and tokens are counts, `cost_usd` is money.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Amount {
    Count(u64),
    Usd(Decimal),
}

impl Amount {
    /// The count, for a calls or tokens metric.
    pub fn count(self) -> Option<u64> {
        match self {
            Amount::Count(n) => Some(n),
            Amount::Usd(_) => None,
        }
    }
    /// The amount of money, for `cost_usd`.
    pub fn usd(self) -> Option<Decimal> {
        match self {
            Amount::Usd(d) => Some(d),
            Amount::Count(_) => None,
        }
    }
}

pub type MetricAmounts = BTreeMap<String, Amount>;
pub type MetricPercentages = BTreeMap<String, f64>;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Period {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    #[serde(default)]
    pub name: Option<String>,
}

/// The answer of `check`: the call is allowed (a denial is [`Error::LimitExceeded`](crate::Error)).
///
/// `unavailable` is true when meter could not be asked and
/// [`OnUnavailable::Allow`](crate::OnUnavailable) let the call go; then only `allowed`,
/// `user_id` and `provider` are filled.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct CheckResult {
    pub allowed: bool,
    pub user_id: String,
    #[serde(default)]
    pub provider: Option<String>,
    #[serde(default)]
    pub plan: Option<String>,
    #[serde(default)]
    pub period: Option<Period>,
    #[serde(default)]
    pub estimated_cost_usd: Option<Decimal>,
    #[serde(default)]
    pub reservation_id: Option<String>,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub usage_status: Option<String>,
    #[serde(default)]
    pub remaining: MetricAmounts,
    #[serde(default)]
    pub usage_percentages: MetricPercentages,
    #[serde(skip)]
    pub unavailable: bool,
}

/// One event of a `record`: `recorded`, `duplicate` (same id, same content) or `conflict`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct EventOutcome {
    pub event_id: String,
    pub status: String,
    #[serde(default)]
    pub provider: Option<String>,
    #[serde(default)]
    pub cost_usd: Option<Decimal>,
    #[serde(default)]
    pub priced: Option<bool>,
    #[serde(default)]
    pub estimated: Option<bool>,
    #[serde(default)]
    pub price_version: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

/// The answer of `record`. `queued` counts events kept for later delivery because meter
/// was unavailable (retried in the background and by `flush`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct RecordResult {
    pub recorded: u64,
    pub events: Vec<EventOutcome>,
    #[serde(skip)]
    pub queued: usize,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Release {
    pub reservation_id: String,
    pub status: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Quote {
    pub provider: String,
    pub cost_usd: Option<Decimal>,
    pub priced: bool,
    #[serde(default)]
    pub estimated: bool,
    #[serde(default)]
    pub price_version: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Plan {
    pub name: String,
    pub tier: String,
    pub monthly_price_usd: Decimal,
    pub yearly_price_usd: Decimal,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub features: Vec<String>,
    #[serde(default)]
    pub alert_thresholds: Vec<u8>,
    #[serde(default)]
    pub limits: MetricAmounts,
}

/// A price version in force. `prices` holds per-unit prices (exact strings) and `tiers`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct PriceVersion {
    pub id: String,
    pub provider: String,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub aliases: Vec<String>,
    pub effective_from: DateTime<Utc>,
    #[serde(default)]
    pub effective_to: Option<DateTime<Utc>>,
    pub prices: Map<String, Value>,
    #[serde(default)]
    pub source: String,
}

impl PriceVersion {
    /// The per-unit price of a component (`input_token`, `search`, …).
    pub fn price(&self, component: &str) -> Option<Decimal> {
        self.prices.get(component)?.as_str()?.parse().ok()
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Pricing {
    pub as_of: DateTime<Utc>,
    pub prices: Vec<PriceVersion>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct ProviderUsage {
    pub calls: u64,
    pub tokens: u64,
    pub cost: Decimal,
    #[serde(default)]
    pub avg_response_time_ms: f64,
    #[serde(default)]
    pub error_rate: f64,
    #[serde(default)]
    pub error_calls: u64,
    #[serde(default)]
    pub unpriced_calls: u64,
    #[serde(default)]
    pub estimated_calls: u64,
}

/// One period's recorded usage (open reservations are not shown here).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct UsageView {
    pub user_id: String,
    pub plan: String,
    pub period: Period,
    pub total_calls: u64,
    pub total_tokens: u64,
    pub total_cost: Decimal,
    pub provider_breakdown: BTreeMap<String, ProviderUsage>,
    pub usage_status: String,
    #[serde(default)]
    pub limits: MetricAmounts,
    #[serde(default)]
    pub usage_percentages: MetricPercentages,
    #[serde(default)]
    pub unpriced_calls: u64,
    #[serde(default)]
    pub estimated_calls: u64,
    #[serde(default)]
    pub error_calls: u64,
    #[serde(default)]
    pub avg_response_time_ms: f64,
    #[serde(default)]
    pub error_rate: f64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct ProviderTrend {
    pub calls: Vec<u64>,
    pub cost: Vec<Decimal>,
    pub tokens: Vec<u64>,
}

/// The last `months` periods, oldest first; series are aligned with `periods`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Trends {
    #[serde(default)]
    pub user_id: Option<String>,
    pub months: u32,
    pub periods: Vec<String>,
    pub total_calls: Vec<u64>,
    pub total_cost: Vec<Decimal>,
    pub total_tokens: Vec<u64>,
    #[serde(default)]
    pub provider_trends: BTreeMap<String, ProviderTrend>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Alert {
    pub id: String,
    pub user_id: String,
    pub period: String,
    pub key: String,
    #[serde(default)]
    pub metric: Option<String>,
    #[serde(default)]
    pub threshold: Option<u8>,
    pub severity: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub message: String,
    pub created_at: DateTime<Utc>,
    pub read: bool,
}

/// Newest first; `unread_count` counts every unread alert of the user.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Alerts {
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(alias = "items")]
    pub alerts: Vec<Alert>,
    pub unread_count: u64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct MarkRead {
    pub alert_id: String,
    pub read: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct DashboardLimits {
    pub plan_name: String,
    pub limits: MetricAmounts,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Projections {
    pub projected_monthly_cost: Option<Decimal>,
    pub projected_usage_percentage: Option<f64>,
    pub cost_cap: Option<Decimal>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Summary {
    pub plan: String,
    pub tier: String,
    pub subscription_status: String,
    pub usage_status: String,
    pub billing_cycle: String,
    pub period: Period,
    pub days_remaining: u32,
    pub total_calls: u64,
    pub total_cost: Decimal,
    #[serde(default)]
    pub pending_plan: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Recommendation {
    pub kind: String,
    pub plan: Option<String>,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Dashboard {
    pub user_id: String,
    pub current_usage: UsageView,
    pub limits: DashboardLimits,
    #[serde(default)]
    pub usage_percentages: MetricPercentages,
    pub projections: Projections,
    pub trends: Trends,
    pub alerts: Alerts,
    pub summary: Summary,
    #[serde(default)]
    pub recommendations: Vec<Recommendation>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct LineItem {
    pub kind: String,
    #[serde(default)]
    pub description: String,
    pub amount_usd: Decimal,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Invoice {
    pub id: String,
    pub period: Period,
    pub plan: String,
    pub base_usd: Decimal,
    pub usage_usd: Decimal,
    pub overage_usd: Decimal,
    pub proration_usd: Decimal,
    #[serde(default)]
    pub adjustments_usd: Decimal,
    pub total_usd: Decimal,
    #[serde(default)]
    pub line_items: Vec<LineItem>,
    pub status: String,
    pub created_at: DateTime<Utc>,
    /// What the invoice states beside its amounts: `rounding`, `exact_total_usd`, and
    /// where they apply `unpriced_calls`, `credits_applied_usd`, `org_id`.
    #[serde(default)]
    pub extra: BTreeMap<String, String>,
}

/// Invoices, newest period first.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Billing {
    pub user_id: String,
    pub invoices: Vec<Invoice>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Subscription {
    pub plan: String,
    pub billing_cycle: String,
    pub anchor: String,
    pub status: String,
    pub auto_renew: bool,
    pub started_at: DateTime<Utc>,
    pub current_period: Period,
    #[serde(default)]
    pub pending_plan: Option<String>,
    pub version: u64,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Proration {
    pub period_start: DateTime<Utc>,
    pub at: DateTime<Utc>,
    pub from_plan: String,
    pub to_plan: String,
    pub amount_usd: Decimal,
}

/// `subscription` is `None` for a user without one (the tenant's Free plan).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct SubscriptionView {
    pub user_id: String,
    pub subscription: Option<Subscription>,
    pub plan: Plan,
    #[serde(default)]
    pub limits: MetricAmounts,
    pub status: String,
    pub current_period: Period,
    #[serde(default)]
    pub pending_plan: Option<String>,
    #[serde(default)]
    pub prorations: Vec<Proration>,
}

/// Token counts of one call with meter's (LiteLLM's) conventions: `input_tokens` is the
/// whole prompt (cache reads and writes included), `output_tokens` the whole completion
/// (reasoning included); the other three are parts of those.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_input_tokens: u64,
    pub cache_write_tokens: u64,
    pub reasoning_tokens: u64,
}

/// Unit counts priced per unit (web search, scraping, images, plain requests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Units {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub searches: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub images: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pages: Option<u64>,
}

impl Units {
    pub(crate) fn is_empty(&self) -> bool {
        *self == Units::default()
    }
}

/// The body of `check`. `org_id`/`team_id` need a server with organisation support (older
/// servers reject them), so they are sent only when set.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CheckRequest {
    pub user_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimated_input_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimated_output_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Units::is_empty")]
    pub units: Units,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub reserve: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reservation_ttl_seconds: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team_id: Option<String>,
}

impl CheckRequest {
    /// A check for a call of `user_id` to `model` (the provider is found from the model).
    pub fn new(user_id: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            user_id: user_id.into(),
            model: Some(model.into()),
            ..Self::default()
        }
    }
    pub fn provider(mut self, provider: impl Into<String>) -> Self {
        self.provider = Some(provider.into());
        self
    }
    /// Estimated input and output tokens (priced and held by a reservation).
    pub fn estimate(mut self, input_tokens: u64, output_tokens: u64) -> Self {
        self.estimated_input_tokens = Some(input_tokens);
        self.estimated_output_tokens = Some(output_tokens);
        self
    }
    pub fn units(mut self, units: Units) -> Self {
        self.units = units;
        self
    }
    /// Hold the estimate until usage settles it, it is released, or it expires.
    pub fn reserve(mut self, reserve: bool) -> Self {
        self.reserve = reserve;
        self
    }
    /// Needs a server with organisation support.
    pub fn org(mut self, org_id: impl Into<String>, team_id: Option<String>) -> Self {
        self.org_id = Some(org_id.into());
        self.team_id = team_id;
        self
    }
}

/// A usage event for `record`. [`UsageEvent::new`] gives it a fresh UUIDv7 `event_id`
/// (the idempotency key), kept by every retry. Fields left `None` are not sent.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UsageEvent {
    pub event_id: String,
    pub user_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cached_input_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_write_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_tokens: Option<u64>,
    #[serde(flatten)]
    pub units: Units,
    /// A provider's own usage object (OpenAI, Anthropic, Gemini `usageMetadata`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_chars: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_chars: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reservation_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// Needs a server with organisation support.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
    /// Needs a server with organisation support.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team_id: Option<String>,
}

impl UsageEvent {
    /// An event of `user_id` under a fresh UUIDv7 id.
    pub fn new(user_id: impl Into<String>) -> Self {
        Self {
            event_id: uuid::Uuid::now_v7().to_string(),
            user_id: user_id.into(),
            ..Self::default()
        }
    }
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }
    pub fn provider(mut self, provider: impl Into<String>) -> Self {
        self.provider = Some(provider.into());
        self
    }
    /// Sets the five token counts.
    pub fn tokens(mut self, usage: Usage) -> Self {
        self.input_tokens = Some(usage.input_tokens);
        self.output_tokens = Some(usage.output_tokens);
        self.cached_input_tokens = Some(usage.cached_input_tokens);
        self.cache_write_tokens = Some(usage.cache_write_tokens);
        self.reasoning_tokens = Some(usage.reasoning_tokens);
        self
    }
}

/// The body of `quote`: the usage fields of one event.
#[derive(Debug, Clone, Default, Serialize)]
pub struct QuoteRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cached_input_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_write_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_tokens: Option<u64>,
    #[serde(flatten)]
    pub units: Units,
    /// A provider usage object, sent as is (the server reads OpenAI, Anthropic and Gemini shapes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_chars: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_chars: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team_id: Option<String>,
}

impl QuoteRequest {
    pub fn new(model: impl Into<String>) -> Self {
        Self {
            model: Some(model.into()),
            ..Self::default()
        }
    }
    pub fn provider(mut self, provider: impl Into<String>) -> Self {
        self.provider = Some(provider.into());
        self
    }
    /// Quote a provider usage object.
    pub fn usage(mut self, usage: Value) -> Self {
        self.usage = Some(usage);
        self
    }
    pub fn tokens(mut self, usage: Usage) -> Self {
        self.input_tokens = Some(usage.input_tokens);
        self.output_tokens = Some(usage.output_tokens);
        self.cached_input_tokens = Some(usage.cached_input_tokens);
        self.cache_write_tokens = Some(usage.cache_write_tokens);
        self.reasoning_tokens = Some(usage.reasoning_tokens);
        self
    }
}

/// Query of the alerts read.
#[derive(Debug, Clone, Copy, Default)]
pub struct AlertsQuery {
    pub unread_only: bool,
    /// 1–100 (default 50).
    pub limit: Option<u32>,
}
