"""Compatibility details third-party clients rely on: unversioned Gemini paths (LiteLLM),
a clear embeddings refusal, token counts that include tools, Anthropic stream and id shapes."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import anthropic
import openai
import pytest

from tests.conftest import Stack

CLAUDE = "claude-haiku-4-5-20251001"
GEMINI = "gemini-2.5-flash"
WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["C", "F"]}},
    "required": ["city"],
}
CLAUDE_TOOLS: Any = [{"name": "get_weather", "description": "Weather now", "input_schema": WEATHER}]
GEMINI_TOOLS = [
    {
        "functionDeclarations": [
            {"name": "get_weather", "description": "Weather now", "parameters": WEATHER}
        ]
    }
]
ASK: Any = [{"role": "user", "content": "What's the weather in Oslo?"}]
CALL_OSLO = '<tool_calls>[{"name": "get_weather", "arguments": {"city": "Oslo"}}]</tool_calls>'


def post_json(url: str, body: object) -> tuple[int, dict[str, Any]]:
    data = json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def get_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=5) as response:
        result: dict[str, Any] = json.loads(response.read())
        return result


# -- Gemini without a version segment ------------------------------------------------------


def test_gemini_unversioned_paths_are_served(stack: Stack, api_key: str) -> None:
    base = f"{stack.relay_url}/gemini/models"
    body = {"contents": [{"role": "user", "parts": [{"text": "no version"}]}]}
    status, answer = post_json(f"{base}/{GEMINI}:generateContent?key={api_key}", body)
    assert status == 200, answer
    assert answer["candidates"][0]["content"]["parts"][0]["text"] == "Echo: no version"
    status, counted = post_json(f"{base}/{GEMINI}:countTokens?key={api_key}", body)
    assert status == 200 and counted["totalTokens"] > 0
    names = [m["name"] for m in get_json(f"{base}?key={api_key}")["models"]]
    assert f"models/{GEMINI}" in names
    assert get_json(f"{base}/{GEMINI}?key={api_key}")["name"] == f"models/{GEMINI}"


# -- embeddings ----------------------------------------------------------------------------


def test_embeddings_say_1min_has_none(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.embeddings.create(model="text-embedding-3-small", input="hello")
    assert caught.value.code == "embeddings_not_supported"
    assert "embeddings" in caught.value.message and "1min.ai" in caught.value.message
    body = caught.value.body
    assert isinstance(body, dict) and body["type"] == "invalid_request_error"


# -- token counts include the tool contract ------------------------------------------------


def test_anthropic_count_tokens_counts_tools(
    claude: anthropic.Anthropic, stack: Stack, api_key: str
) -> None:
    plain = claude.messages.count_tokens(model=CLAUDE, messages=ASK).input_tokens
    with_tools = claude.messages.count_tokens(
        model=CLAUDE, messages=ASK, tools=CLAUDE_TOOLS
    ).input_tokens
    assert with_tools > plain + 20, "the tool contract sent upstream is counted"
    stack.set_faults(api_key, replies=["Sunny."])
    with claude.messages.stream(
        model=CLAUDE, max_tokens=100, tools=CLAUDE_TOOLS, messages=ASK
    ) as stream:
        start = next(e for e in stream if e.type == "message_start")
        final = stream.get_final_message()
    assert start.message.usage.input_tokens == with_tools, "the same prompt, the same count"
    reported = final.usage.input_tokens
    assert 0.5 * reported < with_tools < 1.5 * reported


def test_gemini_count_tokens_counts_tools(stack: Stack, api_key: str) -> None:
    url = f"{stack.relay_url}/gemini/v1beta/models/{GEMINI}:countTokens?key={api_key}"
    contents = [{"role": "user", "parts": [{"text": "What's the weather in Oslo?"}]}]
    status, plain = post_json(url, {"contents": contents})
    assert status == 200
    request = {"model": f"models/{GEMINI}", "contents": contents, "tools": GEMINI_TOOLS}
    status, with_tools = post_json(url, {"generateContentRequest": request})
    assert status == 200, with_tools
    assert with_tools["totalTokens"] > plain["totalTokens"] + 20
    generate = url.replace(":countTokens", ":generateContent")
    status, answer = post_json(generate, {"contents": contents, "tools": GEMINI_TOOLS})
    assert status == 200
    reported = answer["usageMetadata"]["promptTokenCount"]
    assert 0.5 * reported < with_tools["totalTokens"] < 1.5 * reported


# -- Anthropic shapes ----------------------------------------------------------------------


def test_anthropic_stream_of_a_bare_tool_call_has_no_empty_text_block(
    claude: anthropic.Anthropic, stack: Stack, api_key: str
) -> None:
    stack.set_faults(api_key, replies=[CALL_OSLO])
    with claude.messages.stream(
        model=CLAUDE, max_tokens=100, tools=CLAUDE_TOOLS, messages=ASK
    ) as stream:
        events = list(stream)
        final = stream.get_final_message()
    starts = [e for e in events if e.type == "content_block_start"]
    assert [s.content_block.type for s in starts] == ["tool_use"]
    assert starts[0].index == 0
    assert [b.type for b in final.content] == ["tool_use"]
    assert final.content[0].id.startswith("toolu_")
    kinds = [e.type for e in events]
    assert kinds[:2] == ["message_start", "content_block_start"]
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]


def test_anthropic_raw_stream_of_a_bare_tool_call(stack: Stack, api_key: str) -> None:
    stack.set_faults(api_key, replies=[CALL_OSLO])
    body = {"model": CLAUDE, "max_tokens": 100, "stream": True, "tools": CLAUDE_TOOLS}
    data = json.dumps({**body, "messages": ASK}).encode()
    request = urllib.request.Request(
        f"{stack.relay_url}/anthropic/v1/messages",
        data=data,
        headers={"Content-Type": "application/json", "x-api-key": api_key},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        raw = response.read().decode()
    names = [line[7:] for line in raw.splitlines() if line.startswith("event: ")]
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert '"text":""' not in raw


def test_anthropic_stream_text_then_tool_indexes_blocks(
    claude: anthropic.Anthropic, stack: Stack, api_key: str
) -> None:
    stack.set_faults(api_key, replies=["Checking.\n" + CALL_OSLO])
    with claude.messages.stream(
        model=CLAUDE, max_tokens=100, tools=CLAUDE_TOOLS, messages=ASK
    ) as stream:
        events = list(stream)
        final = stream.get_final_message()
    starts = [(e.index, e.content_block.type) for e in events if e.type == "content_block_start"]
    assert starts == [(0, "text"), (1, "tool_use")]
    assert final.content[0].type == "text" and final.content[0].text.strip() == "Checking."


def test_anthropic_tool_ids_and_cache_counts(
    claude: anthropic.Anthropic, stack: Stack, api_key: str
) -> None:
    stack.set_faults(api_key, replies=[CALL_OSLO])
    message = claude.messages.create(model=CLAUDE, max_tokens=100, tools=CLAUDE_TOOLS, messages=ASK)
    (use,) = [b for b in message.content if b.type == "tool_use"]
    assert use.id.startswith("toolu_")
    assert message.usage.cache_creation_input_tokens == 0
    assert message.usage.cache_read_input_tokens == 0
    with claude.messages.stream(
        model=CLAUDE, max_tokens=100, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        start = next(e for e in stream if e.type == "message_start")
        final = stream.get_final_message()
    assert start.message.usage.cache_creation_input_tokens == 0
    assert start.message.usage.cache_read_input_tokens == 0
    assert final.usage.cache_read_input_tokens == 0
