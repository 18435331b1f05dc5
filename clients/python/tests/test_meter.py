"""The synchronous client against a real `meter serve`."""

from __future__ import annotations

import subprocess
import time
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

import providers
from conftest import CountingServer, DroppingProxy
from meter_client import (
    ApiError,
    Event,
    LimitExceeded,
    Meter,
    MeterUnavailable,
    Usage,
    UsageError,
)


def meter_for(server, **kw) -> Meter:
    return Meter(server.base, server.service_key, **kw)


def tiny_plan(server, user: str, limits) -> str:
    name = f"tiny-{uuid.uuid4().hex[:8]}"
    server.put_plan(name, limits)
    server.subscribe(user, name)
    return name


# --- check ---------------------------------------------------------------------------------


def test_allowed_check_reports_remaining_and_holds_a_reservation(server, user):
    with meter_for(server) as meter:
        before = meter.check(user, "gemini-2.5-flash", "gemini", estimated_input_tokens=100)
        assert before.allowed and not before.unavailable
        assert before.plan == "free"
        assert before.reservation_id is None
        assert before.remaining["calls:gemini"] == 100
        assert before.remaining["cost_usd"] == Decimal("2")

        held = meter.check(user, "gemini-2.5-flash", "gemini", estimated_input_tokens=100, reserve=True)
        assert held.reservation_id and held.expires_at and held.expires_at > datetime.now(timezone.utc)
        assert held.remaining["calls:gemini"] == 99
        assert held.remaining["tokens:gemini"] == 100_000 - 100
        assert held.estimated_cost_usd == Decimal("0.00003")

        assert meter.release(held.reservation_id).status == "released"
        assert meter.release(held.reservation_id).status == "released"  # idempotent
        assert meter.check(user, "gemini-2.5-flash", "gemini").remaining["calls:gemini"] == 100


def test_denied_check_raises_limit_exceeded_with_the_429_details(server, user):
    with meter_for(server) as meter:
        with pytest.raises(LimitExceeded) as denied:
            meter.check(user, "gpt-4o-mini", "openai")  # the Free plan allows no OpenAI call
        e = denied.value
        assert (e.status, e.code) == (429, "usage_limit_exceeded")
        assert (e.metric, e.used, e.limit, e.requested, e.upgrade_to) == ("calls:openai", 0, 0, 1, "basic")
        assert e.period_resets_at is not None and e.period_resets_at.day == 1
        assert e.retry_after is not None and e.retry_after > 0


def test_a_tiny_plan_denies_the_call_past_its_limit(server, user):
    tiny_plan(server, user, {"calls:gemini": 1, "cost_usd": "5"})
    with meter_for(server) as meter:
        meter.check(user, "gemini-2.5-flash")  # provider detected from the model
        r = meter.record(Event(user_id=user, model="gemini-2.5-flash", input_tokens=10, output_tokens=5, timestamp=datetime.now(timezone.utc)))
        assert r.recorded == 1 and r.events[0].status == "recorded"
        with pytest.raises(LimitExceeded) as denied:
            meter.check(user, "gemini-2.5-flash")
        assert (denied.value.metric, denied.value.used, denied.value.limit, denied.value.requested) == ("calls:gemini", 1, 1, 1)


def test_other_api_errors_carry_code_message_and_details(server, user):
    with meter_for(server) as meter:
        with pytest.raises(ApiError) as e:
            meter.release("rsv_does_not_exist")
        assert (e.value.status, e.value.code) == (404, "not_found")
        with pytest.raises(ApiError) as e:
            meter.record({"user_id": user, "provider": "gemini", "model": "gemini-2.5-flash", "input_tokens": -1})
        assert (e.value.status, e.value.code) == (422, "invalid_events")
        assert e.value.details["events"][0]["errors"]
    with Meter(server.base, "mk_not_a_key") as bad:
        with pytest.raises(ApiError) as e:
            bad.plans()
        assert (e.value.status, e.value.code) == (401, "unauthorized")


# --- guard ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model,provider,response,usage_json",
    [
        ("gpt-4o-mini", "openai", providers.OPENAI_CHAT, providers.OPENAI_CHAT["usage"]),
        ("gpt-4o-mini", "openai", providers.OPENAI_RESPONSES, providers.OPENAI_RESPONSES["usage"]),
        ("claude-haiku-4-5", "anthropic", providers.ANTHROPIC, providers.ANTHROPIC["usage"]),
        ("gemini-2.5-flash", "gemini", providers.GEMINI, providers.GEMINI["usageMetadata"]),
        ("gpt-4o-mini", "openai", providers.openai_chat_sdk, providers.OPENAI_CHAT["usage"]),
        ("gpt-4o-mini", "openai", providers.openai_responses_sdk, providers.OPENAI_RESPONSES["usage"]),
        ("claude-haiku-4-5", "anthropic", providers.anthropic_sdk, providers.ANTHROPIC["usage"]),
        ("gemini-2.5-flash", "gemini", providers.gemini_sdk, providers.GEMINI["usageMetadata"]),
    ],
    ids=["openai-chat", "openai-responses", "anthropic", "gemini", "openai-chat-sdk", "openai-responses-sdk", "anthropic-sdk", "gemini-sdk"],
)
def test_guard_records_the_provider_usage_at_the_quoted_cost(server, user, model, provider, response, usage_json):
    server.subscribe(user, "pro")
    fake = response() if callable(response) else response
    with meter_for(server) as meter:
        with meter.guard(user, model, provider, estimated_input_tokens=2000, estimated_output_tokens=500) as g:
            assert g.reservation_id
            resp = fake  # the provider call
            result = g.record(resp)
        assert result.recorded == 1 and result.events[0].status == "recorded"
        quote = meter.quote(model, provider, usage=usage_json)
        assert quote.priced and quote.cost_usd is not None and quote.cost_usd > 0
        assert result.events[0].cost_usd == quote.cost_usd
        view = meter.usage(user)
        assert view.total_calls == 1 and view.total_cost == quote.cost_usd
        # The event went in under a UUIDv7 and settled the reservation.
        (event,) = server.events(user)
        assert event["event_id"] == g.event_id and uuid.UUID(g.event_id).version == 7
        assert meter.release(g.reservation_id).status == "settled"


def test_guard_call_form_returns_the_response_and_records_it(server, user):
    with meter_for(server) as meter:
        resp = meter.guard(user, "gemini-2.5-flash", estimated_input_tokens=2000).call(lambda: providers.GEMINI)
        assert resp is providers.GEMINI
        assert meter.usage(user).total_tokens == 2400


def test_guard_around_a_failing_call_releases_its_reservation(server, user):
    with meter_for(server) as meter:
        before = meter.check(user, "gemini-2.5-flash", "gemini").remaining
        with pytest.raises(TimeoutError):
            with meter.guard(user, "gemini-2.5-flash", "gemini", estimated_input_tokens=5000, estimated_output_tokens=1000) as g:
                held = meter.check(user, "gemini-2.5-flash", "gemini").remaining
                assert held["tokens:gemini"] == before["tokens:gemini"] - 6000  # the hold is real
                raise TimeoutError("provider timed out")
        assert meter.check(user, "gemini-2.5-flash", "gemini").remaining == before
        assert meter.release(g.reservation_id).status == "released"
        assert meter.usage(user).total_calls == 0


def test_a_response_without_usage_releases_and_raises(server, user):
    with meter_for(server) as meter:
        before = meter.check(user, "gemini-2.5-flash").remaining
        with pytest.raises(UsageError):
            with meter.guard(user, "gemini-2.5-flash", estimated_input_tokens=10) as g:
                g.record({"text": "no usage here"})
        assert meter.check(user, "gemini-2.5-flash").remaining == before


def test_guard_for_a_search_records_its_units(server, user):
    with meter_for(server) as meter:
        with meter.guard(user, provider="tavily", searches=1) as g:
            g.record({"results": []})
        assert g.result is not None and g.result.events[0].cost_usd == Decimal("0.008")
        assert meter.usage(user).provider_breakdown["tavily"].calls == 1


def test_record_is_retried_after_a_dropped_answer_and_counted_once(server, user):
    proxy = DroppingProxy(server.port)
    try:
        with Meter(proxy.base, server.service_key) as meter:
            with meter.guard(user, "gemini-2.5-flash", estimated_input_tokens=2000) as g:
                r = g.record(providers.GEMINI)
        assert proxy.dropped == 1 and proxy.usage_posts == 2
        # The first attempt was recorded; its retry, under the same id, is a duplicate.
        assert r.recorded == 0 and r.events[0].status == "duplicate"
        assert [e["event_id"] for e in server.events(user)] == [g.event_id]
        assert server.usage_calls(user) == 1
    finally:
        proxy.close()


def test_explicit_record_retries_under_the_same_event_id(server, user):
    proxy = DroppingProxy(server.port)
    try:
        with Meter(proxy.base, server.service_key) as meter:
            ev = Event(user_id=user, provider="gemini", model="gemini-2.5-flash", input_tokens=100, output_tokens=10)
            r = meter.record([ev])
        assert proxy.usage_posts == 2 and r.events[0].event_id == ev.event_id and r.events[0].status == "duplicate"
        assert server.usage_calls(user) == 1
    finally:
        proxy.close()


# --- meter unavailable ---------------------------------------------------------------------


def test_deny_raises_when_meter_is_stopped_and_the_call_never_runs(own_server, user):
    meter = Meter(own_server.base, own_server.service_key, timeout=0.5, on_unavailable="deny", max_retries=1)
    assert meter.check(user, "gemini-2.5-flash").allowed
    own_server.stop()
    calls = []
    with pytest.raises(MeterUnavailable):
        with meter.guard(user, "gemini-2.5-flash", estimated_input_tokens=10):
            calls.append("provider")
    assert calls == []
    with pytest.raises(MeterUnavailable) as e:
        meter.record(Event(user_id=user, model="gemini-2.5-flash", input_tokens=1))
    assert len(e.value.events) == 1 and meter.pending == 0
    meter.close()


def test_deny_still_keeps_the_usage_of_a_call_that_already_ran(own_server, user):
    meter = Meter(own_server.base, own_server.service_key, timeout=0.5, max_retries=0, retry_interval=3600)
    with meter.guard(user, "gemini-2.5-flash", estimated_input_tokens=10) as g:
        own_server.stop()  # meter goes away while the provider answers
        r = g.record(providers.GEMINI)
    assert r.queued == 1 and meter.pending == 1
    own_server.start()
    assert meter.flush() == 1 and meter.pending == 0
    assert own_server.usage_calls(user) == 1
    meter.close()


def test_allow_lets_the_call_go_and_delivers_its_usage_once_after_a_restart(own_server, user):
    meter = Meter(own_server.base, own_server.service_key, timeout=0.5, on_unavailable="allow", max_retries=1, retry_interval=3600)
    own_server.stop()
    with meter.guard(user, "gemini-2.5-flash", estimated_input_tokens=2000) as g:
        assert g.check is not None and g.check.allowed and g.check.unavailable and g.reservation_id is None
        r = g.record(providers.GEMINI)
    assert r.queued == 1 and meter.pending == 1
    assert meter.flush() == 0 and meter.pending == 1  # still down: kept

    own_server.start()
    assert meter.flush() == 1 and meter.pending == 0
    assert meter.flush() == 0
    meter.close()
    assert [e["event_id"] for e in own_server.events(user)] == [g.event_id]
    assert own_server.usage_calls(user) == 1


def test_allow_retries_the_queue_in_the_background(own_server, user):
    meter = Meter(own_server.base, own_server.service_key, timeout=0.5, on_unavailable="allow", max_retries=0, retry_interval=0.2)
    own_server.stop()
    assert meter.check(user, "gemini-2.5-flash").unavailable
    r = meter.record([Event(user_id=user, model="gemini-2.5-flash", input_tokens=10, output_tokens=1) for _ in range(3)])
    assert r.queued == 3
    own_server.start()
    deadline = time.monotonic() + 30
    while meter.pending and time.monotonic() < deadline:
        time.sleep(0.1)
    assert meter.pending == 0
    meter.close()
    assert own_server.usage_calls(user) == 3


def test_the_queue_is_bounded(own_server, user):
    meter = Meter(own_server.base, own_server.service_key, timeout=0.5, on_unavailable="allow", max_retries=0, queue_size=2, retry_interval=3600)
    own_server.stop()
    events = [Event(user_id=user, model="gemini-2.5-flash", input_tokens=i + 1) for i in range(3)]
    meter.record(events)
    assert meter.pending == 2 and meter.dropped == 1
    own_server.start()
    meter.close()
    assert sorted(e["event_id"] for e in own_server.events(user)) == sorted(e.event_id for e in events[1:])


# --- reads ---------------------------------------------------------------------------------


def test_read_routes_return_typed_results(server, user):
    plan = tiny_plan(server, user, {"calls:gemini": 1})
    with meter_for(server) as meter:
        meter.record(Event(user_id=user, model="gemini-2.5-flash", input_tokens=1000, output_tokens=100, latency_ms=120))

        plans = meter.plans()
        assert {"free", "basic", "pro", "enterprise", plan} <= {p.name for p in plans}
        free = next(p for p in plans if p.name == "free")
        assert free.monthly_price_usd == Decimal("0") and free.limits["calls:gemini"] == 100

        pricing = meter.pricing("gemini")
        flash = next(p for p in pricing.prices if p.model == "gemini-2.5-flash")
        assert flash.prices["input_token"] == Decimal("0.0000003") and flash.provider == "gemini"
        with pytest.raises(ApiError) as e:
            meter.pricing("no-such-provider")
        assert e.value.code == "unknown_provider"

        view = meter.usage(user)
        assert view.plan == plan and view.total_calls == 1 and view.total_tokens == 1100
        assert view.total_cost == Decimal("0.00055") and view.usage_status == "limit_reached"
        assert view.provider_breakdown["gemini"].avg_response_time_ms == 120.0
        assert meter.usage(user, billing_period=view.period.name).total_calls == 1

        trends = meter.trends(user, months=3)
        assert trends.months == 3 and len(trends.periods) == 3 and trends.total_calls[-1] == 1
        assert trends.total_cost[-1] == Decimal("0.00055")

        alerts = meter.alerts(user)
        assert {a.key for a in alerts.alerts} == {"calls:gemini@80", "calls:gemini@90", "calls:gemini@100"}
        assert alerts.unread_count == 3
        assert meter.mark_alert_read(alerts.alerts[0].id).read
        assert meter.alerts(user, unread_only=True).unread_count == 2
        assert len(meter.alerts(user, limit=1).alerts) == 1

        dash = meter.dashboard(user)
        assert dash.plan_name == plan and dash.current_usage.total_calls == 1
        assert dash.summary.plan == plan and dash.alerts.unread_count == 2
        assert dash.trends.total_calls[-1] == 1

        assert meter.billing(user).invoices == []
        sub = meter.subscription(user)
        assert sub.subscription is not None and sub.subscription.plan == plan and sub.status == "active"
        assert meter.subscription(f"{user}-none").subscription is None


def test_an_invoice_carries_its_exact_total_and_rounding(server, user):
    # A call of the previous month, closed by `meter aggregate` as the scheduled job would.
    month = datetime.now(timezone.utc).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    with meter_for(server) as meter:
        meter.record(Event(user_id=user, model="gemini-2.5-flash", input_tokens=1000, output_tokens=100,
                           timestamp=month - timedelta(hours=2)))
        subprocess.run([str(server.bin), "aggregate", "--grace-minutes", "0", "--db", str(server.db)],
                       check=True, capture_output=True)
        invoices = meter.billing(user).invoices
        assert len(invoices) == 1
        inv = invoices[0]
        assert inv.usage_usd == Decimal("0.00055") and inv.total_usd == Decimal("0")
        assert inv.extra["exact_total_usd"] == "0.00055"
        assert inv.extra["rounding"] == "total rounded to cents, half away from zero"


def test_ids_with_reserved_characters_reach_the_right_user(server):
    user = f"team/a+b@x.com:{uuid.uuid4().hex[:6]}="
    with meter_for(server) as meter:
        meter.record(Event(user_id=user, model="gemini-2.5-flash", input_tokens=10))
        assert meter.usage(user).user_id == user and meter.usage(user).total_calls == 1


# --- bad input: an error at construction, never a request ----------------------------------


@pytest.mark.parametrize("base_url", ["", "   ", "127.0.0.1:8080", "ftp://host", "http://", "http://host:99999", "http://host/?q=1", None])
def test_invalid_base_urls_are_refused(base_url):
    with pytest.raises(ValueError):
        Meter(base_url, "mk_key")  # type: ignore[arg-type]


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf"), "2", True])
def test_non_positive_timeouts_are_refused(timeout):
    with pytest.raises(ValueError):
        Meter("http://127.0.0.1:8080", "mk_key", timeout=timeout)


def test_other_bad_arguments_are_refused_without_a_request():
    counting = CountingServer()
    try:
        with pytest.raises(ValueError):
            Meter(counting.base, "")
        with pytest.raises(ValueError):
            Meter(counting.base, "mk_key", on_unavailable="maybe")
        meter = Meter(counting.base, "mk_key")
        for bad in (
            lambda: meter.guard("", "gemini-2.5-flash"),
            lambda: meter.guard(None, "gemini-2.5-flash"),  # type: ignore[arg-type]
            lambda: meter.guard("alice"),
            lambda: meter.guard("alice", "gemini-2.5-flash", estimated_input_tokens=-1),
            lambda: meter.guard("alice", "gemini-2.5-flash", team_id="t"),
            lambda: meter.check("", "gemini-2.5-flash"),
            lambda: meter.record([]),
            lambda: meter.record({"model": "gemini-2.5-flash"}),
            lambda: meter.usage(""),
        ):
            with pytest.raises(ValueError):
                bad()
        meter.close()
        assert counting.requests == 0
    finally:
        counting.close()


def test_org_and_team_are_sent_only_when_set():
    body = Meter.check_body("alice", "m", None, None, None, {}, False, None, None, None)
    assert "org_id" not in body and "team_id" not in body
    body = Meter.check_body("alice", "m", None, None, None, {}, True, None, "acme", "search")
    assert (body["org_id"], body["team_id"], body["reserve"]) == ("acme", "search", True)
    assert "org_id" not in Event(user_id="alice").to_json()


def test_the_api_key_never_appears_in_repr():
    meter = Meter("http://127.0.0.1:8080", "mk_secret_value")
    assert "mk_secret_value" not in repr(meter)
    meter.close()


def test_guard_usage_object_can_be_given_explicitly(server, user):
    with meter_for(server) as meter:
        with meter.guard(user, "gemini-2.5-flash", estimated_input_tokens=100) as g:
            g.record(usage=Usage(input_tokens=100, output_tokens=10, cached_input_tokens=40))
        q = meter.quote("gemini-2.5-flash", input_tokens=100, output_tokens=10, cached_input_tokens=40)
        assert g.result is not None and g.result.events[0].cost_usd == q.cost_usd


def test_org_and_team_scope_the_check_the_usage_and_the_quote(server, user):
    org = f"org-{uuid.uuid4().hex[:12]}"
    status, body = server.admin("PUT", f"/budgets/{org}-red-rate", {
        "scope": {"kind": "team", "org_id": org, "team_id": "red"},
        "limits": {"calls:*": 2}, "window": "minute", "mode": "hard",
    })
    assert status == 200, body
    with meter_for(server) as meter:
        first = meter.check(user, "gemini-2.5-flash", org_id=org, team_id="red")
        assert first.allowed
        meter.check(user, "gemini-2.5-flash", org_id=org, team_id="red")
        with pytest.raises(LimitExceeded) as denied:
            meter.check(user, "gemini-2.5-flash", org_id=org, team_id="red")
        d = denied.value
        assert (d.metric, d.used, d.limit) == ("calls:*", 2, 2)
        assert d.details["scope"] == {"kind": "team", "org_id": org, "team_id": "red"}
        assert d.details["budget_id"] == f"{org}-red-rate"
        assert d.retry_after is not None and 1 <= d.retry_after <= 60
        # Another team of the org is not limited by red's budget.
        assert meter.check(user, "gemini-2.5-flash", org_id=org, team_id="blue").allowed
        r = meter.record(Event(user_id=user, model="gemini-2.5-flash", input_tokens=10, org_id=org, team_id="red"))
        assert r.recorded == 1
        assert meter.quote("gemini-2.5-flash", input_tokens=10, org_id=org).cost_usd > 0
    # The org's usage counts the event (a read the client does not wrap yet).
    status, body = server.admin("GET", f"/org/{org}/usage")
    assert status == 200 and body["data"]["total_calls"] == 1, body
    status, body = server.admin("GET", f"/org/{org}/members")
    assert [m["user_id"] for m in body["data"]["users"]] == [user], body
    assert [t["team_id"] for t in body["data"]["teams"]] == ["red"], body
