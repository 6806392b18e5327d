"""Conversations and traces as clients make them: the official SDKs of each protocol name one
conversation (OpenAI's ``metadata.conversation_id``, the ``x-onemin-conversation-id`` header
in any protocol, a ``previous_response_id`` chain), and the admin API reads it back as one
trace; ``x-request-id`` comes back on every answer and finds its trace; bodies are captured
only as the operator chose, capped, and never with a key in them."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest
from google import genai
from google.genai import types as genai_types

from tests.conftest import Stack

TOKEN = "trace-admin-token"
HEADER = "x-onemin-conversation-id"


class Relay:
    """A relay of its own (admin API on) on the stack's emulator."""

    def __init__(self, url: str, api_key: str) -> None:
        self.url = url
        self.api_key = api_key

    def openai(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=self.api_key, max_retries=0)

    def admin(self, path: str) -> tuple[int, Any]:
        request = urllib.request.Request(self.url + path)
        request.add_header("Authorization", f"Bearer {TOKEN}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, json.loads(exc.read())

    def conversation(self, conversation_id: str, expected: int) -> list[dict[str, Any]]:
        """The conversation's traces once ``expected`` are written (they are written off the
        request path, within moments)."""
        data: list[dict[str, Any]] = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            status, body = self.admin(f"/admin/v1/conversations/{conversation_id}")
            data = body.get("data", []) if status == 200 else []
            if len(data) >= expected:
                return data
            time.sleep(0.05)
        return data

    def trace(self, request_id: str) -> tuple[int, Any]:
        deadline = time.monotonic() + 10
        while True:
            status, body = self.admin(f"/admin/v1/requests/{request_id}")
            if status != 404 or time.monotonic() > deadline:
                return status, body
            time.sleep(0.05)


@pytest.fixture
def relay(stack: Stack, api_key: str) -> Iterator[Relay]:
    with stack.another_relay(admin_token=TOKEN) as (url, _):
        yield Relay(url, api_key)


def test_one_conversation_across_every_protocol(relay: Relay) -> None:
    conversation = f"conv-{uuid.uuid4().hex[:8]}"
    with relay.openai() as client:
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hello from chat"}],
            metadata={"conversation_id": conversation},
        )
        client.responses.create(
            model="gpt-4o-mini", input="hello from responses", extra_headers={HEADER: conversation}
        )
    with anthropic.Anthropic(
        base_url=f"{relay.url}/anthropic", api_key=relay.api_key, max_retries=0
    ) as claude:
        claude.messages.create(
            model="claude-sonnet-4-5-20250929",
            max_tokens=50,
            messages=[{"role": "user", "content": "hello from anthropic"}],
            metadata={"user_id": "user-42"},
            extra_headers={HEADER: conversation},
        )
    options = genai_types.HttpOptions(
        base_url=f"{relay.url}/gemini", headers={HEADER: conversation}
    )
    with genai.Client(api_key=relay.api_key, http_options=options) as gemini:
        gemini.models.generate_content(model="gemini-2.5-flash", contents="hello from gemini")

    traces = relay.conversation(conversation, 4)
    surfaces = [trace["surface"] for trace in traces]
    assert len(traces) == 4, surfaces
    assert len(set(surfaces)) == 4, f"one request per protocol, in order: {surfaces}"
    assert all(t["status"] == 200 and t["outcome"] == "ok" for t in traces), traces
    assert [t["user"] for t in traces].count("user-42") == 1, "Anthropic's metadata.user_id"
    for trace in traces:
        timings = trace["timings"]
        assert timings["total_ms"] >= timings["upstream_first_byte_ms"] >= 0, trace
        assert timings["parse_ms"] is not None and timings["policy_ms"] is not None, trace
        assert trace["upstream_id"], f"1min.ai's record id: {trace}"
    status, ledger = relay.admin("/admin/v1/ledger?limit=4")
    assert {row["conversation_id"] for row in ledger["data"]} == {conversation}, "and the ledger's"
    status, listing = relay.admin("/admin/v1/conversations")
    assert status == 200
    summary = next(c for c in listing["data"] if c["conversation_id"] == conversation)
    assert summary["requests"] == 4 and summary["users"] == ["user-42"]


def test_a_previous_response_id_chain_is_one_conversation(relay: Relay) -> None:
    with relay.openai() as client:
        first = client.responses.with_raw_response.create(model="gpt-4o-mini", input="one")
        second = client.responses.create(
            model="gpt-4o-mini", input="two", previous_response_id=first.parse().id
        )
        third = client.responses.with_raw_response.create(
            model="gpt-4o-mini", input="three", previous_response_id=second.id
        )
    conversation = first.headers["x-request-id"]  # no id given: named after its first request
    traces = relay.conversation(conversation, 3)
    assert [t["request_id"] for t in traces][::2] == [
        first.headers["x-request-id"],
        third.headers["x-request-id"],
    ]
    assert len(traces) == 3


def test_a_chain_keeps_the_conversation_its_first_response_named(relay: Relay) -> None:
    conversation = f"conv-{uuid.uuid4().hex[:8]}"
    with relay.openai() as client:
        first = client.responses.create(
            model="gpt-4o-mini", input="one", metadata={"conversation_id": conversation}
        )
        client.responses.create(model="gpt-4o-mini", input="two", previous_response_id=first.id)
    assert len(relay.conversation(conversation, 2)) == 2


def test_the_clients_request_id_comes_back_and_finds_the_trace(relay: Relay) -> None:
    chosen = f"client-{uuid.uuid4().hex}"
    with relay.openai() as client:
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"x-request-id": chosen},
        )
        made = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"x-request-id": "has spaces; and <quotes>"},
        )
    assert raw.headers["x-request-id"] == chosen
    status, trace = relay.trace(chosen)
    assert status == 200, trace
    assert trace["request_id"] == chosen and trace["conversation_id"] == chosen
    assert made.headers["x-request-id"].startswith("req_"), "an unsafe id is replaced"


def test_every_answer_carries_a_request_id_errors_included(relay: Relay) -> None:
    with relay.openai() as client, pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="gpt-4o-mini", messages=[])
    assert caught.value.response.headers.get("x-request-id"), "a 400 has one too"
    request = urllib.request.Request(relay.url + "/v1/chat/completions", data=b"{}")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.headers.get("x-request-id"), "a 401 has one too"
    refused.value.close()


def _asked(relay: Relay, prompt: str) -> str:
    with relay.openai() as client:
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}]
        )
    return str(raw.headers["x-request-id"])


def test_full_bodies_are_captured_capped_and_scrubbed(stack: Stack, api_key: str) -> None:
    managed = stack.issue_key("managed", balance_usd=1.0)
    prompt = f"keys: {managed} {api_key} rk-onemin-abcDEF123 {TOKEN} {stack.operator_key}; "
    prompt += "x" * 3000
    with stack.another_relay(admin_token=TOKEN, trace_bodies="full", trace_body_limit=1024) as (
        url,
        _,
    ):
        relay = Relay(url, api_key)
        status, trace = relay.trace(_asked(relay, prompt))
    assert status == 200, trace
    bodies = trace["bodies"]
    for name in ("request", "prompt", "reply"):
        text = bodies[name]
        assert text is not None, name
        for secret in (managed, api_key, "rk-onemin-abc", TOKEN, stack.operator_key):
            assert secret not in text, (name, secret)
        assert "[redacted]" in text, name
        assert len(text.encode()) < 1100 and "…[truncated" in text, name


@pytest.mark.parametrize("level", ["metadata", "off"])
def test_no_bodies_unless_asked_and_no_traces_when_off(
    stack: Stack, api_key: str, level: str
) -> None:
    with stack.another_relay(admin_token=TOKEN, trace_bodies=level) as (url, _):
        relay = Relay(url, api_key)
        status, trace = relay.trace(_asked(relay, "a secret plan"))
    if level == "off":
        assert status == 404, trace
    else:
        assert status == 200 and trace["bodies"] is None, trace
        assert "secret plan" not in json.dumps(trace)


def test_a_streamed_tool_call_and_reply_are_in_the_trace(stack: Stack, api_key: str) -> None:
    call = '<tool_calls>[{"name": "get_weather", "arguments": {"city": "Oslo"}}]</tool_calls>'
    stack.set_faults(api_key, replies=[call])
    tool = {
        "type": "function",
        "function": {"name": "get_weather", "parameters": {"type": "object"}},
    }
    with stack.another_relay(admin_token=TOKEN, trace_bodies="full") as (url, _):
        relay = Relay(url, api_key)
        with relay.openai() as client:
            raw = client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "Weather in Oslo?"}],
                tools=[tool],  # type: ignore[list-item]
                stream=True,
            )
            chunks = list(raw.parse())
        sent = [c.id for chunk in chunks for c in chunk.choices[0].delta.tool_calls or () if c.id]
        status, trace = relay.trace(raw.headers["x-request-id"])
    assert status == 200, trace
    assert [c["name"] for c in trace["tool_calls"]] == ["get_weather"]
    assert [c["id"] for c in trace["tool_calls"]] == sent
    assert "get_weather" in trace["bodies"]["reply"], "the reply as 1min.ai wrote it"
    assert trace["timings"]["upstream_first_byte_ms"] <= trace["timings"]["total_ms"]


def test_a_stream_that_fails_midway_is_traced_with_its_error(stack: Stack, api_key: str) -> None:
    stack.set_faults(api_key, error_after_chunks=2, error_message="model fell over")
    with stack.another_relay(admin_token=TOKEN) as (url, _):
        relay = Relay(url, api_key)
        with relay.openai() as client:
            raw = client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
            )
            with pytest.raises(openai.APIError):
                list(raw.parse())
        status, trace = relay.trace(raw.headers["x-request-id"])
    assert status == 200, trace
    assert trace["outcome"] == "error" and trace["status"] >= 500, trace
    assert trace["error"]["code"] and "fell over" in trace["error"]["message"], trace
