"""What the sync and async clients share: configuration, request bodies, answers, the queue."""

from __future__ import annotations

import logging
import math
import random
import threading
from collections import deque
from typing import Any, Deque, Dict, Iterable, List, Mapping, Optional, Tuple, Union
from urllib.parse import quote as _quote, urlsplit

import httpx

from ._parse import now_rfc3339, uuid7
from .errors import ApiError, LimitExceeded, MeterUnavailable, UsageError
from .types import Event, Json, RecordResult, Usage
from .usage import read_usage

__version__ = "0.1.0"

log = logging.getLogger("meter_client")

API_PREFIX = "/api/subscription"
MAX_BATCH = 100
_BACKOFF_BASE = 0.1
_BACKOFF_CAP = 2.0

EventLike = Union[Event, Mapping[str, Any]]


def _require(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string")
    return value


def segment(value: str, what: str) -> str:
    """A path segment: the id, percent-encoded (ids may hold `/`, `+`, `@`, `:`, `=`)."""
    return _quote(_require(value, what), safe="")


def _validate_base_url(base_url: Any) -> str:
    if not isinstance(base_url, str) or not base_url.strip():
        raise ValueError("base_url must be an http(s) URL such as http://127.0.0.1:8080")
    parts = urlsplit(base_url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"base_url must be an http(s) URL with a host, not {base_url!r}")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ValueError(f"base_url has an invalid port: {base_url!r}") from None
    if parts.query or parts.fragment:
        raise ValueError(f"base_url must not have a query or fragment: {base_url!r}")
    path = parts.path.rstrip("/")
    if path.endswith(API_PREFIX):
        path = path[: -len(API_PREFIX)]
    return f"{parts.scheme}://{parts.netloc}{path}"


def _validate_timeout(timeout: Any) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise ValueError("timeout must be a number of seconds")
    if not math.isfinite(timeout) or timeout <= 0:
        raise ValueError(f"timeout must be positive and finite, not {timeout!r}")
    return float(timeout)


def _optional_count(name: str, value: Any) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, not {value!r}")
    return value


def _units(requests: Any, searches: Any, images: Any, pages: Any) -> Dict[str, int]:
    given = {"requests": requests, "searches": searches, "images": images, "pages": pages}
    return {k: v for k, v in ((k, _optional_count(k, v)) for k, v in given.items()) if v is not None}


def _scope(body: Json, org_id: Optional[str], team_id: Optional[str]) -> None:
    # Sent only when set: servers without organisation support reject unknown fields.
    if team_id is not None and org_id is None:
        raise ValueError("team_id needs org_id")
    if org_id is not None:
        body["org_id"] = _require(org_id, "org_id")
    if team_id is not None:
        body["team_id"] = _require(team_id, "team_id")


def _event_json(event: EventLike) -> Json:
    if isinstance(event, Event):
        body = event.to_json()
    elif isinstance(event, Mapping):
        body = dict(event)
        body.setdefault("event_id", uuid7())
    else:
        raise TypeError(f"an event is an Event or a dict, not {type(event).__name__}")
    if not isinstance(body.get("user_id"), str) or not body["user_id"]:
        raise ValueError("every event needs a non-empty user_id")
    return body


class Core:
    """Configuration and everything that does not depend on sync or async I/O."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        timeout: float,
        on_unavailable: str,
        max_retries: int,
        queue_size: int,
        retry_interval: float,
    ) -> None:
        self.base_url = _validate_base_url(base_url)
        if not isinstance(api_key, str) or not api_key.strip():
            raise ValueError("api_key must be a non-empty string")
        self.timeout = _validate_timeout(timeout)
        if on_unavailable not in ("deny", "allow"):
            raise ValueError(f'on_unavailable must be "deny" or "allow", not {on_unavailable!r}')
        self.on_unavailable = on_unavailable
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or not 0 <= max_retries <= 10:
            raise ValueError("max_retries must be an integer from 0 to 10")
        self.max_retries = max_retries
        if isinstance(queue_size, bool) or not isinstance(queue_size, int) or queue_size < 1:
            raise ValueError("queue_size must be a positive integer")
        self.queue_size = queue_size
        self.retry_interval = _validate_timeout(retry_interval)
        self._headers = {
            "authorization": f"Bearer {api_key.strip()}",
            "user-agent": f"meter-client-python/{__version__}",
            "accept": "application/json",
        }
        self._queue: Deque[Json] = deque()
        self._qlock = threading.Lock()
        self._inflight = 0
        self.dropped = 0
        self._closed = False

    def __repr__(self) -> str:  # never the key
        return f"{type(self).__name__}(base_url={self.base_url!r}, on_unavailable={self.on_unavailable!r})"

    def _url(self, path: str) -> str:
        return f"{self.base_url}{API_PREFIX}{path}"

    # --- request bodies -------------------------------------------------------------------

    @staticmethod
    def check_body(
        user_id: str,
        model: Optional[str],
        provider: Optional[str],
        estimated_input_tokens: Optional[int],
        estimated_output_tokens: Optional[int],
        units: Dict[str, int],
        reserve: bool,
        reservation_ttl_seconds: Optional[int],
        org_id: Optional[str],
        team_id: Optional[str],
    ) -> Json:
        _require(user_id, "user_id")
        body: Json = {"user_id": user_id}
        if provider is not None:
            body["provider"] = provider
        if model is not None:
            body["model"] = model
        if _optional_count("estimated_input_tokens", estimated_input_tokens) is not None:
            body["estimated_input_tokens"] = estimated_input_tokens
        if _optional_count("estimated_output_tokens", estimated_output_tokens) is not None:
            body["estimated_output_tokens"] = estimated_output_tokens
        if units:
            body["units"] = units
        if reserve:
            body["reserve"] = True
        if _optional_count("reservation_ttl_seconds", reservation_ttl_seconds) is not None:
            body["reservation_ttl_seconds"] = reservation_ttl_seconds
        _scope(body, org_id, team_id)
        return body

    @staticmethod
    def quote_body(model: Optional[str], provider: Optional[str], usage: Any, counts: Dict[str, Any], org_id: Optional[str], team_id: Optional[str]) -> Json:
        body: Json = {}
        if provider is not None:
            body["provider"] = provider
        if model is not None:
            body["model"] = model
        for k, v in counts.items():
            if v is not None:
                body[k] = v if k == "timestamp" else _optional_count(k, v)
        if usage is not None:
            if isinstance(usage, Mapping):
                body["usage"] = dict(usage)
            else:
                found = read_usage(usage)
                if found is None:
                    raise UsageError("usage is not a usage object of a known shape")
                body.update(found.to_json())
        _scope(body, org_id, team_id)
        return body

    @staticmethod
    def events_json(events: Union[EventLike, Iterable[EventLike]]) -> List[Json]:
        if isinstance(events, (Event, Mapping)):
            events = [events]
        bodies = [_event_json(e) for e in events]
        if not bodies:
            raise ValueError("record needs at least one event")
        return bodies

    # --- answers --------------------------------------------------------------------------

    @staticmethod
    def answer(resp: httpx.Response) -> Any:
        """The ``data`` of a success envelope, or the error it carries (5xx: MeterUnavailable)."""
        status = resp.status_code
        try:
            body = resp.json()
        except ValueError:
            body = None
        if 200 <= status < 300 and isinstance(body, dict) and body.get("success") is True:
            return body.get("data")
        if status >= 500 or (200 <= status < 300):
            code = body.get("error", {}).get("code") if isinstance(body, dict) else None
            raise MeterUnavailable(f"meter answered {status}" + (f" {code}" if code else ""))
        err = body.get("error") if isinstance(body, dict) else None
        if not isinstance(err, dict):
            raise ApiError(status, "http_error", f"meter answered {status} without an error envelope")
        code, message, details = str(err.get("code", "")), str(err.get("message", "")), err.get("details") or {}
        if status == 429 and code == "usage_limit_exceeded":
            retry_after: Optional[int] = None
            header = resp.headers.get("retry-after")
            if header is not None and header.strip().isdigit():
                retry_after = int(header.strip())
            raise LimitExceeded(status, code, message, details, retry_after)
        raise ApiError(status, code, message, details)

    def backoff(self, attempt: int, resp: Optional[httpx.Response]) -> float:
        delay = min(_BACKOFF_CAP, _BACKOFF_BASE * (2**attempt)) * random.uniform(0.5, 1.0)
        if resp is not None:
            header = resp.headers.get("retry-after", "")
            if header.strip().isdigit():
                delay = max(delay, min(float(header), _BACKOFF_CAP))
        return delay

    # --- the queue of undelivered usage -----------------------------------------------------

    @property
    def pending(self) -> int:
        """Usage events not yet delivered: queued, or being sent by a flush."""
        with self._qlock:
            return len(self._queue) + self._inflight

    def _push(self, events: List[Json], front: bool = False) -> None:
        """Adds events (under ``_qlock``); the oldest are dropped past ``queue_size``."""
        if front:
            self._queue.extendleft(reversed(events))
        else:
            self._queue.extend(events)
        over = len(self._queue) - self.queue_size
        for _ in range(max(0, over)):
            lost = self._queue.popleft()
            self.dropped += 1
            log.warning("meter usage queue is full (%d): dropped event %s", self.queue_size, lost.get("event_id"))

    def _take(self) -> List[Json]:
        """The next batch to send; it counts as pending until ``_settle``."""
        with self._qlock:
            n = min(MAX_BATCH, len(self._queue))
            batch = [self._queue.popleft() for _ in range(n)]
            self._inflight += n
            return batch

    def _settle(self, batch: List[Json], remaining: List[Json]) -> None:
        """A sent batch is done; ``remaining`` (not delivered) goes back to the queue's front."""
        with self._qlock:
            self._inflight -= len(batch)
            if remaining:
                self._push(remaining, front=True)

    @staticmethod
    def rejected(e: ApiError) -> bool:
        """meter refused the events themselves: sending them again cannot succeed."""
        return e.status in (400, 413, 422)

    @staticmethod
    def queued_result(events: List[Json]) -> RecordResult:
        return RecordResult(recorded=0, events=[], queued=len(events))


class GuardSpec:
    """The arguments of a guard, checked at construction (no request is made before ``enter``)."""

    def __init__(
        self,
        user_id: str,
        model: Optional[str],
        provider: Optional[str],
        estimated_input_tokens: Optional[int],
        estimated_output_tokens: Optional[int],
        requests: Optional[int],
        searches: Optional[int],
        images: Optional[int],
        pages: Optional[int],
        reservation_ttl_seconds: Optional[int],
        org_id: Optional[str],
        team_id: Optional[str],
        metadata: Optional[Json],
        endpoint: Optional[str],
    ) -> None:
        if not isinstance(user_id, str) or not user_id:
            raise ValueError("guard needs a non-empty user_id")
        if model is None and provider is None:
            raise ValueError("guard needs a model or a provider")
        self.units = _units(requests, searches, images, pages)
        self.check_body = Core.check_body(
            user_id, model, provider, estimated_input_tokens, estimated_output_tokens, self.units, True,
            reservation_ttl_seconds, org_id, team_id,
        )
        self.user_id, self.model, self.provider = user_id, model, provider
        self.org_id, self.team_id, self.metadata, self.endpoint = org_id, team_id, metadata, endpoint

    def event(self, response: Any, usage: Any, reservation_id: Optional[str], latency_ms: Optional[int]) -> Tuple[Json, Optional[Usage]]:
        counts: Optional[Usage] = None
        if usage is not None:
            counts = read_usage(usage)
            if counts is None:
                raise UsageError("usage is not a usage object of a known shape")
        elif response is not None:
            counts = read_usage(response)
            if counts is None and not self.units:
                raise UsageError(
                    "the response carries no usage object this client reads (OpenAI, Anthropic, Gemini); "
                    "pass usage=Usage(...) to record()"
                )
        ev = Event(
            user_id=self.user_id,
            provider=self.provider,
            model=self.model,
            timestamp=now_rfc3339(),
            reservation_id=reservation_id,
            latency_ms=latency_ms,
            metadata=self.metadata,
            endpoint=self.endpoint,
            org_id=self.org_id,
            team_id=self.team_id,
            **self.units,
        )
        body = ev.to_json()
        if counts is not None:
            body.update(counts.to_json())
        return body, counts
