"""Reading provider usage objects (no server)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

import providers
from meter_client import Usage, UsageError, read_usage


def test_openai_chat_completions():
    want = Usage(input_tokens=1200, output_tokens=300, cached_input_tokens=200, reasoning_tokens=50)
    assert read_usage(providers.OPENAI_CHAT) == want
    assert read_usage(providers.OPENAI_CHAT["usage"]) == want
    assert read_usage(providers.openai_chat_sdk()) == want
    assert read_usage(providers.openai_chat_sdk().usage) == want


def test_openai_responses():
    want = Usage(input_tokens=900, output_tokens=100, cached_input_tokens=300, reasoning_tokens=20)
    assert read_usage(providers.OPENAI_RESPONSES) == want
    assert read_usage(providers.openai_responses_sdk()) == want


def test_anthropic_adds_cache_reads_and_writes_to_the_prompt():
    want = Usage(input_tokens=1600, output_tokens=40, cached_input_tokens=1000, cache_write_tokens=500)
    assert read_usage(providers.ANTHROPIC) == want
    assert read_usage(providers.anthropic_sdk()) == want


def test_gemini_counts_thoughts_as_output():
    want = Usage(input_tokens=2000, output_tokens=400, cached_input_tokens=500, reasoning_tokens=100)
    assert read_usage(providers.GEMINI) == want
    assert read_usage(providers.GEMINI["usageMetadata"]) == want
    assert read_usage(providers.gemini_sdk()) == want  # snake_case attributes
    assert read_usage(providers.gemini_sdk().model_dump()) == want  # snake_case keys


def test_attribute_objects_and_missing_details():
    resp = SimpleNamespace(usage=SimpleNamespace(prompt_tokens=7, completion_tokens=3, prompt_tokens_details=None))
    assert read_usage(resp) == Usage(input_tokens=7, output_tokens=3)


def test_meter_counts_pass_through():
    u = Usage(input_tokens=10, output_tokens=2, cached_input_tokens=4)
    assert read_usage(u) == u
    assert read_usage({"usage": u.to_json()}) == u


def test_no_usage_and_bad_counts():
    assert read_usage({"text": "hi"}) is None
    assert read_usage(None) is None
    assert read_usage({"usage": "n/a"}) is None
    with pytest.raises(UsageError):
        read_usage({"usage": {"prompt_tokens": -1}})
    with pytest.raises(UsageError):
        read_usage({"usage": {"prompt_tokens": 1.5}})
    with pytest.raises(UsageError):
        read_usage({"usage": {"prompt_tokens": "12"}})
