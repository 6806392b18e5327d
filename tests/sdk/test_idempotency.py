"""A paid call retried with the same Idempotency-Key is answered once and billed once."""

from __future__ import annotations

import threading
import uuid

import openai
import pytest

from tests.conftest import Stack

MESSAGES = [{"role": "user", "content": "count my money"}]


def _client(stack: Stack, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{stack.relay_url}/v1", api_key=key, max_retries=0)


def test_a_repeated_key_replays_the_first_answer_without_a_second_call_or_charge(
    stack: Stack,
) -> None:
    managed = stack.issue_key("managed", balance_usd=1.0)
    headers = {"Idempotency-Key": uuid.uuid4().hex}
    before = len(stack.chat_requests(stack.operator_key))
    with _client(stack, managed) as client:
        first = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=MESSAGES, extra_headers=headers
        )
        again = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=MESSAGES, extra_headers=headers
        )
    assert again.parse().id == first.parse().id
    assert again.headers.get("idempotent-replayed") == "true"
    assert first.headers.get("idempotent-replayed") is None
    assert len(stack.chat_requests(stack.operator_key)) == before + 1
    rows = stack.ledger(managed)
    assert len(rows) == 1
    assert stack.key_record(managed).spent == rows[0].charged > 0


def test_a_stream_is_replayed_whole(stack: Stack) -> None:
    managed = stack.issue_key("managed", balance_usd=1.0)
    headers = {"Idempotency-Key": uuid.uuid4().hex}
    texts = []
    with _client(stack, managed) as client:
        for _ in range(2):
            stream = client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True, extra_headers=headers
            )
            texts.append("".join(c.choices[0].delta.content or "" for c in stream if c.choices))
    assert texts[0] == texts[1] == "Echo: count my money"
    assert len(stack.ledger(managed)) == 1


def test_different_holders_do_not_share_keys(stack: Stack) -> None:
    first, second = (stack.issue_key("managed", balance_usd=1.0) for _ in range(2))
    headers = {"Idempotency-Key": "shared-" + uuid.uuid4().hex}
    for key in (first, second):
        with _client(stack, key) as client:
            client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, extra_headers=headers
            )
    assert len(stack.ledger(first)) == len(stack.ledger(second)) == 1


def test_a_key_still_running_gets_409(stack: Stack, api_key: str) -> None:
    stack.set_faults(api_key, latency_ms=1500)
    headers = {"Idempotency-Key": uuid.uuid4().hex}
    outcomes: list[object] = []

    def call() -> None:
        with _client(stack, api_key) as client:
            try:
                outcomes.append(
                    client.chat.completions.create(
                        model="gpt-4o-mini", messages=MESSAGES, extra_headers=headers
                    )
                )
            except openai.APIStatusError as exc:
                outcomes.append(exc.status_code)

    first = threading.Thread(target=call)
    first.start()
    threading.Event().wait(0.5)
    call()
    first.join()
    assert 409 in outcomes
    assert len(stack.chat_requests(api_key)) == 1


def test_a_failed_call_can_be_retried_under_the_same_key(stack: Stack, api_key: str) -> None:
    stack.set_faults(api_key, status=500, status_times=1)
    headers = {"Idempotency-Key": uuid.uuid4().hex}
    with _client(stack, api_key) as client:
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, extra_headers=headers
            )
        reply = client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, extra_headers=headers
        )
    assert reply.choices[0].message.content == "Echo: count my money"


def test_a_stream_that_failed_after_its_headers_is_not_replayed(stack: Stack, api_key: str) -> None:
    stack.set_faults(api_key, error_after_chunks=2, status_times=None)
    headers = {"Idempotency-Key": uuid.uuid4().hex}
    with _client(stack, api_key) as client:
        with pytest.raises(openai.APIError):
            for _ in client.responses.create(
                model="gpt-4o-mini", input="count", stream=True, extra_headers=headers
            ):
                pass
        stack.set_faults(api_key)
        again = client.responses.create(
            model="gpt-4o-mini", input="count", stream=True, extra_headers=headers
        )
        events = [event.type for event in again]
    assert events[-1] == "response.completed"
    assert len(stack.chat_requests(api_key)) == 2
