"""``litellm.completion`` / ``acompletion`` on ``one_min/<model>``, whole and streamed."""

from __future__ import annotations

import base64
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import litellm
import pytest

import onemin_relay.litellm as one_min
from onemin_relay.litellm.engine import SYNC_LOOP
from tests.conftest import PNG_1X1, Stack
from tests.litellm.conftest import HELLO

Asker = Callable[..., Any]


def usage_of(stack: Stack, api_key: str, prompt: str) -> tuple[int, int]:
    """What 1min.ai's record says the same prompt costs (the emulator is the oracle)."""
    metadata = stack.direct_chat(api_key, "gpt-4o-mini", prompt)["aiRecord"]["metadata"]
    return metadata["inputToken"], metadata["outputToken"]


def test_completion_answers_with_usage_from_the_record(
    ask: Asker, stack: Stack, api_key: str
) -> None:
    response = ask()
    assert response.choices[0].message.content == "Echo: hello there"
    assert response.choices[0].finish_reason == "stop"
    prompt_tokens, completion_tokens = usage_of(stack, api_key, "hello there")
    assert response.usage.prompt_tokens == prompt_tokens, "usage is 1min.ai's, not a guess"
    assert response.usage.completion_tokens == completion_tokens


def test_key_and_base_url_from_the_environment(
    stack: Stack, api_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ONE_MIN_API_KEY", api_key)
    monkeypatch.setenv("ONEMIN_UPSTREAM_URL", stack.emulator_url)
    response = litellm.completion(model="one_min/gpt-4o-mini", messages=HELLO)
    assert response.choices[0].message.content == "Echo: hello there"
    assert len(stack.chat_requests(api_key)) == 1, "the key came from ONE_MIN_API_KEY"


async def test_acompletion(aask: Asker, stack: Stack, api_key: str) -> None:
    response = await aask()
    assert response.choices[0].message.content == "Echo: hello there"
    assert response.usage.total_tokens == sum(usage_of(stack, api_key, "hello there"))


def test_streaming_sync(ask: Asker, stack: Stack, api_key: str) -> None:
    stack.set_faults(api_key, split_utf8=True, chunk_bytes=3)
    chunks = list(
        ask(
            messages=[{"role": "user", "content": "grüße 日本"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: grüße 日本", "UTF-8 split across network chunks survives"
    assert len({c.id for c in chunks}) == 1, "one id for every chunk of a completion"
    usage = next(c.usage for c in reversed(chunks) if getattr(c, "usage", None))
    assert usage.completion_tokens == usage_of(stack, api_key, "grüße 日本")[1]


async def test_streaming_async(aask: Asker) -> None:
    stream = await aask(stream=True)
    pieces = [c.choices[0].delta.content or "" async for c in stream if c.choices]
    assert "".join(pieces) == "Echo: hello there"
    assert len([p for p in pieces if p]) > 1, "the reply arrives in pieces, not at the end"


def test_image_attachment_is_uploaded_and_attached(ask: Asker, stack: Stack, api_key: str) -> None:
    data_uri = "data:image/png;base64," + base64.b64encode(PNG_1X1).decode()
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": data_uri}},
            ],
        }
    ]
    ask(model="one_min/gpt-4o", messages=messages)
    uploads = [r for r in stack.upstream_requests(api_key) if r["path"] == "/api/assets"]
    (chat,) = stack.chat_requests(api_key)
    assert len(uploads) == 1, "the image went up as an asset first"
    assert len(chat["body"]["promptObject"]["attachments"]["images"]) == 1


def test_file_attachment_is_uploaded(ask: Asker, stack: Stack, api_key: str) -> None:
    pdf = base64.b64encode(b"%PDF-1.4 tiny").decode()
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "summarise"},
                {"type": "file", "file": {"file_data": f"data:application/pdf;base64,{pdf}"}},
            ],
        }
    ]
    ask(model="one_min/gpt-4o", messages=messages)
    (chat,) = stack.chat_requests(api_key)
    assert len(chat["body"]["promptObject"]["attachments"]["files"]) == 1


def test_online_suffix_turns_web_search_on(ask: Asker, stack: Stack, api_key: str) -> None:
    ask(model="one_min/gpt-4o-mini:online")
    (chat,) = stack.chat_requests(api_key)
    assert chat["body"]["model"] == "gpt-4o-mini"
    assert chat["body"]["promptObject"]["settings"]["webSearchSettings"]["webSearch"] is True


def test_sync_calls_share_one_loop_thread(ask: Asker) -> None:
    for _ in range(3):
        ask()
    threads = [t for t in threading.enumerate() if t.name == "onemin-relay-litellm"]
    assert len(threads) == 1, "sync calls reuse one background loop, not one per call"


def test_image_generation(stack: Stack, api_key: str) -> None:
    response = litellm.image_generation(
        model="one_min/dall-e-3",
        prompt="a lighthouse",
        api_key=api_key,
        api_base=stack.emulator_url,
    )
    assert response.data and response.data[0].url
    assert response.data[0].url.startswith(stack.emulator_url)


async def test_aimage_generation_as_base64(stack: Stack, api_key: str) -> None:
    try:
        response = await litellm.aimage_generation(
            model="one_min/dall-e-3",
            prompt="a lighthouse",
            # LiteLLM drops OpenAI's image parameters for a custom provider; extra_body is kept
            extra_body={"response_format": "b64_json", "size": "1792x1024"},
            api_key=api_key,
            api_base=stack.emulator_url,
        )
    finally:
        await one_min.aclose()
    assert response.data and response.data[0].b64_json
    assert response.data[0].url is None
    (call,) = [r for r in stack.upstream_requests(api_key) if r["path"] == "/api/features"]
    assert call["body"]["promptObject"]["size"] == "1792x1024"


def test_a_sync_stream_closed_early_closes_its_source_on_the_shared_loop() -> None:
    seen: list[str] = []

    async def source() -> AsyncIterator[int]:
        try:
            for number in range(100):
                seen.append(threading.current_thread().name)
                yield number
        finally:
            seen.append("closed")

    chunks = SYNC_LOOP.iterate(source())
    assert next(chunks) == 0
    chunks.close()  # the caller stopped reading: the upstream stream must be let go
    assert seen == ["onemin-relay-litellm", "closed"]
