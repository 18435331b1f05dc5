"""Reading the usage object of a provider's response into meter's token counts.

Understood shapes (the official SDKs' objects, by attribute, and plain dicts/JSON alike):

- OpenAI Chat Completions ``usage``: ``prompt_tokens``, ``completion_tokens``,
  ``prompt_tokens_details.cached_tokens``, ``completion_tokens_details.reasoning_tokens``;
- OpenAI Responses API ``usage``: ``input_tokens``, ``output_tokens``,
  ``input_tokens_details.cached_tokens``, ``output_tokens_details.reasoning_tokens``;
- Anthropic Messages ``usage``: ``input_tokens`` (without cache reads and writes),
  ``output_tokens``, ``cache_read_input_tokens``, ``cache_creation_input_tokens``;
- Gemini generateContent ``usageMetadata`` (``usage_metadata`` in the Python SDK):
  ``promptTokenCount``, ``candidatesTokenCount``, ``cachedContentTokenCount``,
  ``thoughtsTokenCount``;
- meter's own counts (:class:`~meter_client.Usage`, or a dict with its field names).

The whole response or its usage object may be given. The arithmetic is the server's
(shared/src/usage/normalise.rs), so a recorded cost equals ``quote(usage=…)`` of the same
provider object.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional

from .errors import UsageError
from .types import Usage

_MISSING = object()


def _get(obj: Any, *names: str) -> Any:
    """The first of ``names`` that ``obj`` has (a key of a mapping or an attribute), not None."""
    for name in names:
        if isinstance(obj, Mapping):
            value = obj.get(name, None)
        else:
            value = getattr(obj, name, None)
        if value is not None:
            return value
    return None


def _count(obj: Any, *names: str) -> int:
    value = _get(obj, *names)
    if value is None:
        return 0
    if isinstance(value, bool):
        raise UsageError(f"usage count `{names[0]}` is not a number: {value!r}")
    if isinstance(value, float):
        if not value.is_integer():
            raise UsageError(f"usage count `{names[0]}` is not a whole number: {value!r}")
        value = int(value)
    if not isinstance(value, int):
        raise UsageError(f"usage count `{names[0]}` is not a number: {value!r}")
    if value < 0:
        raise UsageError(f"usage count `{names[0]}` is negative: {value}")
    return value


def _has(obj: Any, *names: str) -> bool:
    return _get(obj, *names) is not None


def _gemini(meta: Any) -> Usage:
    prompt = _count(meta, "promptTokenCount", "prompt_token_count")
    cached = _count(meta, "cachedContentTokenCount", "cached_content_token_count")
    candidates = _count(meta, "candidatesTokenCount", "candidates_token_count")
    thoughts = _count(meta, "thoughtsTokenCount", "thoughts_token_count")
    return Usage(input_tokens=prompt, output_tokens=candidates + thoughts, cached_input_tokens=cached, reasoning_tokens=thoughts)


def _usage_object(u: Any) -> Optional[Usage]:
    if isinstance(u, Usage):
        return u
    if isinstance(u, (str, bytes, int, float, list, tuple)):
        return None
    if _has(u, "cached_input_tokens", "cache_write_tokens"):
        return Usage(
            input_tokens=_count(u, "input_tokens"),
            output_tokens=_count(u, "output_tokens"),
            cached_input_tokens=_count(u, "cached_input_tokens"),
            cache_write_tokens=_count(u, "cache_write_tokens"),
            reasoning_tokens=_count(u, "reasoning_tokens"),
        )
    if _has(u, "promptTokenCount", "prompt_token_count", "candidatesTokenCount", "candidates_token_count", "totalTokenCount", "total_token_count"):
        return _gemini(u)
    if _has(u, "prompt_tokens", "completion_tokens"):
        prompt_details = _get(u, "prompt_tokens_details")
        completion_details = _get(u, "completion_tokens_details")
        return Usage(
            input_tokens=_count(u, "prompt_tokens"),
            output_tokens=_count(u, "completion_tokens"),
            cached_input_tokens=_count(prompt_details, "cached_tokens") if prompt_details is not None else 0,
            reasoning_tokens=_count(completion_details, "reasoning_tokens") if completion_details is not None else 0,
        )
    if _has(u, "input_tokens_details", "output_tokens_details"):
        input_details = _get(u, "input_tokens_details")
        output_details = _get(u, "output_tokens_details")
        return Usage(
            input_tokens=_count(u, "input_tokens"),
            output_tokens=_count(u, "output_tokens"),
            cached_input_tokens=_count(input_details, "cached_tokens") if input_details is not None else 0,
            reasoning_tokens=_count(output_details, "reasoning_tokens") if output_details is not None else 0,
        )
    if _has(u, "input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"):
        uncached = _count(u, "input_tokens")
        cache_read = _count(u, "cache_read_input_tokens")
        cache_write = _count(u, "cache_creation_input_tokens")
        return Usage(
            input_tokens=uncached + cache_read + cache_write,
            output_tokens=_count(u, "output_tokens"),
            cached_input_tokens=cache_read,
            cache_write_tokens=cache_write,
        )
    return None


def read_usage(response: Any) -> Optional[Usage]:
    """The token counts of a provider response (or of its usage object); ``None`` when it
    carries no usage object of a known shape. A malformed count raises ``UsageError``."""
    if response is None:
        return None
    if isinstance(response, Usage):
        return response
    meta = _get(response, "usageMetadata", "usage_metadata")
    if meta is not None:
        return _gemini(meta)
    usage = _get(response, "usage")
    if usage is not None:
        found = _usage_object(usage)
        if found is not None:
            return found
    return _usage_object(response)
