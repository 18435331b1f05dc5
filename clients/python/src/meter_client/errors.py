"""The errors a meter client raises."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Dict, List, Optional, Union

from ._parse import amount, timestamp

Amount = Union[int, Decimal]


class MeterError(Exception):
    """Base class of every error this package raises (bad arguments raise ``ValueError``)."""


class ApiError(MeterError):
    """meter answered with an error envelope: ``{"code", "message", "details"}``."""

    def __init__(self, status: int, code: str, message: str, details: Optional[Dict[str, Any]] = None):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details: Dict[str, Any] = details or {}


class LimitExceeded(ApiError):
    """429 ``usage_limit_exceeded``: the call would exceed a limit.

    ``metric``, ``used``, ``limit``, ``requested``, ``period_resets_at`` and ``upgrade_to``
    come from the answer's ``details``; ``retry_after`` (seconds) from its ``Retry-After``
    header. Counts are ``int``, money (``cost_usd``) is ``Decimal``.
    """

    def __init__(self, status: int, code: str, message: str, details: Optional[Dict[str, Any]], retry_after: Optional[int]):
        super().__init__(status, code, message, details)
        d = self.details
        self.metric: Optional[str] = d.get("metric")
        self.used: Optional[Amount] = amount(d.get("used"))
        self.limit: Optional[Amount] = amount(d.get("limit"))
        self.requested: Optional[Amount] = amount(d.get("requested"))
        # `resets_at` is the name a server with budgets (organisations, windows) uses.
        self.period_resets_at: Optional[datetime] = timestamp(d.get("period_resets_at") or d.get("resets_at"))
        self.upgrade_to: Optional[str] = d.get("upgrade_to")
        self.retry_after: Optional[int] = retry_after


class MeterUnavailable(MeterError):
    """meter did not answer in time, could not be reached, or answered 5xx after the retries.

    ``events`` holds the usage events of a :meth:`record` that could not be delivered
    (with ``on_unavailable="deny"``; ``"allow"`` queues them instead).
    """

    def __init__(self, message: str, events: Optional[List[Dict[str, Any]]] = None):
        super().__init__(message)
        self.events: List[Dict[str, Any]] = events or []


class UsageError(MeterError, ValueError):
    """A provider response carries no usage object this client can read, or a bad count."""
