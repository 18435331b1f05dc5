"""meter-client: check limits, record usage and guard paid AI calls against a meter server.

    from meter_client import Meter

    meter = Meter("http://127.0.0.1:8080", api_key)
    with meter.guard("alice", "gpt-4o-mini", "openai", estimated_input_tokens=500) as g:
        resp = openai.chat.completions.create(...)
        g.record(resp)
"""

from ._async import AsyncGuard, AsyncMeter
from ._core import __version__
from ._sync import Guard, Meter
from .errors import ApiError, LimitExceeded, MeterError, MeterUnavailable, UsageError
from .types import (
    Alert,
    Alerts,
    Billing,
    CheckResult,
    Dashboard,
    Event,
    EventOutcome,
    Invoice,
    LineItem,
    MarkRead,
    Period,
    Plan,
    PriceVersion,
    Pricing,
    Projections,
    Proration,
    ProviderTrend,
    ProviderUsage,
    Quote,
    Recommendation,
    RecordResult,
    Release,
    Subscription,
    SubscriptionView,
    Summary,
    Trends,
    Usage,
    UsageView,
)
from .usage import read_usage

__all__ = [
    "__version__",
    "Meter", "AsyncMeter", "Guard", "AsyncGuard",
    "MeterError", "ApiError", "LimitExceeded", "MeterUnavailable", "UsageError",
    "Alert", "Alerts", "Billing", "CheckResult", "Dashboard", "Event", "EventOutcome", "Invoice",
    "LineItem", "MarkRead", "Period", "Plan", "PriceVersion", "Pricing", "Projections", "Proration",
    "ProviderTrend", "ProviderUsage", "Quote", "Recommendation", "RecordResult", "Release",
    "Subscription", "SubscriptionView", "Summary", "Trends", "Usage", "UsageView",
    "read_usage",
]
