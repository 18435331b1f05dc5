"""Typed results of meter's routes, and the usage event a backend records.

Money is ``Decimal`` (the API sends exact decimal strings), timestamps are aware UTC
``datetime``, counts are ``int``, percentages ``float``. Every result keeps the JSON it was
read from in ``raw``, so fields added by newer servers stay reachable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Dict, List, Optional, Union

from ._parse import amounts, money, percentages, timestamp, uuid7

Amount = Union[int, Decimal]
Json = Dict[str, Any]


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime
    name: Optional[str] = None

    @classmethod
    def from_json(cls, d: Json) -> "Period":
        return cls(start=timestamp(d["start"]), end=timestamp(d["end"]), name=d.get("name"))  # type: ignore[arg-type]


def _period(d: Any) -> Optional[Period]:
    return Period.from_json(d) if d else None


@dataclass(frozen=True)
class CheckResult:
    """The answer of ``check``: the call is allowed (a denial raises ``LimitExceeded``).

    ``unavailable`` is true when meter could not be asked and ``on_unavailable="allow"``
    let the call go; then only ``allowed``, ``user_id`` and ``provider`` are filled.
    """

    allowed: bool
    user_id: str
    provider: Optional[str]
    plan: Optional[str] = None
    period: Optional[Period] = None
    estimated_cost_usd: Optional[Decimal] = None
    reservation_id: Optional[str] = None
    expires_at: Optional[datetime] = None
    usage_status: Optional[str] = None
    remaining: Dict[str, Amount] = field(default_factory=dict)
    usage_percentages: Dict[str, float] = field(default_factory=dict)
    unavailable: bool = False
    raw: Json = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, d: Json) -> "CheckResult":
        return cls(
            allowed=bool(d.get("allowed", True)),
            user_id=d["user_id"],
            provider=d.get("provider"),
            plan=d.get("plan"),
            period=_period(d.get("period")),
            estimated_cost_usd=money(d.get("estimated_cost_usd")),
            reservation_id=d.get("reservation_id"),
            expires_at=timestamp(d.get("expires_at")),
            usage_status=d.get("usage_status"),
            remaining=amounts(d.get("remaining")),
            usage_percentages=percentages(d.get("usage_percentages")),
            raw=d,
        )


@dataclass(frozen=True)
class EventOutcome:
    """One event of a ``record``: ``recorded``, ``duplicate`` (same id, same content) or ``conflict``."""

    event_id: str
    status: str
    provider: Optional[str] = None
    cost_usd: Optional[Decimal] = None
    priced: Optional[bool] = None
    estimated: Optional[bool] = None
    price_version: Optional[str] = None
    message: Optional[str] = None

    @classmethod
    def from_json(cls, d: Json) -> "EventOutcome":
        return cls(
            event_id=d["event_id"],
            status=d["status"],
            provider=d.get("provider"),
            cost_usd=money(d.get("cost_usd")),
            priced=d.get("priced"),
            estimated=d.get("estimated"),
            price_version=d.get("price_version"),
            message=d.get("message"),
        )


@dataclass(frozen=True)
class RecordResult:
    """The answer of ``record``. ``queued`` counts events kept for later delivery because
    meter was unavailable (they are retried in the background and by ``flush``)."""

    recorded: int
    events: List[EventOutcome]
    queued: int = 0

    @classmethod
    def from_json(cls, d: Json) -> "RecordResult":
        return cls(recorded=int(d["recorded"]), events=[EventOutcome.from_json(e) for e in d.get("events", [])])


@dataclass(frozen=True)
class Release:
    reservation_id: str
    status: str

    @classmethod
    def from_json(cls, d: Json) -> "Release":
        return cls(reservation_id=d["reservation_id"], status=d["status"])


@dataclass(frozen=True)
class Quote:
    provider: str
    cost_usd: Optional[Decimal]
    priced: bool
    estimated: bool
    price_version: Optional[str] = None
    reason: Optional[str] = None

    @classmethod
    def from_json(cls, d: Json) -> "Quote":
        return cls(
            provider=d["provider"],
            cost_usd=money(d.get("cost_usd")),
            priced=bool(d["priced"]),
            estimated=bool(d.get("estimated", False)),
            price_version=d.get("price_version"),
            reason=d.get("reason"),
        )


@dataclass(frozen=True)
class Plan:
    name: str
    tier: str
    monthly_price_usd: Decimal
    yearly_price_usd: Decimal
    description: str
    features: List[str]
    alert_thresholds: List[int]
    limits: Dict[str, Amount]
    raw: Json = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, d: Json) -> "Plan":
        return cls(
            name=d["name"],
            tier=d["tier"],
            monthly_price_usd=money(d["monthly_price_usd"]),  # type: ignore[arg-type]
            yearly_price_usd=money(d["yearly_price_usd"]),  # type: ignore[arg-type]
            description=d.get("description", ""),
            features=list(d.get("features", [])),
            alert_thresholds=list(d.get("alert_thresholds", [])),
            limits=amounts(d.get("limits")),
            raw=d,
        )


@dataclass(frozen=True)
class PriceVersion:
    """A price version in force. ``prices`` maps a component (``input_token``, ``search``, …)
    to its per-unit price; long-context ``tiers`` are kept as JSON in ``raw``."""

    id: str
    provider: str
    model: Optional[str]
    aliases: List[str]
    effective_from: datetime
    effective_to: Optional[datetime]
    prices: Dict[str, Decimal]
    source: str
    raw: Json = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, d: Json) -> "PriceVersion":
        prices = {k: money(v) for k, v in (d.get("prices") or {}).items() if isinstance(v, str)}
        return cls(
            id=d["id"],
            provider=d["provider"],
            model=d.get("model"),
            aliases=list(d.get("aliases", [])),
            effective_from=timestamp(d["effective_from"]),  # type: ignore[arg-type]
            effective_to=timestamp(d.get("effective_to")),
            prices=prices,  # type: ignore[arg-type]
            source=d.get("source", ""),
            raw=d,
        )


@dataclass(frozen=True)
class Pricing:
    as_of: datetime
    prices: List[PriceVersion]

    @classmethod
    def from_json(cls, d: Json) -> "Pricing":
        return cls(as_of=timestamp(d["as_of"]), prices=[PriceVersion.from_json(p) for p in d["prices"]])  # type: ignore[arg-type]


@dataclass(frozen=True)
class ProviderUsage:
    calls: int
    tokens: int
    cost: Decimal
    avg_response_time_ms: float
    error_rate: float
    error_calls: int
    unpriced_calls: int
    estimated_calls: int

    @classmethod
    def from_json(cls, d: Json) -> "ProviderUsage":
        return cls(
            calls=int(d["calls"]),
            tokens=int(d["tokens"]),
            cost=money(d["cost"]),  # type: ignore[arg-type]
            avg_response_time_ms=float(d.get("avg_response_time_ms", 0)),
            error_rate=float(d.get("error_rate", 0)),
            error_calls=int(d.get("error_calls", 0)),
            unpriced_calls=int(d.get("unpriced_calls", 0)),
            estimated_calls=int(d.get("estimated_calls", 0)),
        )


@dataclass(frozen=True)
class UsageView:
    """One period's recorded usage (open reservations are not shown here)."""

    user_id: str
    plan: str
    period: Period
    total_calls: int
    total_tokens: int
    total_cost: Decimal
    provider_breakdown: Dict[str, ProviderUsage]
    usage_status: str
    limits: Dict[str, Amount]
    usage_percentages: Dict[str, float]
    unpriced_calls: int
    estimated_calls: int
    error_calls: int
    avg_response_time_ms: float
    error_rate: float
    raw: Json = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, d: Json) -> "UsageView":
        return cls(
            user_id=d["user_id"],
            plan=d["plan"],
            period=Period.from_json(d["period"]),
            total_calls=int(d["total_calls"]),
            total_tokens=int(d["total_tokens"]),
            total_cost=money(d["total_cost"]),  # type: ignore[arg-type]
            provider_breakdown={k: ProviderUsage.from_json(v) for k, v in d.get("provider_breakdown", {}).items()},
            usage_status=d["usage_status"],
            limits=amounts(d.get("limits")),
            usage_percentages=percentages(d.get("usage_percentages")),
            unpriced_calls=int(d.get("unpriced_calls", 0)),
            estimated_calls=int(d.get("estimated_calls", 0)),
            error_calls=int(d.get("error_calls", 0)),
            avg_response_time_ms=float(d.get("avg_response_time_ms", 0)),
            error_rate=float(d.get("error_rate", 0)),
            raw=d,
        )


@dataclass(frozen=True)
class ProviderTrend:
    calls: List[int]
    cost: List[Decimal]
    tokens: List[int]


@dataclass(frozen=True)
class Trends:
    """The last ``months`` periods, oldest first; series are aligned with ``periods``."""

    user_id: Optional[str]
    months: int
    periods: List[str]
    total_calls: List[int]
    total_cost: List[Decimal]
    total_tokens: List[int]
    provider_trends: Dict[str, ProviderTrend]

    @classmethod
    def from_json(cls, d: Json) -> "Trends":
        return cls(
            user_id=d.get("user_id"),
            months=int(d["months"]),
            periods=list(d["periods"]),
            total_calls=[int(x) for x in d["total_calls"]],
            total_cost=[money(x) for x in d["total_cost"]],  # type: ignore[misc]
            total_tokens=[int(x) for x in d["total_tokens"]],
            provider_trends={
                k: ProviderTrend(
                    calls=[int(x) for x in v.get("calls", [])],
                    cost=[money(x) for x in v.get("cost", [])],  # type: ignore[misc]
                    tokens=[int(x) for x in v.get("tokens", [])],
                )
                for k, v in d.get("provider_trends", {}).items()
            },
        )


@dataclass(frozen=True)
class Alert:
    id: str
    user_id: str
    period: str
    key: str
    metric: Optional[str]
    threshold: Optional[int]
    severity: str
    title: str
    message: str
    created_at: datetime
    read: bool

    @classmethod
    def from_json(cls, d: Json) -> "Alert":
        return cls(
            id=d["id"],
            user_id=d["user_id"],
            period=d["period"],
            key=d["key"],
            metric=d.get("metric"),
            threshold=d.get("threshold"),
            severity=d["severity"],
            title=d.get("title", ""),
            message=d.get("message", ""),
            created_at=timestamp(d["created_at"]),  # type: ignore[arg-type]
            read=bool(d["read"]),
        )


@dataclass(frozen=True)
class Alerts:
    """Newest first; ``unread_count`` counts every unread alert of the user."""

    user_id: Optional[str]
    alerts: List[Alert]
    unread_count: int

    @classmethod
    def from_json(cls, d: Json) -> "Alerts":
        items = d.get("alerts", d.get("items", []))
        return cls(user_id=d.get("user_id"), alerts=[Alert.from_json(a) for a in items], unread_count=int(d["unread_count"]))


@dataclass(frozen=True)
class MarkRead:
    alert_id: str
    read: bool

    @classmethod
    def from_json(cls, d: Json) -> "MarkRead":
        return cls(alert_id=d["alert_id"], read=bool(d["read"]))


@dataclass(frozen=True)
class Projections:
    projected_monthly_cost: Optional[Decimal]
    projected_usage_percentage: Optional[float]
    cost_cap: Optional[Decimal]


@dataclass(frozen=True)
class Summary:
    plan: str
    tier: str
    subscription_status: str
    usage_status: str
    billing_cycle: str
    period: Period
    days_remaining: int
    total_calls: int
    total_cost: Decimal
    pending_plan: Optional[str]


@dataclass(frozen=True)
class Recommendation:
    kind: str
    plan: Optional[str]
    reason: str


@dataclass(frozen=True)
class Dashboard:
    user_id: str
    current_usage: UsageView
    plan_name: str
    limits: Dict[str, Amount]
    usage_percentages: Dict[str, float]
    projections: Projections
    trends: Trends
    alerts: Alerts
    summary: Summary
    recommendations: List[Recommendation]
    raw: Json = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, d: Json) -> "Dashboard":
        p, s = d["projections"], d["summary"]
        return cls(
            user_id=d["user_id"],
            current_usage=UsageView.from_json(d["current_usage"]),
            plan_name=d["limits"]["plan_name"],
            limits=amounts(d["limits"].get("limits")),
            usage_percentages=percentages(d.get("usage_percentages")),
            projections=Projections(
                projected_monthly_cost=money(p.get("projected_monthly_cost")),
                projected_usage_percentage=(
                    None if p.get("projected_usage_percentage") is None else float(p["projected_usage_percentage"])
                ),
                cost_cap=money(p.get("cost_cap")),
            ),
            trends=Trends.from_json(d["trends"]),
            alerts=Alerts.from_json(d["alerts"]),
            summary=Summary(
                plan=s["plan"],
                tier=s["tier"],
                subscription_status=s["subscription_status"],
                usage_status=s["usage_status"],
                billing_cycle=s["billing_cycle"],
                period=Period.from_json(s["period"]),
                days_remaining=int(s["days_remaining"]),
                total_calls=int(s["total_calls"]),
                total_cost=money(s["total_cost"]),  # type: ignore[arg-type]
                pending_plan=s.get("pending_plan"),
            ),
            recommendations=[Recommendation(kind=r["kind"], plan=r.get("plan"), reason=r.get("reason", "")) for r in d.get("recommendations", [])],
            raw=d,
        )


@dataclass(frozen=True)
class LineItem:
    kind: str
    description: str
    amount_usd: Decimal


@dataclass(frozen=True)
class Invoice:
    id: str
    period: Period
    plan: str
    base_usd: Decimal
    usage_usd: Decimal
    overage_usd: Decimal
    proration_usd: Decimal
    adjustments_usd: Decimal
    total_usd: Decimal
    line_items: List[LineItem]
    status: str
    created_at: datetime
    # What the invoice states beside its amounts: `rounding`, `exact_total_usd`, and where
    # they apply `unpriced_calls`, `credits_applied_usd`, `org_id` (strings, as sent).
    extra: Dict[str, str] = field(default_factory=dict)
    raw: Json = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, d: Json) -> "Invoice":
        m = lambda k: money(d.get(k, "0"))  # noqa: E731
        return cls(
            id=d["id"],
            period=Period.from_json(d["period"]),
            plan=d["plan"],
            base_usd=m("base_usd"),  # type: ignore[arg-type]
            usage_usd=m("usage_usd"),  # type: ignore[arg-type]
            overage_usd=m("overage_usd"),  # type: ignore[arg-type]
            proration_usd=m("proration_usd"),  # type: ignore[arg-type]
            adjustments_usd=m("adjustments_usd"),  # type: ignore[arg-type]
            total_usd=m("total_usd"),  # type: ignore[arg-type]
            line_items=[LineItem(kind=li["kind"], description=li.get("description", ""), amount_usd=money(li["amount_usd"])) for li in d.get("line_items", [])],  # type: ignore[arg-type]
            status=d["status"],
            created_at=timestamp(d["created_at"]),  # type: ignore[arg-type]
            extra=dict(d.get("extra") or {}),
            raw=d,
        )


@dataclass(frozen=True)
class Billing:
    """Invoices, newest period first."""

    user_id: str
    invoices: List[Invoice]

    @classmethod
    def from_json(cls, d: Json) -> "Billing":
        return cls(user_id=d["user_id"], invoices=[Invoice.from_json(i) for i in d.get("invoices", [])])


@dataclass(frozen=True)
class Subscription:
    plan: str
    billing_cycle: str
    anchor: str
    status: str
    auto_renew: bool
    started_at: datetime
    current_period: Period
    pending_plan: Optional[str]
    version: int
    updated_at: datetime

    @classmethod
    def from_json(cls, d: Json) -> "Subscription":
        return cls(
            plan=d["plan"],
            billing_cycle=d["billing_cycle"],
            anchor=d["anchor"],
            status=d["status"],
            auto_renew=bool(d["auto_renew"]),
            started_at=timestamp(d["started_at"]),  # type: ignore[arg-type]
            current_period=Period.from_json(d["current_period"]),
            pending_plan=d.get("pending_plan"),
            version=int(d["version"]),
            updated_at=timestamp(d["updated_at"]),  # type: ignore[arg-type]
        )


@dataclass(frozen=True)
class Proration:
    period_start: datetime
    at: datetime
    from_plan: str
    to_plan: str
    amount_usd: Decimal


@dataclass(frozen=True)
class SubscriptionView:
    """``subscription`` is ``None`` for a user without one (the tenant's Free plan)."""

    user_id: str
    subscription: Optional[Subscription]
    plan: Plan
    limits: Dict[str, Amount]
    status: str
    current_period: Period
    pending_plan: Optional[str]
    prorations: List[Proration]
    raw: Json = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, d: Json) -> "SubscriptionView":
        return cls(
            user_id=d["user_id"],
            subscription=Subscription.from_json(d["subscription"]) if d.get("subscription") else None,
            plan=Plan.from_json(d["plan"]),
            limits=amounts(d.get("limits")),
            status=d["status"],
            current_period=Period.from_json(d["current_period"]),
            pending_plan=d.get("pending_plan"),
            prorations=[
                Proration(
                    period_start=timestamp(p["period_start"]),  # type: ignore[arg-type]
                    at=timestamp(p["at"]),  # type: ignore[arg-type]
                    from_plan=p["from_plan"],
                    to_plan=p["to_plan"],
                    amount_usd=money(p["amount_usd"]),  # type: ignore[arg-type]
                )
                for p in d.get("prorations", [])
            ],
            raw=d,
        )


@dataclass(frozen=True)
class Usage:
    """Token counts of one call, with meter's (LiteLLM's) conventions: ``input_tokens`` is
    the whole prompt (cache reads and writes included), ``output_tokens`` the whole
    completion (reasoning included); the other three are parts of those."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0

    def to_json(self) -> Json:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cached_input_tokens": self.cached_input_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "reasoning_tokens": self.reasoning_tokens,
        }


_EVENT_FIELDS = (
    "event_id", "user_id", "provider", "model", "timestamp", "input_tokens", "output_tokens",
    "cached_input_tokens", "cache_write_tokens", "reasoning_tokens", "requests", "searches",
    "images", "pages", "usage", "input_chars", "output_chars", "endpoint", "status_code",
    "latency_ms", "reservation_id", "metadata", "org_id", "team_id",
)


@dataclass
class Event:
    """A usage event for ``record``. ``event_id`` (the idempotency key) defaults to a fresh
    UUIDv7, and a retry sends the same id. Fields left ``None`` are not sent; ``org_id`` and
    ``team_id`` need a server with organisation support (older servers reject them)."""

    user_id: str
    provider: Optional[str] = None
    model: Optional[str] = None
    event_id: str = field(default_factory=uuid7)
    timestamp: Union[str, datetime, None] = None
    input_tokens: Optional[int] = None
    output_tokens: Optional[int] = None
    cached_input_tokens: Optional[int] = None
    cache_write_tokens: Optional[int] = None
    reasoning_tokens: Optional[int] = None
    requests: Optional[int] = None
    searches: Optional[int] = None
    images: Optional[int] = None
    pages: Optional[int] = None
    usage: Optional[Json] = None
    input_chars: Optional[int] = None
    output_chars: Optional[int] = None
    endpoint: Optional[str] = None
    status_code: Optional[int] = None
    latency_ms: Optional[int] = None
    reservation_id: Optional[str] = None
    metadata: Optional[Json] = None
    org_id: Optional[str] = None
    team_id: Optional[str] = None

    def to_json(self) -> Json:
        body = {k: getattr(self, k) for k in _EVENT_FIELDS if getattr(self, k) is not None}
        if isinstance(body.get("timestamp"), datetime):
            ts: datetime = body["timestamp"]
            if ts.tzinfo is None:
                raise ValueError("Event.timestamp must be timezone-aware")
            body["timestamp"] = ts.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
        return body
