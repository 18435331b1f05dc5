"""The asyncio client against a real `meter serve` (each test runs its own event loop)."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import pytest

import providers
from conftest import DroppingProxy
from meter_client import AsyncMeter, Event, LimitExceeded, MeterUnavailable


def test_async_check_allows_and_denies(server, user):
    async def main() -> None:
        async with AsyncMeter(server.base, server.service_key) as meter:
            ok = await meter.check(user, "gemini-2.5-flash", "gemini", estimated_input_tokens=10, reserve=True)
            assert ok.allowed and ok.reservation_id and ok.remaining["calls:gemini"] == 99
            assert (await meter.release(ok.reservation_id)).status == "released"
            with pytest.raises(LimitExceeded) as denied:
                await meter.check(user, "claude-haiku-4-5", "anthropic")
            assert (denied.value.metric, denied.value.limit, denied.value.upgrade_to) == ("calls:anthropic", 0, "basic")

    asyncio.run(main())


@pytest.mark.parametrize(
    "model,provider,response,usage_json",
    [
        ("gpt-4o-mini", "openai", providers.OPENAI_CHAT, providers.OPENAI_CHAT["usage"]),
        ("claude-haiku-4-5", "anthropic", providers.anthropic_sdk, providers.ANTHROPIC["usage"]),
        ("gemini-2.5-flash", "gemini", providers.gemini_sdk, providers.GEMINI["usageMetadata"]),
    ],
    ids=["openai", "anthropic-sdk", "gemini-sdk"],
)
def test_async_guard_records_at_the_quoted_cost(server, user, model, provider, response, usage_json):
    server.subscribe(user, "pro")
    fake = response() if callable(response) else response

    async def provider_call():
        await asyncio.sleep(0)
        return fake

    async def main() -> None:
        async with AsyncMeter(server.base, server.service_key) as meter:
            async with meter.guard(user, model, provider, estimated_input_tokens=2000) as g:
                resp = await provider_call()
                result = await g.record(resp)
            quote = await meter.quote(model, provider, usage=usage_json)
            assert result.events[0].cost_usd == quote.cost_usd and quote.priced
            assert (await meter.usage(user)).total_cost == quote.cost_usd
            assert uuid.UUID(g.event_id).version == 7

            resp2 = await meter.guard(user, model, provider).call(provider_call)
            assert resp2 is fake
            assert (await meter.usage(user)).total_cost == 2 * quote.cost_usd

    asyncio.run(main())


def test_async_guard_around_a_failing_call_releases(server, user):
    async def main() -> None:
        async with AsyncMeter(server.base, server.service_key) as meter:
            before = (await meter.check(user, "gemini-2.5-flash")).remaining
            with pytest.raises(ConnectionError):
                async with meter.guard(user, "gemini-2.5-flash", estimated_input_tokens=3000):
                    assert (await meter.check(user, "gemini-2.5-flash")).remaining["tokens:gemini"] == before["tokens:gemini"] - 3000
                    raise ConnectionError("provider refused")
            assert (await meter.check(user, "gemini-2.5-flash")).remaining == before

    asyncio.run(main())


def test_async_record_is_retried_after_a_dropped_answer(server, user):
    proxy = DroppingProxy(server.port)

    async def main() -> None:
        async with AsyncMeter(proxy.base, server.service_key) as meter:
            async with meter.guard(user, "gemini-2.5-flash") as g:
                r = await g.record(providers.GEMINI)
            assert r.events[0].status == "duplicate"

    try:
        asyncio.run(main())
        assert proxy.usage_posts == 2 and server.usage_calls(user) == 1
    finally:
        proxy.close()


def test_async_deny_and_allow_when_meter_is_stopped(own_server, user):
    async def main() -> None:
        deny = AsyncMeter(own_server.base, own_server.service_key, timeout=0.5, max_retries=0)
        allow = AsyncMeter(own_server.base, own_server.service_key, timeout=0.5, on_unavailable="allow", max_retries=0, retry_interval=3600)
        own_server.stop()
        ran = []
        with pytest.raises(MeterUnavailable):
            async with deny.guard(user, "gemini-2.5-flash"):
                ran.append(1)
        assert ran == []

        async with allow.guard(user, "gemini-2.5-flash", estimated_input_tokens=2000) as g:
            assert g.check.unavailable
            r = await g.record(providers.GEMINI)
        assert r.queued == 1 and allow.pending == 1
        assert await allow.flush() == 0

        own_server.start()
        await allow.aclose()  # flushes once
        assert allow.pending == 0
        await deny.aclose()
        assert [e["event_id"] for e in own_server.events(user)] == [g.event_id]

    asyncio.run(main())


def test_async_background_retry_delivers_the_queue(own_server, user):
    async def main() -> None:
        meter = AsyncMeter(own_server.base, own_server.service_key, timeout=0.5, on_unavailable="allow", max_retries=0, retry_interval=0.2)
        own_server.stop()
        r = await meter.record(Event(user_id=user, model="gemini-2.5-flash", input_tokens=100, output_tokens=10))
        assert r.queued == 1
        own_server.start()
        for _ in range(300):
            if not meter.pending:
                break
            await asyncio.sleep(0.1)
        assert meter.pending == 0
        await meter.aclose()
        assert own_server.usage_calls(user) == 1
        assert Decimal(own_server.events(user)[0]["cost_usd"]) == Decimal("0.000055")

    asyncio.run(main())


def test_async_org_and_team_scope_the_check_and_the_usage(server, user):
    org = f"org-{uuid.uuid4().hex[:12]}"
    status, body = server.admin("PUT", f"/budgets/{org}-daily", {
        "scope": {"kind": "org", "org_id": org}, "limits": {"calls:*": 1}, "window": "day", "mode": "hard",
    })
    assert status == 200, body

    async def main() -> None:
        async with AsyncMeter(server.base, server.service_key) as meter:
            assert (await meter.check(user, "gemini-2.5-flash", org_id=org)).allowed
            r = await meter.record(Event(user_id=user, model="gemini-2.5-flash", input_tokens=10, org_id=org))
            assert r.recorded == 1
            with pytest.raises(LimitExceeded) as denied:
                await meter.check(user, "gemini-2.5-flash", org_id=org, team_id="any")
            assert denied.value.details["scope"] == {"kind": "org", "org_id": org}
            # Without the org, the user's plan alone decides.
            assert (await meter.check(user, "gemini-2.5-flash")).allowed

    asyncio.run(main())
