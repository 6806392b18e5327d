"""The three ways in, through each protocol's official SDK: bring-your-own-key, a relay key in
the URL path, a managed key with a prepaid balance; and the common mistakes, answered."""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request

import anthropic
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types

from onemin_relay.gateway.keys import nanos_to_usd
from tests.conftest import Stack
from tests.sdk.test_openai_audio import wav

PROMPT = "Say hello"
CLAUDE = "claude-sonnet-4-5-20250929"


def _openai(stack: Stack, key: str, path: str = "") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{stack.relay_url}{path}/v1", api_key=key, max_retries=0)


def _claude(stack: Stack, key: str, path: str = "") -> anthropic.Anthropic:
    url = f"{stack.relay_url}{path}/anthropic"
    return anthropic.Anthropic(base_url=url, api_key=key, max_retries=0)


def _gemini(stack: Stack, key: str, path: str = "") -> genai.Client:
    options = genai_types.HttpOptions(base_url=f"{stack.relay_url}{path}/gemini")
    return genai.Client(api_key=key, http_options=options)


def _chat(client: openai.OpenAI, model: str = "gpt-4o-mini", **extra: object) -> str:
    reply = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": PROMPT}], **extra
    )
    return reply.choices[0].message.content or ""


# -- relay keys in the path ------------------------------------------------------------


def test_relay_key_in_path_forwards_the_callers_own_key_on_every_protocol(
    stack: Stack, api_key: str
) -> None:
    relay = stack.issue_key("relay")
    path = f"/{relay}"
    with _openai(stack, api_key, path) as client:
        assert _chat(client) == f"Echo: {PROMPT}"
        streamed = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": PROMPT}], stream=True
        )
        assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == (
            f"Echo: {PROMPT}"
        )
    with _claude(stack, api_key, path) as claude:
        message = claude.messages.create(
            model=CLAUDE, max_tokens=50, messages=[{"role": "user", "content": PROMPT}]
        )
        assert message.content[0].type == "text"
        assert message.content[0].text == f"Echo: {PROMPT}"
    with _gemini(stack, api_key, path) as gemini:
        answer = gemini.models.generate_content(model="gemini-2.5-flash", contents=PROMPT)
        assert answer.text == f"Echo: {PROMPT}"
    assert len(stack.chat_requests(api_key)) == 4  # all under the caller's own 1min.ai key
    rows = stack.ledger(relay)
    assert len(rows) == 4
    assert {row.mode for row in rows} == {"relay"}
    assert all(row.charged == 0 and row.status == 200 for row in rows)


def test_relay_key_never_reaches_logs(
    stack: Stack, api_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    relay = stack.issue_key("relay")
    with caplog.at_level(logging.DEBUG), _openai(stack, api_key, f"/{relay}") as client:
        _chat(client)
        with pytest.raises(openai.NotFoundError):
            client.models.retrieve("no-such-model")
        # the base URL without /v1: an unknown route, logged all the same
        bare = client.with_options(base_url=f"{stack.relay_url}/{relay}")
        with pytest.raises(openai.NotFoundError):
            bare.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
            )

    def relay_side_lines() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.name.startswith(("onemin_relay", "aiohttp"))]

    for _ in range(500):  # the server logs a request just after answering it
        if any("/chat/completions 404" in r.getMessage() for r in relay_side_lines()):
            break
        time.sleep(0.01)
    relay_side = relay_side_lines()
    assert any(r.name == "aiohttp.access" for r in relay_side), "requests should be logged"
    assert not [r for r in relay_side if relay in r.getMessage()]
    assert any("/***/chat/completions 404" in r.getMessage() for r in relay_side)
    assert any("/***/v1/chat/completions" in r.getMessage() for r in relay_side)
    with urllib.request.urlopen(f"{stack.relay_url}/metrics", timeout=5) as answer:
        assert relay.encode() not in answer.read()


# -- managed keys -----------------------------------------------------------------------


def test_managed_key_spends_the_operators_account_and_its_own_balance(stack: Stack) -> None:
    managed = stack.issue_key("managed", balance_usd=1.0)
    before = len(stack.chat_requests(stack.operator_key))
    with _openai(stack, managed) as client:
        assert _chat(client) == f"Echo: {PROMPT}"
    with _claude(stack, managed) as claude:
        claude.messages.create(
            model=CLAUDE, max_tokens=50, messages=[{"role": "user", "content": PROMPT}]
        )
    with _gemini(stack, managed) as gemini:
        gemini.models.generate_content(model="gemini-2.5-flash", contents=PROMPT)
    upstream = stack.chat_requests(stack.operator_key)[before:]
    assert len(upstream) == 3
    rows = stack.ledger(managed)
    assert [r.status for r in rows] == [200, 200, 200]
    assert all(r.credits > 0 and r.charged == r.cost > 0 for r in rows)
    # the charge is 1min.ai's credit at the operator's rate, rounded up to the nano-dollar
    for row in rows:
        assert row.cost == -(-row.credits * 10**9 // int(stack.settings.credits_per_usd))
    record = stack.key_record(managed)
    assert record.reserved == 0
    assert record.spent == sum(r.charged for r in rows)
    assert record.balance == 10**9 - record.spent


def test_managed_stream_is_settled_when_it_ends(stack: Stack) -> None:
    managed = stack.issue_key("managed", balance_usd=1.0)
    with _openai(stack, managed) as client:
        stream = client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": PROMPT}], stream=True
        )
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    (row,) = stack.ledger(managed)
    assert row.status == 200 and row.ttfb_ms is not None and row.cost > 0
    record = stack.key_record(managed)
    assert (record.reserved, record.spent) == (0, row.charged)


def _required_body(body: object) -> dict[str, object]:
    assert isinstance(body, dict)
    error = body.get("error", body)
    assert isinstance(error, dict)
    return error


def test_empty_balance_gets_402_before_anything_is_sent_upstream(stack: Stack) -> None:
    managed = stack.issue_key("managed", balance_usd=0.0)
    before = len(stack.upstream_requests(stack.operator_key))
    with _openai(stack, managed) as client, pytest.raises(openai.APIStatusError) as raised:
        _chat(client)
    assert raised.value.status_code == 402
    error = _required_body(raised.value.body)
    assert error["type"] == "insufficient_prepaid_balance"
    assert error["message"] == "Insufficient prepaid balance."
    assert error["balance_usd"] == 0 and error["reserved_usd"] == 0
    required = error["required_usd"]
    assert isinstance(required, float) and required > 0
    with _claude(stack, managed) as claude, pytest.raises(anthropic.APIStatusError) as refused:
        claude.messages.create(
            model=CLAUDE, max_tokens=50, messages=[{"role": "user", "content": PROMPT}]
        )
    assert refused.value.status_code == 402
    claude_error = _required_body(refused.value.body)
    assert claude_error["type"] == "insufficient_prepaid_balance"
    with _gemini(stack, managed) as gemini, pytest.raises(genai_errors.APIError) as denied:
        gemini.models.generate_content(model="gemini-2.5-flash", contents=PROMPT)
    assert denied.value.code == 402
    assert "Insufficient prepaid balance" in (denied.value.message or "")
    assert len(stack.upstream_requests(stack.operator_key)) == before
    rows = stack.ledger(managed)
    assert [(r.status, r.outcome, r.charged) for r in rows] == [(402, "refused", 0)] * 3


def test_max_tokens_lowers_the_hold_only_where_the_relay_can_enforce_it(stack: Stack) -> None:
    """1min.ai takes no output limit: a whole answer may run to the model's maximum and is
    held for it; a plain stream is cut at max_tokens, so it is held only for that."""
    managed = stack.issue_key("managed", balance_usd=0.0005)
    messages = [{"role": "user", "content": PROMPT}]
    with _openai(stack, managed) as client:
        with pytest.raises(openai.APIStatusError) as raised:
            client.chat.completions.create(model="gpt-4o", messages=messages, max_tokens=20)
        assert raised.value.status_code == 402
        with client.chat.completions.create(
            model="gpt-4o", messages=messages, max_tokens=20, stream=True
        ) as chunks:
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == f"Echo: {PROMPT}"


def test_operator_account_out_of_credits_is_a_503_and_costs_the_key_nothing(
    stack: Stack,
) -> None:
    managed = stack.issue_key("managed", balance_usd=1.0)
    account = f"{stack.emulator_url}/_emulator/account/{stack.operator_key}"
    _emulator_call("PUT", account, {"credit_limit": 0})
    try:
        with _openai(stack, managed) as client, pytest.raises(openai.APIStatusError) as raised:
            _chat(client)
    finally:
        _emulator_call("DELETE", account)
    assert raised.value.status_code == 503
    assert "out of credits" in str(raised.value.message)
    (row,) = stack.ledger(managed)
    assert (row.status, row.charged) == (503, 0)
    record = stack.key_record(managed)
    assert (record.balance, record.reserved) == (10**9, 0)


def _emulator_call(method: str, url: str, body: object = None) -> None:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    urllib.request.urlopen(request, timeout=5).close()


def test_balance_shown_to_the_key_holder(stack: Stack) -> None:
    managed = stack.issue_key("managed", balance_usd=2.5, rpm=60, models=("gpt-*",))
    with _openai(stack, managed) as client:
        state = client.get("/key", cast_to=object)
    assert isinstance(state, dict)
    assert state["balance_usd"] == 2.5 and state["reserved_usd"] == 0
    assert state["rpm"] == 60 and state["models"] == ["gpt-*"]
    assert managed not in str(state)


# -- the common mistakes ----------------------------------------------------------------


def test_relay_key_in_the_api_key_field_is_told_where_it_belongs(stack: Stack) -> None:
    relay = stack.issue_key("relay")
    with _openai(stack, relay) as client, pytest.raises(openai.AuthenticationError) as raised:
        _chat(client)
    message = str(raised.value.message)
    assert "URL path" in message and relay not in message


def test_onemin_key_in_the_path_is_told_where_it_belongs(stack: Stack, api_key: str) -> None:
    with (
        _openai(stack, "whatever", f"/{api_key}") as client,
        pytest.raises(openai.AuthenticationError) as raised,
    ):
        _chat(client)
    message = str(raised.value.message)
    assert "API key field" in message and api_key not in message
    with _claude(stack, "x", f"/{api_key}") as claude, pytest.raises(anthropic.AuthenticationError):
        claude.messages.create(
            model=CLAUDE, max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert stack.chat_requests(api_key) == []


def test_relay_key_without_a_onemin_key_is_told_what_to_send(stack: Stack) -> None:
    relay = stack.issue_key("relay")
    managed = stack.issue_key("managed", balance_usd=1)
    with (
        _openai(stack, managed, f"/{relay}") as client,
        pytest.raises(openai.AuthenticationError) as raised,
    ):
        _chat(client)
    assert "1min.ai key" in str(raised.value.message)


@pytest.mark.parametrize("state", ["unknown", "revoked", "expired"])
def test_unusable_keys_get_401(stack: Stack, state: str) -> None:
    if state == "unknown":
        secret = "sk-onemin-" + "x" * 32
    elif state == "expired":
        secret = stack.issue_key("managed", balance_usd=1, expires_at=1.0)
    else:
        secret = stack.issue_key("managed", balance_usd=1)
        revoke = stack.app_store().update_key(stack.key_record(secret).id, {"revoked_at": 1.0})
        stack.on_relay(revoke)
    with _openai(stack, secret) as client, pytest.raises(openai.AuthenticationError) as raised:
        _chat(client)
    assert state in str(raised.value.message)
    assert secret not in str(raised.value.message)


def test_model_outside_the_keys_globs_gets_403(stack: Stack) -> None:
    managed = stack.issue_key("managed", balance_usd=1, models=("claude-*",))
    with _openai(stack, managed) as client, pytest.raises(openai.PermissionDeniedError):
        _chat(client, model="gpt-4o-mini")
    with _claude(stack, managed) as claude:
        claude.messages.create(
            model=CLAUDE, max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    statuses = sorted(r.status for r in stack.ledger(managed))
    assert statuses == [200, 403]


def test_balance_in_usd_matches_the_nano_ledger(stack: Stack) -> None:
    managed = stack.issue_key("managed", balance_usd=0.25)
    assert nanos_to_usd(stack.key_record(managed).balance) == 0.25


def test_a_paid_stream_that_outgrows_its_hold_is_ended_with_a_clear_error(stack: Stack) -> None:
    managed = stack.issue_key("managed", balance_usd=1.0)
    stack.set_faults(stack.operator_key, reply="word " * 300)
    try:
        with _openai(stack, managed) as client, pytest.raises(openai.APIError) as raised:
            stream = client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": PROMPT}],
                max_tokens=5, stream=True,
            )  # fmt: skip
            for _ in stream:
                pass
    finally:
        _emulator_call("DELETE", f"{stack.emulator_url}/_emulator/faults/{stack.operator_key}")
    assert "5 output tokens" in str(raised.value.message)
    (row,) = stack.ledger(managed)
    assert row.error_code == "hold_exceeded" and row.output_tokens > 5
    record = stack.key_record(managed)
    assert record.reserved == 0 and record.spent == row.charged > 0


def test_managed_streams_and_responses_settle_on_every_protocol(stack: Stack) -> None:
    managed = stack.issue_key("managed", balance_usd=1.0)
    with (
        _claude(stack, managed) as claude,
        claude.messages.stream(
            model=CLAUDE, max_tokens=50, messages=[{"role": "user", "content": PROMPT}]
        ) as stream,
    ):
        assert "".join(stream.text_stream) == f"Echo: {PROMPT}"
    with _gemini(stack, managed) as gemini:
        pieces = gemini.models.generate_content_stream(model="gemini-2.5-flash", contents=PROMPT)
        assert "".join(p.text or "" for p in pieces) == f"Echo: {PROMPT}"
    with _openai(stack, managed) as client:
        response = client.responses.create(model="gpt-4o-mini", input=PROMPT)
        assert response.output_text == f"Echo: {PROMPT}"
    rows = stack.ledger(managed)
    assert [r.status for r in rows] == [200, 200, 200]
    assert all(r.charged > 0 and r.ttfb_ms is not None for r in rows)
    assert stack.key_record(managed).reserved == 0


def test_images_are_held_and_charged_by_their_price_table(stack: Stack) -> None:
    # dall-e-3 standard 1024x1024 is 40,000 credits an image: $0.01333… at the default rate
    managed = stack.issue_key("managed", balance_usd=0.02)
    with _openai(stack, managed) as client:
        client.images.generate(model="dall-e-3", prompt="a red fox", size="1024x1024")
        with pytest.raises(openai.APIStatusError) as raised:
            client.images.generate(model="dall-e-3", prompt="a red fox", size="1024x1024")
    assert raised.value.status_code == 402
    rows = stack.ledger(managed)
    assert sorted((r.status, r.credits) for r in rows) == [(200, 40_000), (402, 0)]
    record = stack.key_record(managed)
    assert record.spent == -(-40_000 * 10**9 // 3_000_000)
    assert (record.reserved, record.balance) == (0, 2 * 10**7 - record.spent)


def test_audio_is_held_and_charged_by_its_price_rule(stack: Stack) -> None:
    managed = stack.issue_key("managed", balance_usd=1.0)
    text = "x" * 250  # three started blocks of 100 characters
    with _openai(stack, managed) as client:
        client.audio.transcriptions.create(model="whisper-1", file=("a.wav", wav(90.0)))
        with client.audio.speech.with_streaming_response.create(
            model="tts-1", voice="alloy", input=text
        ) as speech:
            assert speech.read()
    credits = sorted(r.credits for r in stack.ledger(managed))
    assert credits == [15 * 3, 100 * 2]  # tts-1 per 100 characters; whisper-1 per minute
    assert stack.key_record(managed).reserved == 0


def test_a_deep_path_is_a_quick_404(stack: Stack) -> None:
    path = "/x" + "/v1" * 2000 + "/chat/completions"
    request = urllib.request.Request(f"{stack.relay_url}{path}", data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, timeout=5)
    raised.value.close()
    assert raised.value.code == 404


def test_a_structured_answer_that_never_validates_is_charged_for_its_attempts(
    stack: Stack,
) -> None:
    managed = stack.issue_key("managed", balance_usd=1.0)
    stack.set_faults(stack.operator_key, reply="not JSON at all")
    before = len(stack.chat_requests(stack.operator_key))
    try:
        with _openai(stack, managed) as client, pytest.raises(openai.APIStatusError) as raised:
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": PROMPT}],
                response_format={"type": "json_object"},
            )  # fmt: skip
    finally:
        _emulator_call("DELETE", f"{stack.emulator_url}/_emulator/faults/{stack.operator_key}")
    assert raised.value.status_code == 502
    attempts = len(stack.chat_requests(stack.operator_key)) - before
    assert attempts == 1 + stack.settings.structured_retries
    (row,) = stack.ledger(managed)
    assert row.error_code == "structured_output_failed"
    assert row.credits > 0 and row.charged == row.cost > 0
    assert stack.key_record(managed).spent == row.charged
