"""The synchronous client, ``Meter``, and its guard."""

from __future__ import annotations

import threading
import time
import warnings
from types import TracebackType
from typing import Any, Callable, Dict, Iterable, List, Optional, Type, TypeVar, Union

import httpx

from ._core import MAX_BATCH, Core, EventLike, GuardSpec, _units, log, segment
from .errors import ApiError, MeterError, MeterUnavailable
from .types import (
    Alerts,
    Billing,
    CheckResult,
    Dashboard,
    Json,
    MarkRead,
    Plan,
    Pricing,
    Quote,
    RecordResult,
    Release,
    SubscriptionView,
    Trends,
    Usage,
    UsageView,
)

T = TypeVar("T")


class Meter(Core):
    """A client of meter's HTTP API for app backends.

    ``Meter(base_url, api_key, timeout=2.0, on_unavailable="deny")``. ``timeout`` is in
    seconds, per attempt. With ``on_unavailable="allow"``, a check that meter cannot answer
    lets the call go (``CheckResult.unavailable``) and usage that cannot be delivered waits
    in a bounded in-memory queue (``queue_size`` events), retried in the background every
    ``retry_interval`` seconds and by :meth:`flush` / :meth:`close`.
    Thread-safe; use one instance per process.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        timeout: float = 2.0,
        on_unavailable: str = "deny",
        *,
        max_retries: int = 3,
        queue_size: int = 1000,
        retry_interval: float = 5.0,
    ) -> None:
        super().__init__(base_url, api_key, timeout, on_unavailable, max_retries, queue_size, retry_interval)
        self._http = httpx.Client(timeout=self.timeout, headers=self._headers)
        self._flush_lock = threading.Lock()
        self._stop = threading.Event()
        self._retrier: Optional[threading.Thread] = None

    def __enter__(self) -> "Meter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # --- transport ------------------------------------------------------------------------

    def _request(self, method: str, path: str, *, json: Any = None, params: Optional[Dict[str, Any]] = None, retry: bool = True) -> Any:
        attempts = 1 + (self.max_retries if retry else 0)
        failure: MeterUnavailable = MeterUnavailable("meter was not asked")
        for attempt in range(attempts):
            resp: Optional[httpx.Response] = None
            try:
                resp = self._http.request(method, self._url(path), json=json, params=params)
                return self.answer(resp)
            except httpx.TransportError as e:
                failure = MeterUnavailable(f"meter could not be reached: {type(e).__name__}")
            except MeterUnavailable as e:
                failure = e
            if attempt + 1 < attempts:
                time.sleep(self.backoff(attempt, resp))
        raise failure

    # --- hot path -------------------------------------------------------------------------

    def check(
        self,
        user_id: str,
        model: Optional[str] = None,
        provider: Optional[str] = None,
        *,
        estimated_input_tokens: Optional[int] = None,
        estimated_output_tokens: Optional[int] = None,
        requests: Optional[int] = None,
        searches: Optional[int] = None,
        images: Optional[int] = None,
        pages: Optional[int] = None,
        reserve: bool = False,
        reservation_ttl_seconds: Optional[int] = None,
        org_id: Optional[str] = None,
        team_id: Optional[str] = None,
    ) -> CheckResult:
        """May ``user_id`` make this call now? Raises ``LimitExceeded`` when not.

        ``org_id``/``team_id`` need a server with organisation support."""
        body = self.check_body(
            user_id, model, provider, estimated_input_tokens, estimated_output_tokens,
            _units(requests, searches, images, pages), reserve, reservation_ttl_seconds, org_id, team_id,
        )
        return self._check(body)

    def _check(self, body: Json) -> CheckResult:
        try:
            return CheckResult.from_json(self._request("POST", "/check", json=body, retry=False))
        except MeterUnavailable:
            if self.on_unavailable == "deny":
                raise
            log.warning("meter unavailable: check for %s allowed (on_unavailable=allow)", body.get("user_id"))
            return CheckResult(allowed=True, user_id=body["user_id"], provider=body.get("provider"), unavailable=True)

    def record(self, events: Union[EventLike, Iterable[EventLike]]) -> RecordResult:
        """Records usage events (``Event`` or dicts; ``event_id`` defaults to a UUIDv7).

        Retried on transport errors and 5xx with backoff, under the same event ids. When
        meter stays unavailable: ``deny`` raises ``MeterUnavailable`` (its ``events`` are
        the undelivered ones), ``allow`` queues them (``RecordResult.queued``)."""
        bodies = self.events_json(events)
        recorded, outcomes = 0, []
        for i in range(0, len(bodies), MAX_BATCH):
            batch = bodies[i : i + MAX_BATCH]
            try:
                r = RecordResult.from_json(self._request("POST", "/usage", json={"events": batch}))
            except MeterUnavailable as e:
                rest = bodies[i:]
                if self.on_unavailable == "deny":
                    raise MeterUnavailable(str(e), rest) from None
                self._enqueue(rest)
                return RecordResult(recorded=recorded, events=outcomes, queued=len(rest))
            recorded += r.recorded
            outcomes.extend(r.events)
        return RecordResult(recorded=recorded, events=outcomes)

    def _record_or_queue(self, body: Json) -> RecordResult:
        """One event that already happened: delivered, or queued whatever ``on_unavailable`` says."""
        try:
            return RecordResult.from_json(self._request("POST", "/usage", json={"events": [body]}))
        except MeterUnavailable:
            self._enqueue([body])
            return self.queued_result([body])

    def release(self, reservation_id: str) -> Release:
        """Frees a hold (idempotent): answers the reservation's final status."""
        return Release.from_json(self._request("POST", f"/reservations/{segment(reservation_id, 'reservation_id')}/release"))

    def quote(
        self,
        model: Optional[str] = None,
        provider: Optional[str] = None,
        *,
        usage: Any = None,
        input_tokens: Optional[int] = None,
        output_tokens: Optional[int] = None,
        cached_input_tokens: Optional[int] = None,
        cache_write_tokens: Optional[int] = None,
        reasoning_tokens: Optional[int] = None,
        requests: Optional[int] = None,
        searches: Optional[int] = None,
        images: Optional[int] = None,
        pages: Optional[int] = None,
        input_chars: Optional[int] = None,
        output_chars: Optional[int] = None,
        timestamp: Optional[str] = None,
        org_id: Optional[str] = None,
        team_id: Optional[str] = None,
    ) -> Quote:
        """The cost of a hypothetical event; nothing is recorded. ``usage`` is a provider
        usage object (a dict is sent as is; an SDK object is read into counts)."""
        counts = dict(
            input_tokens=input_tokens, output_tokens=output_tokens, cached_input_tokens=cached_input_tokens,
            cache_write_tokens=cache_write_tokens, reasoning_tokens=reasoning_tokens, requests=requests,
            searches=searches, images=images, pages=pages, input_chars=input_chars, output_chars=output_chars,
            timestamp=timestamp,
        )
        body = self.quote_body(model, provider, usage, counts, org_id, team_id)
        return Quote.from_json(self._request("POST", "/pricing/quote", json=body))

    # --- reads ----------------------------------------------------------------------------

    def plans(self) -> List[Plan]:
        return [Plan.from_json(p) for p in self._request("GET", "/plans")["plans"]]

    def pricing(self, provider: Optional[str] = None) -> Pricing:
        params = {"provider": provider} if provider is not None else None
        return Pricing.from_json(self._request("GET", "/pricing", params=params))

    def usage(self, user_id: str, billing_period: Optional[str] = None) -> UsageView:
        params = {"billing_period": billing_period} if billing_period is not None else None
        return UsageView.from_json(self._request("GET", f"/usage/{segment(user_id, 'user_id')}", params=params))

    def trends(self, user_id: str, months: Optional[int] = None) -> Trends:
        params = {"months": months} if months is not None else None
        return Trends.from_json(self._request("GET", f"/usage/{segment(user_id, 'user_id')}/trends", params=params))

    def dashboard(self, user_id: str) -> Dashboard:
        return Dashboard.from_json(self._request("GET", f"/dashboard/{segment(user_id, 'user_id')}"))

    def alerts(self, user_id: str, unread_only: bool = False, limit: Optional[int] = None) -> Alerts:
        params: Dict[str, Any] = {}
        if unread_only:
            params["unread_only"] = "true"
        if limit is not None:
            params["limit"] = limit
        return Alerts.from_json(self._request("GET", f"/alerts/{segment(user_id, 'user_id')}", params=params or None))

    def mark_alert_read(self, alert_id: str) -> MarkRead:
        return MarkRead.from_json(self._request("POST", f"/alerts/{segment(alert_id, 'alert_id')}/mark-read"))

    def billing(self, user_id: str) -> Billing:
        return Billing.from_json(self._request("GET", f"/billing/{segment(user_id, 'user_id')}"))

    def subscription(self, user_id: str) -> SubscriptionView:
        return SubscriptionView.from_json(self._request("GET", f"/user/{segment(user_id, 'user_id')}/subscription"))

    # --- guard ----------------------------------------------------------------------------

    def guard(
        self,
        user_id: str,
        model: Optional[str] = None,
        provider: Optional[str] = None,
        *,
        estimated_input_tokens: Optional[int] = None,
        estimated_output_tokens: Optional[int] = None,
        requests: Optional[int] = None,
        searches: Optional[int] = None,
        images: Optional[int] = None,
        pages: Optional[int] = None,
        reservation_ttl_seconds: Optional[int] = None,
        org_id: Optional[str] = None,
        team_id: Optional[str] = None,
        metadata: Optional[Json] = None,
        endpoint: Optional[str] = None,
    ) -> "Guard":
        """A guard around one paid call: ``with meter.guard(...) as g: resp = call(); g.record(resp)``
        or ``resp = meter.guard(...).call(fn, *args)``. See :class:`Guard`."""
        spec = GuardSpec(
            user_id, model, provider, estimated_input_tokens, estimated_output_tokens, requests, searches,
            images, pages, reservation_ttl_seconds, org_id, team_id, metadata, endpoint,
        )
        return Guard(self, spec)

    # --- queue ----------------------------------------------------------------------------

    def _enqueue(self, events: List[Json]) -> None:
        with self._qlock:
            self._push(events)
            if self._retrier is None and not self._closed:
                self._retrier = threading.Thread(target=self._retry_loop, name="meter-client-retry", daemon=True)
                self._retrier.start()

    def _retry_loop(self) -> None:
        while not self._stop.wait(self.retry_interval):
            try:
                self.flush()
            except Exception as e:  # noqa: BLE001 - the thread must not die silently
                log.warning("meter usage retry failed: %s", e)
            with self._qlock:
                if not self._queue and not self._inflight:
                    self._retrier = None
                    return
        with self._qlock:
            self._retrier = None

    def flush(self) -> int:
        """Sends the queued usage now; returns how many events meter answered. Events stay
        queued while meter is unavailable; events meter rejects as invalid are dropped
        (logged). Another API error (a revoked key) is raised, the events kept."""
        delivered = 0
        with self._flush_lock:
            while True:
                batch = self._take()
                if not batch:
                    return delivered
                remaining = batch
                try:
                    try:
                        self._deliver(batch)
                        delivered, remaining = delivered + len(batch), []
                    except ApiError as e:
                        if not self.rejected(e):
                            raise
                        while remaining:  # find the invalid events: one at a time
                            try:
                                self._deliver(remaining[:1])
                                delivered += 1
                            except ApiError as e1:
                                if not self.rejected(e1):
                                    raise
                                log.warning("meter rejected queued event %s (%s); dropped", remaining[0].get("event_id"), e1.code)
                            remaining = remaining[1:]
                except MeterUnavailable:
                    return delivered
                finally:
                    self._settle(batch, remaining)

    def _deliver(self, batch: List[Json]) -> None:
        r = RecordResult.from_json(self._request("POST", "/usage", json={"events": batch}))
        for o in r.events:
            if o.status == "conflict":
                log.warning("meter: queued event %s conflicts with a recorded one: %s", o.event_id, o.message)

    def close(self) -> None:
        """Stops the background retry, sends what is queued (once), closes the connections."""
        with self._qlock:
            self._closed = True
            retrier = self._retrier
        self._stop.set()
        if retrier is not None:
            retrier.join(timeout=self.timeout * (self.max_retries + 2))
        try:
            self.flush()
        except MeterError as e:
            log.warning("meter: flush on close failed: %s", e)
        if self.pending:
            log.warning("meter: %d usage events could not be delivered before close", self.pending)
        self._http.close()


class Guard:
    """Reserve → the caller's paid call → record its usage (or release on an exception).

    ``__enter__`` checks with ``reserve=True`` (raises ``LimitExceeded``, or
    ``MeterUnavailable`` with ``on_unavailable="deny"``). ``record(response)`` reads the
    response's usage object and records it under a fresh UUIDv7 ``event_id`` with the
    reservation; it is retried with the same id, and queued if meter stays unavailable
    (the call already happened, so its usage is kept whatever ``on_unavailable`` says).
    An exception in the block releases the reservation and propagates.
    """

    def __init__(self, meter: Meter, spec: GuardSpec) -> None:
        self._meter = meter
        self._spec = spec
        self.check: Optional[CheckResult] = None
        self.result: Optional[RecordResult] = None
        self.usage: Optional[Usage] = None
        self.event_id: Optional[str] = None
        self._started = 0.0

    @property
    def reservation_id(self) -> Optional[str]:
        return self.check.reservation_id if self.check else None

    def __enter__(self) -> "Guard":
        if self.check is not None:
            raise RuntimeError("a guard guards one call; make a new one")
        self.check = self._meter._check(self._spec.check_body)
        self._started = time.monotonic()
        return self

    def record(self, response: Any = None, *, usage: Any = None) -> RecordResult:
        """Records the call: the usage object of ``response``, or ``usage`` (a ``Usage`` or
        a provider usage object); with neither, only the guard's units (searches, …)."""
        if self.check is None:
            raise RuntimeError("record() inside `with meter.guard(...)`")
        if self.result is not None:
            raise RuntimeError("this guard's call is already recorded")
        latency = int((time.monotonic() - self._started) * 1000)
        body, counts = self._spec.event(response, usage, self.reservation_id, latency)
        self.event_id, self.usage = body["event_id"], counts
        self.result = self._meter._record_or_queue(body)
        return self.result

    def __exit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        if self.result is not None:
            return
        if exc_type is None:
            warnings.warn("meter guard left without record(): its reservation is released, no usage recorded", stacklevel=2)
        self._release()

    def _release(self) -> None:
        rid = self.reservation_id
        if rid is None:
            return
        try:
            self._meter.release(rid)
        except MeterError as e:  # the hold expires on its own
            log.warning("meter: releasing reservation failed (%s); it expires with its TTL", e)

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Runs ``fn(*args, **kwargs)`` inside the guard and records the usage of its result."""
        with self:
            result = fn(*args, **kwargs)
            self.record(result)
            return result
