"""Tool calling and JSON formats through LiteLLM: LiteLLM's own tool-call objects come back,
and a pydantic ``response_format`` gets schema-valid JSON (repaired when the model slips)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import litellm
import pydantic

from tests.conftest import Stack

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather now",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]
Asker = Callable[..., Any]
CALL_OSLO = '<tool_calls>[{"name": "get_weather", "arguments": {"city": "Oslo"}}]</tool_calls>'
ASK = [{"role": "user", "content": "What's the weather in Oslo?"}]


class Weather(pydantic.BaseModel):
    city: str
    celsius: int


def prompts(stack: Stack, api_key: str) -> list[str]:
    return [r["body"]["promptObject"]["prompt"] for r in stack.chat_requests(api_key)]


def test_tool_loop_call_result_answer(ask: Asker, stack: Stack, api_key: str) -> None:
    stack.set_faults(api_key, replies=[CALL_OSLO, "It is raining in Oslo."])
    first = ask(
        model="one_min/gpt-4o",
        messages=ASK,
        tools=TOOLS,
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert isinstance(call, litellm.ChatCompletionMessageToolCall)
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Oslo"}

    second = ask(
        model="one_min/gpt-4o",
        messages=[
            *ASK,
            choice.message,  # LiteLLM's own Message object, as agent loops hand it back
            {"role": "tool", "tool_call_id": call.id, "content": "rain, 7 °C"},
        ],
        tools=TOOLS,
    )
    assert second.choices[0].message.content == "It is raining in Oslo."
    assert second.choices[0].finish_reason == "stop"
    history = prompts(stack, api_key)[1]
    assert "rain, 7 °C" in history and "get_weather" in history


async def test_streamed_tool_call_async(aask: Asker, stack: Stack, api_key: str) -> None:
    stack.set_faults(api_key, replies=["Let me check.\n" + CALL_OSLO])
    stream = await aask(
        model="one_min/gpt-4o",
        messages=ASK,
        tools=TOOLS,
        stream=True,
    )
    chunks = [c async for c in stream]
    calls = [t for c in chunks if c.choices for t in c.choices[0].delta.tool_calls or ()]
    assert [c.function.name for c in calls] == ["get_weather"]
    assert json.loads(calls[0].function.arguments) == {"city": "Oslo"}
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip() == "Let me check."
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_response_format_pydantic_model(ask: Asker, stack: Stack, api_key: str) -> None:
    stack.set_faults(api_key, replies=['{"city": "Oslo", "celsius": 7}'])
    response = ask(
        messages=ASK,
        response_format=Weather,
    )
    assert Weather.model_validate_json(response.choices[0].message.content) == Weather(
        city="Oslo", celsius=7
    )
    assert '"celsius"' in prompts(stack, api_key)[0], "the schema is put to the model"


def test_response_format_repairs_a_bad_answer(ask: Asker, stack: Stack, api_key: str) -> None:
    stack.set_faults(api_key, replies=['{"city": "Oslo"}', '{"city": "Oslo", "celsius": 7}'])
    response = ask(
        messages=ASK,
        response_format=Weather,
    )
    assert Weather.model_validate_json(response.choices[0].message.content).celsius == 7
    assert len(prompts(stack, api_key)) == 2, "one repair call showed the model its error"


def test_response_format_json_object_streamed(ask: Asker, stack: Stack, api_key: str) -> None:
    stack.set_faults(api_key, replies=['Sure: {"ok": true}'])
    chunks = ask(
        messages=[{"role": "user", "content": "answer in JSON"}],
        response_format={"type": "json_object"},
        stream=True,
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert json.loads(text) == {"ok": True}
