/**
 * Typed results of meter's routes, as the API sends them: snake_case names, money as exact
 * decimal strings (never `number`), timestamps as RFC 3339 strings, counts as numbers.
 * Newer servers may add fields; they are kept on the objects.
 */

export type Json = Record<string, unknown>;
/** An exact decimal amount in USD, e.g. `"0.0008125"`. */
export type Money = string;
/** Metric → amount: counts are numbers, `cost_usd` is `Money`. */
export type MetricAmounts = Record<string, number | Money>;
export type MetricPercentages = Record<string, number>;

export interface Period {
  start: string;
  end: string;
  name?: string;
}

export interface CheckResult {
  allowed: true;
  user_id: string;
  provider: string | null;
  plan?: string;
  period?: Period;
  estimated_cost_usd?: Money | null;
  reservation_id?: string;
  expires_at?: string;
  usage_status?: string;
  remaining: MetricAmounts;
  usage_percentages: MetricPercentages;
  /** True when meter could not be asked and `onUnavailable: "allow"` let the call go. */
  unavailable?: boolean;
}

export interface EventOutcome {
  event_id: string;
  status: "recorded" | "duplicate" | "conflict";
  provider?: string;
  cost_usd?: Money | null;
  priced?: boolean;
  estimated?: boolean;
  price_version?: string | null;
  message?: string;
}

export interface RecordResult {
  recorded: number;
  events: EventOutcome[];
  /** Events kept for later delivery because meter was unavailable. */
  queued: number;
}

export interface Release {
  reservation_id: string;
  status: "released" | "settled" | "expired";
}

export interface Quote {
  provider: string;
  cost_usd: Money | null;
  priced: boolean;
  estimated: boolean;
  price_version?: string;
  reason?: string;
}

export interface Plan {
  name: string;
  tier: string;
  monthly_price_usd: Money;
  yearly_price_usd: Money;
  description: string;
  features: string[];
  alert_thresholds: number[];
  limits: MetricAmounts;
}

export interface PriceVersion {
  id: string;
  provider: string;
  model: string | null;
  aliases: string[];
  effective_from: string;
  effective_to: string | null;
  /** Per-unit prices (`input_token`, `search`, …) and long-context `tiers`. */
  prices: Record<string, Money | unknown>;
  source: string;
}

export interface Pricing {
  as_of: string;
  prices: PriceVersion[];
}

export interface ProviderUsage {
  calls: number;
  tokens: number;
  cost: Money;
  avg_response_time_ms: number;
  error_rate: number;
  error_calls: number;
  unpriced_calls: number;
  estimated_calls: number;
}

export interface UsageView {
  user_id: string;
  plan: string;
  period: Period;
  total_calls: number;
  total_tokens: number;
  total_cost: Money;
  provider_breakdown: Record<string, ProviderUsage>;
  usage_status: "active" | "warning" | "limit_reached";
  limits: MetricAmounts;
  usage_percentages: MetricPercentages;
  unpriced_calls: number;
  estimated_calls: number;
  error_calls: number;
  avg_response_time_ms: number;
  error_rate: number;
}

export interface ProviderTrend {
  calls: number[];
  cost: Money[];
  tokens: number[];
}

export interface Trends {
  user_id?: string;
  months: number;
  periods: string[];
  total_calls: number[];
  total_cost: Money[];
  total_tokens: number[];
  provider_trends: Record<string, ProviderTrend>;
}

export interface Alert {
  id: string;
  user_id: string;
  period: string;
  key: string;
  metric: string | null;
  threshold: number | null;
  severity: "info" | "warning" | "error";
  title: string;
  message: string;
  created_at: string;
  read: boolean;
}

export interface Alerts {
  user_id: string;
  alerts: Alert[];
  unread_count: number;
}

export interface MarkRead {
  alert_id: string;
  read: true;
}

export interface Dashboard {
  user_id: string;
  current_usage: UsageView;
  limits: { plan_name: string; limits: MetricAmounts };
  usage_percentages: MetricPercentages;
  projections: {
    projected_monthly_cost: Money | null;
    projected_usage_percentage: number | null;
    cost_cap: Money | null;
  };
  trends: Trends;
  alerts: { items: Alert[]; unread_count: number };
  summary: {
    plan: string;
    tier: string;
    subscription_status: string;
    usage_status: string;
    billing_cycle: string;
    period: Period;
    days_remaining: number;
    total_calls: number;
    total_cost: Money;
    pending_plan: string | null;
  };
  recommendations: { kind: "upgrade" | "no_plan_fits"; plan: string | null; reason: string }[];
}

export interface LineItem {
  kind: string;
  description: string;
  amount_usd: Money;
}

export interface Invoice {
  id: string;
  period: Period;
  plan: string;
  base_usd: Money;
  usage_usd: Money;
  overage_usd: Money;
  proration_usd: Money;
  adjustments_usd: Money;
  total_usd: Money;
  line_items: LineItem[];
  status: "pending" | "paid" | "void";
  created_at: string;
  /** What the invoice states beside its amounts: `rounding`, `exact_total_usd`, and where
   * they apply `unpriced_calls`, `credits_applied_usd`, `org_id`. */
  extra: Record<string, string>;
}

export interface Billing {
  user_id: string;
  invoices: Invoice[];
}

export interface Subscription {
  plan: string;
  billing_cycle: "monthly" | "yearly";
  anchor: "calendar" | "anniversary";
  status: "active" | "past_due" | "suspended" | "cancelled";
  auto_renew: boolean;
  started_at: string;
  current_period: Period;
  pending_plan: string | null;
  version: number;
  updated_at: string;
}

export interface Proration {
  period_start: string;
  at: string;
  from_plan: string;
  to_plan: string;
  amount_usd: Money;
}

export interface SubscriptionView {
  user_id: string;
  /** `null` for a user without one: the tenant's Free plan. */
  subscription: Subscription | null;
  plan: Plan;
  limits: MetricAmounts;
  status: string;
  current_period: Period;
  pending_plan: string | null;
  prorations: Proration[];
}

/**
 * Token counts of one call with meter's (LiteLLM's) conventions: `input_tokens` is the
 * whole prompt (cache reads and writes included), `output_tokens` the whole completion
 * (reasoning included); the other three are parts of those.
 */
export interface Usage {
  input_tokens: number;
  output_tokens: number;
  cached_input_tokens: number;
  cache_write_tokens: number;
  reasoning_tokens: number;
}

/** Unit counts priced per unit (web search, scraping, images, plain requests). */
export interface Units {
  requests?: number;
  searches?: number;
  images?: number;
  pages?: number;
}

/**
 * A usage event for `record`. `event_id` (the idempotency key) defaults to a fresh UUIDv7;
 * a retry sends the same id. `org_id`/`team_id` need a server with organisation support
 * (older servers reject them), so they are sent only when set.
 */
export interface UsageEvent extends Units {
  user_id: string;
  event_id?: string;
  provider?: string;
  model?: string;
  timestamp?: string;
  input_tokens?: number;
  output_tokens?: number;
  cached_input_tokens?: number;
  cache_write_tokens?: number;
  reasoning_tokens?: number;
  /** A provider's own usage object (OpenAI, Anthropic, Gemini `usageMetadata`). */
  usage?: Json;
  input_chars?: number;
  output_chars?: number;
  endpoint?: string;
  status_code?: number;
  latency_ms?: number;
  reservation_id?: string;
  metadata?: Json;
  org_id?: string;
  team_id?: string;
}

export interface CheckRequest extends Units {
  user_id: string;
  model?: string;
  provider?: string;
  estimated_input_tokens?: number;
  estimated_output_tokens?: number;
  reserve?: boolean;
  reservation_ttl_seconds?: number;
  org_id?: string;
  team_id?: string;
}

export interface QuoteRequest extends Units {
  model?: string;
  provider?: string;
  /** A provider usage object, sent as is (the server reads OpenAI, Anthropic and Gemini shapes). */
  usage?: Json;
  input_tokens?: number;
  output_tokens?: number;
  cached_input_tokens?: number;
  cache_write_tokens?: number;
  reasoning_tokens?: number;
  input_chars?: number;
  output_chars?: number;
  timestamp?: string;
  org_id?: string;
  team_id?: string;
}

export interface GuardOptions extends Units {
  user_id: string;
  model?: string;
  provider?: string;
  estimated_input_tokens?: number;
  estimated_output_tokens?: number;
  reservation_ttl_seconds?: number;
  org_id?: string;
  team_id?: string;
  metadata?: Json;
  endpoint?: string;
}
