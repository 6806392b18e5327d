"""OpenAI Responses objects: the response, its output items and usage, in every state."""

from __future__ import annotations

import time
from typing import Any, Literal, TypeAlias

from onemin_relay.core.errors import RateLimited, RelayError
from onemin_relay.core.types import ChatResult, FinishReason, ResponseFormat, ToolCall, Usage
from onemin_relay.surfaces.openai.responses_parse import ResponseShell

Status: TypeAlias = Literal["in_progress", "completed", "incomplete", "failed"]
ItemStatus: TypeAlias = Literal["in_progress", "completed", "incomplete"]

_INCOMPLETE_REASONS: dict[FinishReason, str] = {
    "length": "max_output_tokens",
    "content_filter": "content_filter",
}


# -- objects ------------------------------------------------------------------------------


def usage_body(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.total_tokens,
    }


def format_body(fmt: ResponseFormat | None) -> dict[str, Any]:
    """``text.format`` as the response echoes it (the older ``response_format`` included)."""
    if fmt is None:
        return {"type": "text"}
    if fmt.kind != "json_schema":
        return {"type": fmt.kind}
    body = {"type": "json_schema", "name": fmt.name, "schema": fmt.schema, "strict": fmt.strict}
    if fmt.description is not None:
        body["description"] = fmt.description
    return body


def text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message_item(shell: ResponseShell, text: str | None, status: ItemStatus) -> dict[str, Any]:
    """The assistant's output message; ``text=None`` gives it no content part yet."""
    return {
        "id": shell.message_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [] if text is None else [text_part(text)],
    }


def function_call_item(call: ToolCall, status: ItemStatus = "completed") -> dict[str, Any]:
    return {
        "id": "fc_" + call.id.removeprefix("call_"),
        "type": "function_call",
        "status": status,
        "call_id": call.id,
        "name": call.name,
        "arguments": call.arguments if status == "completed" else "",
    }


def output_items(
    shell: ResponseShell, text: str, calls: tuple[ToolCall, ...], status: ItemStatus
) -> list[dict[str, Any]]:
    """The message (when there is text, or nothing else) and one item per tool call."""
    items = [message_item(shell, text, status)] if text or not calls else []
    return items + [function_call_item(call) for call in calls]


def error_object(exc: RelayError) -> dict[str, str]:
    """``response.error``: the SDK types ``code`` as a closed set, so map onto it."""
    code = "rate_limit_exceeded" if isinstance(exc, RateLimited) else "server_error"
    return {"code": code, "message": exc.message}


def response_body(
    shell: ResponseShell,
    status: Status,
    output: list[dict[str, Any]],
    usage: Usage | None = None,
    *,
    error: RelayError | None = None,
    finish_reason: FinishReason | None = None,
) -> dict[str, Any]:
    """The ``response`` object in any state of its life."""
    incomplete = _INCOMPLETE_REASONS.get(finish_reason) if finish_reason else None
    return {
        "id": shell.id,
        "object": "response",
        "created_at": shell.created_at,
        "status": status,
        "background": False,
        "completed_at": int(time.time()) if status == "completed" else None,
        "error": error_object(error) if error is not None else None,
        "incomplete_details": {"reason": incomplete} if incomplete else None,
        "instructions": shell.instructions,
        "max_output_tokens": shell.max_output_tokens,
        "metadata": shell.metadata,
        "model": shell.model,
        "output": output,
        "parallel_tool_calls": shell.parallel_tool_calls,
        "previous_response_id": shell.previous_response_id,
        "reasoning": {"effort": shell.reasoning_effort, "summary": None},
        "store": shell.store,
        "temperature": None,
        "text": {"format": format_body(shell.text_format)},
        "tool_choice": shell.tool_choice,
        "tools": list(shell.tools),
        "top_p": None,
        "truncation": "disabled",
        "usage": usage_body(usage) if usage is not None else None,
        "user": None,
    }


def final_status(reason: FinishReason) -> Literal["completed", "incomplete"]:
    return "incomplete" if reason in _INCOMPLETE_REASONS else "completed"


def render_result(shell: ResponseShell, result: ChatResult) -> dict[str, Any]:
    status = final_status(result.finish_reason)
    output = output_items(shell, result.text, result.tool_calls, status)
    return response_body(shell, status, output, result.usage, finish_reason=result.finish_reason)
