"""Fake provider responses, as the providers' REST APIs send them (plain JSON) and as the
official Python SDKs hand them over (their pydantic objects)."""

from __future__ import annotations

from typing import Any, Dict

OPENAI_CHAT: Dict[str, Any] = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1764000000,
    "model": "gpt-4o-mini",
    "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "Hello"}}],
    "usage": {
        "prompt_tokens": 1200,
        "completion_tokens": 300,
        "total_tokens": 1500,
        "prompt_tokens_details": {"cached_tokens": 200, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 50, "audio_tokens": 0},
    },
}

OPENAI_RESPONSES: Dict[str, Any] = {
    "id": "resp_1",
    "object": "response",
    "created_at": 1764000000,
    "model": "gpt-4o-mini",
    "output": [],
    "parallel_tool_calls": True,
    "tool_choice": "auto",
    "tools": [],
    "status": "completed",
    "usage": {
        "input_tokens": 900,
        "output_tokens": 100,
        "total_tokens": 1000,
        "input_tokens_details": {"cached_tokens": 300, "cache_write_tokens": 0},
        "output_tokens_details": {"reasoning_tokens": 20},
    },
}

ANTHROPIC: Dict[str, Any] = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-haiku-4-5",
    "content": [{"type": "text", "text": "Hello"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 100, "output_tokens": 40, "cache_read_input_tokens": 1000, "cache_creation_input_tokens": 500},
}

GEMINI: Dict[str, Any] = {
    "candidates": [{"content": {"role": "model", "parts": [{"text": "Hello"}]}, "finishReason": "STOP"}],
    "usageMetadata": {
        "promptTokenCount": 2000,
        "candidatesTokenCount": 300,
        "cachedContentTokenCount": 500,
        "thoughtsTokenCount": 100,
        "totalTokenCount": 2400,
    },
    "modelVersion": "gemini-2.5-flash",
}


def openai_chat_sdk() -> Any:
    from openai.types.chat import ChatCompletion

    return ChatCompletion.model_validate(OPENAI_CHAT)


def openai_responses_sdk() -> Any:
    from openai.types.responses import Response

    return Response.model_validate(OPENAI_RESPONSES)


def anthropic_sdk() -> Any:
    from anthropic.types import Message

    return Message.model_validate(ANTHROPIC)


def gemini_sdk() -> Any:
    from google.genai import types

    return types.GenerateContentResponse.model_validate(GEMINI)
