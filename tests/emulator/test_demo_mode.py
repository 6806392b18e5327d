"""``serve --demo`` shows every feature through every SDK: tool calls (plain and streamed),
the answer after a tool result, and structured output, with no prompt text leaking out."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from google import genai
from google.genai import types
from pydantic import BaseModel

from tests.emulator.demo_relay import demo_relay
from tests.gateway.procs import Process

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city", "unit"],
}
OPENAI_TOOLS: Any = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather in a city",
            "parameters": WEATHER_SCHEMA,
        },
    },
    {"type": "function", "function": {"name": "get_time", "description": "The time of day"}},
]
# The city is read from the question; the unit is the enum's first value.
QUESTIONS = {
    "What's the weather in Paris?": {"city": "Paris", "unit": "celsius"},
    "Weather for Oslo please": {"city": "Oslo", "unit": "celsius"},
    "Is it warm in New York?": {"city": "New York", "unit": "celsius"},
}
EXPECTED_ARGUMENTS = QUESTIONS["What's the weather in Paris?"]


class Forecast(BaseModel):
    city: str
    days: list[int]


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    with demo_relay(tmp_path_factory.mktemp("demo")) as started:
        yield started


@pytest.fixture
def client(relay: Process) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{relay.url}/v1", api_key="demo", max_retries=0) as c:
        yield c


@pytest.mark.parametrize("question", QUESTIONS)
def test_openai_chat_calls_the_fitting_tool_then_reports_its_result(
    client: openai.OpenAI, question: str
) -> None:
    expected = QUESTIONS[question]
    messages: Any = [{"role": "user", "content": question}]
    reply = client.chat.completions.create(
        model="gpt-4o-mini", messages=messages, tools=OPENAI_TOOLS
    )
    message = reply.choices[0].message
    assert reply.choices[0].finish_reason == "tool_calls", message
    assert message.tool_calls and message.tool_calls[0].type == "function"
    call = message.tool_calls[0]
    assert (call.function.name, json.loads(call.function.arguments)) == (
        "get_weather",
        expected,
    )
    assert "{" not in (message.content or ""), "the call is not left in the text"
    messages += [message, {"role": "tool", "tool_call_id": call.id, "content": "21 °C"}]
    final = client.chat.completions.create(
        model="gpt-4o-mini", messages=messages, tools=OPENAI_TOOLS
    )
    assert final.choices[0].message.content == "Here is what get_weather returned: 21 °C"


@pytest.mark.parametrize("question", QUESTIONS)
def test_openai_stream_carries_the_call(client: openai.OpenAI, question: str) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": question}],
        tools=OPENAI_TOOLS,
        stream=True,
    )
    text, names, arguments = "", [], ""
    for chunk in stream:
        delta = chunk.choices[0].delta
        text += delta.content or ""
        for call in delta.tool_calls or []:
            names += [call.function.name] if call.function and call.function.name else []
            arguments += call.function.arguments or "" if call.function else ""
    assert names == ["get_weather"] and json.loads(arguments) == QUESTIONS[question]
    assert "{" not in text and "tool_calls" not in text, text


def test_openai_responses_function_call_and_structured_output(client: openai.OpenAI) -> None:
    tools: Any = [{"type": "function", "name": "get_weather", "parameters": WEATHER_SCHEMA}]
    response = client.responses.create(model="gpt-4o-mini", input="Weather in Paris?", tools=tools)
    calls = [item for item in response.output if item.type == "function_call"]
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [
        ("get_weather", EXPECTED_ARGUMENTS)
    ]
    parsed = client.responses.parse(model="gpt-4o-mini", input="A forecast", text_format=Forecast)
    assert parsed.output_parsed == Forecast(city="Paris", days=[1])


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_tool_use(relay: Process, stream: bool) -> None:
    tools: Any = [{"name": "get_weather", "description": "Weather", "input_schema": WEATHER_SCHEMA}]
    question: Any = [{"role": "user", "content": "What's the weather in Paris?"}]
    with anthropic.Anthropic(base_url=f"{relay.url}/anthropic", api_key="demo") as claude:
        ask: Any = {"model": "claude-haiku-4-5-20251001", "max_tokens": 300, "tools": tools}
        if stream:
            with claude.messages.stream(**ask, messages=question) as events:
                message = events.get_final_message()
        else:
            message = claude.messages.create(**ask, messages=question)
        uses = [block for block in message.content if block.type == "tool_use"]
        assert message.stop_reason == "tool_use"
        assert [(u.name, u.input) for u in uses] == [("get_weather", EXPECTED_ARGUMENTS)]
        result = {"type": "tool_result", "tool_use_id": uses[0].id, "content": "sunny"}
        history: Any = [
            *question,
            {"role": "assistant", "content": message.content},
            {"role": "user", "content": [result]},
        ]
        final = claude.messages.create(**ask, messages=history)
    texts = [block.text for block in final.content if block.type == "text"]
    assert texts == ["Here is what get_weather returned: sunny"], final.content


def get_weather(city: str, unit: str) -> str:
    """Current weather in a city.

    Args:
        city: The city.
        unit: celsius or fahrenheit.
    """
    return f"sunny in {city}, 21 degrees {unit}"


def test_gemini_function_calling_and_json_schema(relay: Process) -> None:
    gemini = genai.Client(
        api_key="demo", http_options=types.HttpOptions(base_url=f"{relay.url}/gemini")
    )
    with gemini:
        manual = types.GenerateContentConfig(
            tools=[get_weather],
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        )
        reply = gemini.models.generate_content(
            model="gemini-2.5-flash", contents="Weather in Paris?", config=manual
        )
        assert reply.function_calls and reply.function_calls[0].name == "get_weather"
        chat = gemini.chats.create(
            model="gemini-2.5-flash", config=types.GenerateContentConfig(tools=[get_weather])
        )
        answer = chat.send_message("Weather in Paris?")  # the SDK runs get_weather itself
        expected = '{"result":"sunny in Paris, 21 degrees celsius"}'
        assert answer.text == f"Here is what get_weather returned: {expected}"
        structured = gemini.models.generate_content(
            model="gemini-2.5-flash",
            contents="A forecast",
            config=types.GenerateContentConfig(
                response_mime_type="application/json", response_schema=Forecast
            ),
        )
    assert structured.parsed == Forecast(city="Paris", days=[1])


def test_plain_questions_get_short_answers(client: openai.OpenAI, relay: Process) -> None:
    hello = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello there"}]
    )
    assert hello.choices[0].message.content == "Hello! How can I help you today?"
    assert Path(relay.log).read_text().count("error") == 0, "the demo logged no error"
