"""The asyncio client, ``AsyncMeter``, and its guard (same names as ``Meter``)."""

from __future__ import annotations

import asyncio
import time
import warnings
from types import TracebackType
from typing import Any, Awaitable, Callable, Dict, Iterable, List, Optional, Type, TypeVar, Union

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


class AsyncMeter(Core):
    """The asyncio twin of :class:`meter_client.Meter`: the same arguments and methods,
    awaited. The background retry of queued usage is a task on the running loop; call
    ``await meter.aclose()`` (or use ``async with``) before the loop ends."""

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
        self._http = httpx.AsyncClient(timeout=self.timeout, headers=self._headers)
        self._flush_lock: Optional[asyncio.Lock] = None
        self._retrier: Optional["asyncio.Task[None]"] = None

    async def __aenter__(self) -> "AsyncMeter":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    # --- transport ------------------------------------------------------------------------

    async def _request(self, method: str, path: str, *, json: Any = None, params: Optional[Dict[str, Any]] = None, retry: bool = True) -> Any:
        attempts = 1 + (self.max_retries if retry else 0)
        failure: MeterUnavailable = MeterUnavailable("meter was not asked")
        for attempt in range(attempts):
            resp: Optional[httpx.Response] = None
            try:
                resp = await self._http.request(method, self._url(path), json=json, params=params)
                return self.answer(resp)
            except httpx.TransportError as e:
                failure = MeterUnavailable(f"meter could not be reached: {type(e).__name__}")
            except MeterUnavailable as e:
                failure = e
            if attempt + 1 < attempts:
                await asyncio.sleep(self.backoff(attempt, resp))
        raise failure

    # --- hot path -------------------------------------------------------------------------

    async def check(
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
        """See :meth:`meter_client.Meter.check`."""
        body = self.check_body(
            user_id, model, provider, estimated_input_tokens, estimated_output_tokens,
            _units(requests, searches, images, pages), reserve, reservation_ttl_seconds, org_id, team_id,
        )
        return await self._check(body)

    async def _check(self, body: Json) -> CheckResult:
        try:
            return CheckResult.from_json(await self._request("POST", "/check", json=body, retry=False))
        except MeterUnavailable:
            if self.on_unavailable == "deny":
                raise
            log.warning("meter unavailable: check for %s allowed (on_unavailable=allow)", body.get("user_id"))
            return CheckResult(allowed=True, user_id=body["user_id"], provider=body.get("provider"), unavailable=True)

    async def record(self, events: Union[EventLike, Iterable[EventLike]]) -> RecordResult:
        """See :meth:`meter_client.Meter.record`."""
        bodies = self.events_json(events)
        recorded, outcomes = 0, []
        for i in range(0, len(bodies), MAX_BATCH):
            batch = bodies[i : i + MAX_BATCH]
            try:
                r = RecordResult.from_json(await self._request("POST", "/usage", json={"events": batch}))
            except MeterUnavailable as e:
                rest = bodies[i:]
                if self.on_unavailable == "deny":
                    raise MeterUnavailable(str(e), rest) from None
                self._enqueue(rest)
                return RecordResult(recorded=recorded, events=outcomes, queued=len(rest))
            recorded += r.recorded
            outcomes.extend(r.events)
        return RecordResult(recorded=recorded, events=outcomes)

    async def _record_or_queue(self, body: Json) -> RecordResult:
        try:
            return RecordResult.from_json(await self._request("POST", "/usage", json={"events": [body]}))
        except MeterUnavailable:
            self._enqueue([body])
            return self.queued_result([body])

    async def release(self, reservation_id: str) -> Release:
        return Release.from_json(await self._request("POST", f"/reservations/{segment(reservation_id, 'reservation_id')}/release"))

    async def quote(
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
        counts = dict(
            input_tokens=input_tokens, output_tokens=output_tokens, cached_input_tokens=cached_input_tokens,
            cache_write_tokens=cache_write_tokens, reasoning_tokens=reasoning_tokens, requests=requests,
            searches=searches, images=images, pages=pages, input_chars=input_chars, output_chars=output_chars,
            timestamp=timestamp,
        )
        body = self.quote_body(model, provider, usage, counts, org_id, team_id)
        return Quote.from_json(await self._request("POST", "/pricing/quote", json=body))

    # --- reads ----------------------------------------------------------------------------

    async def plans(self) -> List[Plan]:
        return [Plan.from_json(p) for p in (await self._request("GET", "/plans"))["plans"]]

    async def pricing(self, provider: Optional[str] = None) -> Pricing:
        params = {"provider": provider} if provider is not None else None
        return Pricing.from_json(await self._request("GET", "/pricing", params=params))

    async def usage(self, user_id: str, billing_period: Optional[str] = None) -> UsageView:
        params = {"billing_period": billing_period} if billing_period is not None else None
        return UsageView.from_json(await self._request("GET", f"/usage/{segment(user_id, 'user_id')}", params=params))

    async def trends(self, user_id: str, months: Optional[int] = None) -> Trends:
        params = {"months": months} if months is not None else None
        return Trends.from_json(await self._request("GET", f"/usage/{segment(user_id, 'user_id')}/trends", params=params))

    async def dashboard(self, user_id: str) -> Dashboard:
        return Dashboard.from_json(await self._request("GET", f"/dashboard/{segment(user_id, 'user_id')}"))

    async def alerts(self, user_id: str, unread_only: bool = False, limit: Optional[int] = None) -> Alerts:
        params: Dict[str, Any] = {}
        if unread_only:
            params["unread_only"] = "true"
        if limit is not None:
            params["limit"] = limit
        return Alerts.from_json(await self._request("GET", f"/alerts/{segment(user_id, 'user_id')}", params=params or None))

    async def mark_alert_read(self, alert_id: str) -> MarkRead:
        return MarkRead.from_json(await self._request("POST", f"/alerts/{segment(alert_id, 'alert_id')}/mark-read"))

    async def billing(self, user_id: str) -> Billing:
        return Billing.from_json(await self._request("GET", f"/billing/{segment(user_id, 'user_id')}"))

    async def subscription(self, user_id: str) -> SubscriptionView:
        return SubscriptionView.from_json(await self._request("GET", f"/user/{segment(user_id, 'user_id')}/subscription"))

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
    ) -> "AsyncGuard":
        """``async with meter.guard(...) as g: resp = await call(); await g.record(resp)``
        or ``resp = await meter.guard(...).call(async_fn, *args)``."""
        spec = GuardSpec(
            user_id, model, provider, estimated_input_tokens, estimated_output_tokens, requests, searches,
            images, pages, reservation_ttl_seconds, org_id, team_id, metadata, endpoint,
        )
        return AsyncGuard(self, spec)

    # --- queue ----------------------------------------------------------------------------

    def _enqueue(self, events: List[Json]) -> None:
        with self._qlock:
            self._push(events)
        if (self._retrier is None or self._retrier.done()) and not self._closed:
            try:
                self._retrier = asyncio.get_running_loop().create_task(self._retry_loop())
            except RuntimeError:  # no running loop: flush()/aclose() deliver them
                self._retrier = None

    async def _retry_loop(self) -> None:
        while not self._closed:
            await asyncio.sleep(self.retry_interval)
            try:
                await self.flush()
            except Exception as e:  # noqa: BLE001 - the task must not die silently
                log.warning("meter usage retry failed: %s", e)
            if not self.pending:
                return

    async def flush(self) -> int:
        """See :meth:`meter_client.Meter.flush`."""
        delivered = 0
        if self._flush_lock is None:
            self._flush_lock = asyncio.Lock()
        async with self._flush_lock:
            while True:
                batch = self._take()
                if not batch:
                    return delivered
                remaining = batch
                try:
                    try:
                        await self._deliver(batch)
                        delivered, remaining = delivered + len(batch), []
                    except ApiError as e:
                        if not self.rejected(e):
                            raise
                        while remaining:  # find the invalid events: one at a time
                            try:
                                await self._deliver(remaining[:1])
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

    async def _deliver(self, batch: List[Json]) -> None:
        r = RecordResult.from_json(await self._request("POST", "/usage", json={"events": batch}))
        for o in r.events:
            if o.status == "conflict":
                log.warning("meter: queued event %s conflicts with a recorded one: %s", o.event_id, o.message)

    async def aclose(self) -> None:
        """Stops the background retry, sends what is queued (once), closes the connections."""
        self._closed = True
        retrier, self._retrier = self._retrier, None
        if retrier is not None and not retrier.done():
            retrier.cancel()
            try:
                await retrier
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
        try:
            await self.flush()
        except MeterError as e:
            log.warning("meter: flush on close failed: %s", e)
        if self.pending:
            log.warning("meter: %d usage events could not be delivered before close", self.pending)
        await self._http.aclose()

    close = aclose


class AsyncGuard:
    """The asyncio twin of :class:`meter_client.Guard`."""

    def __init__(self, meter: AsyncMeter, spec: GuardSpec) -> None:
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

    async def __aenter__(self) -> "AsyncGuard":
        if self.check is not None:
            raise RuntimeError("a guard guards one call; make a new one")
        self.check = await self._meter._check(self._spec.check_body)
        self._started = time.monotonic()
        return self

    async def record(self, response: Any = None, *, usage: Any = None) -> RecordResult:
        """See :meth:`meter_client.Guard.record`."""
        if self.check is None:
            raise RuntimeError("record() inside `async with meter.guard(...)`")
        if self.result is not None:
            raise RuntimeError("this guard's call is already recorded")
        latency = int((time.monotonic() - self._started) * 1000)
        body, counts = self._spec.event(response, usage, self.reservation_id, latency)
        self.event_id, self.usage = body["event_id"], counts
        self.result = await self._meter._record_or_queue(body)
        return self.result

    async def __aexit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        if self.result is not None:
            return
        if exc_type is None:
            warnings.warn("meter guard left without record(): its reservation is released, no usage recorded", stacklevel=2)
        rid = self.reservation_id
        if rid is None:
            return
        try:
            await self._meter.release(rid)
        except MeterError as e:
            log.warning("meter: releasing reservation failed (%s); it expires with its TTL", e)

    async def call(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """Awaits ``fn(*args, **kwargs)`` inside the guard and records the usage of its result."""
        async with self:
            result = await fn(*args, **kwargs)
            await self.record(result)
            return result
