"""Fallbacks through the official SDKs: which failures move on, which never do, and money.

The emulator's ``models`` knob bends only the calls for the models it names, so the first
model of a request can fail while the next one answers.
"""

from __future__ import annotations

from typing import Any

import anthropic
import openai
import pytest

from tests.conftest import Stack

ASK = [{"role": "user", "content": "hi"}]
FIRST, SECOND = "gpt-4o-mini", "deepseek-chat"


def upstream_models(stack: Stack, api_key: str) -> list[str]:
    return [r["body"]["model"] for r in stack.chat_requests(api_key)]


def fail_first(stack: Stack, api_key: str, **knobs: Any) -> None:
    stack.set_faults(api_key, models=[FIRST], **knobs)


@pytest.mark.parametrize(
    "knobs",
    [
        {"status": 500},
        {"status": 503},
        {"status": 429, "retry_after": 0.01},
        {"latency_ms": 5000},  # stalls past the first-byte timeout (3 s in the test stack)
    ],
    ids=["500", "503", "429", "first-byte-timeout"],
)
def test_a_failing_first_model_falls_back(
    stack: Stack, client: openai.OpenAI, api_key: str, knobs: dict[str, Any]
) -> None:
    fail_first(stack, api_key, **knobs)
    raw = client.chat.completions.with_raw_response.create(
        model=FIRST, messages=ASK, extra_body={"models": [FIRST, SECOND]}
    )
    reply = raw.parse()
    assert reply.choices[0].message.content == "Echo: hi"
    assert reply.model == SECOND, "the model field names the model that answered"
    route = raw.headers["x-onemin-route"]
    assert f"model={SECOND}" in route and f"reason=fallback after {FIRST}" in route, route
    assert upstream_models(stack, api_key)[-1] == SECOND


def test_a_disabled_model_falls_back(stack: Stack, client: openai.OpenAI, api_key: str) -> None:
    reply = client.chat.completions.create(
        model="claude-3-5-sonnet-20240620",  # DISABLED upstream, so not in the catalog
        messages=ASK,
        extra_body={"fallbacks": [SECOND]},
    )
    assert reply.model == SECOND
    assert upstream_models(stack, api_key) == [SECOND]


@pytest.mark.parametrize(
    "knobs",
    [{"status": 500}, {"stall_after_chunks": 1}],
    ids=["500", "stall-before-first-text"],
)
def test_a_stream_falls_back_before_its_first_byte(
    stack: Stack, client: openai.OpenAI, api_key: str, knobs: dict[str, Any]
) -> None:
    fail_first(stack, api_key, **knobs)
    chunks = list(
        client.chat.completions.create(
            model=FIRST, messages=ASK, stream=True, extra_body={"fallbacks": [SECOND]}
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Echo: hi"
    assert {c.model for c in chunks} == {SECOND}


def test_anthropic_fallbacks_field(stack: Stack, claude: anthropic.Anthropic, api_key: str) -> None:
    fail_first(stack, api_key, status=502)
    reply = claude.messages.create(
        model=FIRST, max_tokens=50, messages=ASK, extra_body={"fallbacks": [SECOND]}
    )
    assert reply.model == SECOND


def test_a_request_4xx_is_never_retried(stack: Stack, client: openai.OpenAI, api_key: str) -> None:
    fail_first(stack, api_key, status=400)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=FIRST, messages=ASK, extra_body={"models": [SECOND]})
    assert upstream_models(stack, api_key) == [FIRST], "the request itself was at fault"


def test_nothing_is_retried_once_the_client_has_bytes(
    stack: Stack, client: openai.OpenAI, api_key: str
) -> None:
    fail_first(stack, api_key, error_after_chunks=2)
    stream = client.chat.completions.create(
        model=FIRST, messages=ASK, stream=True, extra_body={"fallbacks": [SECOND]}
    )
    seen: list[str] = []
    with pytest.raises(openai.APIError):
        for chunk in stream:
            seen.extend(c.delta.content or "" for c in chunk.choices)
    assert "".join(seen).startswith("Echo:"), "the client had text before the failure"
    assert upstream_models(stack, api_key) == [FIRST], "no second call after bytes were sent"


def test_attempts_are_bounded(stack: Stack, client: openai.OpenAI, api_key: str) -> None:
    chain = ["gpt-4o", "grok-4", "sonar", "gemini-2.5-pro"]
    stack.set_faults(api_key, status=500, models=[FIRST, *chain])  # every model fails
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model=FIRST, messages=ASK, extra_body={"models": chain})
    assert upstream_models(stack, api_key) == [FIRST, "gpt-4o", "grok-4"], "3 attempts at most"


def test_money_across_fallbacks(stack: Stack, api_key: str) -> None:
    """Each attempt holds and settles on its own: the failed one, which did no upstream
    work, costs nothing; the key pays the one that answered; nothing stays held."""
    managed = stack.issue_key("managed", balance_usd=1.0)
    stack.set_faults(stack.operator_key, models=["gpt-4o"], status=500)
    try:
        with openai.OpenAI(
            base_url=f"{stack.relay_url}/v1", api_key=managed, max_retries=0
        ) as client:
            reply = client.chat.completions.create(
                model="gpt-4o", messages=ASK, extra_body={"models": [SECOND]}
            )
    finally:
        stack.set_faults(stack.operator_key)
    assert reply.model == SECOND
    failed, answered = sorted(stack.ledger(managed), key=lambda row: row.at)
    assert (failed.upstream_model, failed.status, failed.cost) == ("gpt-4o", 502, 0)
    assert (answered.upstream_model, answered.status) == (SECOND, 200)
    assert answered.cost > 0 and answered.charged == answered.cost
    assert failed.route is not None and "model=gpt-4o" in failed.route
    assert answered.route is not None and "fallback after gpt-4o" in answered.route
    key = stack.key_record(managed)
    assert key.reserved == 0, "every hold was released"
    assert key.spent == answered.cost and key.balance >= 0
