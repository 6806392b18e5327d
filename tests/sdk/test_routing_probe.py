"""Hostile and edge requests a probe found answered wrongly: aliases on the token-count
endpoints (a client counts with the model it sends, ``onemin/auto`` included), and a Gemini
schema whose integer keyword holds a non-ASCII digit."""

from __future__ import annotations

import asyncio
from typing import Any

import anthropic
import openai
import pytest
from google import genai

from onemin_relay.gateway.routing import parse_account
from onemin_relay.surfaces.common import GATEWAY
from tests.conftest import Stack
from tests.sdk.test_gemini import post_gemini

HELLO: Any = [{"role": "user", "content": "Say hello to everyone in the room"}]


def test_anthropic_count_tokens_takes_an_alias(claude: anthropic.Anthropic) -> None:
    counted = claude.messages.count_tokens(model="onemin/auto", messages=HELLO)
    plain = claude.messages.count_tokens(model="claude-sonnet-4-5", messages=HELLO)
    assert counted.input_tokens > 0
    assert abs(counted.input_tokens - plain.input_tokens) <= 2


def test_gemini_count_tokens_takes_an_alias_in_the_url(gemini: genai.Client) -> None:
    counted = gemini.models.count_tokens(model="onemin-cost-saver", contents="Say hello to all")
    assert (counted.total_tokens or 0) > 0


def test_gemini_schema_with_a_non_ascii_digit_is_no_500(stack: Stack, api_key: str) -> None:
    schema = {"type": "OBJECT", "properties": {"a": {"type": "STRING", "maxLength": "²"}}}
    body = {
        "contents": [{"role": "user", "parts": [{"text": "give json"}]}],
        "generationConfig": {"responseMimeType": "application/json", "responseSchema": schema},
    }
    path = "models/gemini-2.5-flash:generateContent"
    status, answer = post_gemini(stack, path, body, api_key)
    assert status == 400, answer
    assert answer["error"]["status"] == "INVALID_ARGUMENT"


def test_feedback_with_a_zero_score_is_400_whoever_answered(stack: Stack) -> None:
    secret = stack.issue_key("managed", balance_usd=1.0)
    with openai.OpenAI(base_url=f"{stack.relay_url}/v1", api_key=secret, max_retries=0) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="onemin/auto", messages=[{"role": "user", "content": "hi"}]
        )
        request_id = raw.headers["x-request-id"]
        assert stack.ledger(secret), "the answer is on the ledger"
        with pytest.raises(openai.BadRequestError, match="score"):
            client.post("/feedback", body={"request_id": request_id, "score": 0}, cast_to=object)
        label = {"request_id": request_id, "score": 1}
        answer = client.post("/feedback", body=label, cast_to=dict)
    assert answer["request_id"] == request_id and answer["recorded"] is False


def test_a_model_name_with_a_line_break_still_gets_its_fallbacks_answer(
    client: openai.OpenAI,
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="nope\r\nX-Evil: 1",
        messages=[{"role": "user", "content": "hi"}],
        extra_body={"models": ["gpt-4o"]},
    )
    assert raw.parse().model == "gpt-4o"
    assert "x-evil" not in raw.headers
    assert "fallback after nope??X-Evil:?1" in raw.headers["x-onemin-route"]


def _samples(stack: Stack, model: str) -> int:
    rows = stack.on_relay(stack.app_store().evidence("default"))
    return sum(r.tally.samples for r in rows if r.route == "auto" and r.candidate == model)


def _ledger_written(stack: Stack) -> None:
    async def written() -> None:
        for _ in range(500):
            if stack.app[GATEWAY].ledger.pending == 0:
                return
            await asyncio.sleep(0.01)

    stack.on_relay(written())


def test_an_answer_is_labelled_once_however_often_feedback_names_it(
    stack: Stack, client: openai.OpenAI, api_key: str
) -> None:
    ask = [{"role": "user", "content": "hi"}]
    first = client.chat.completions.with_raw_response.create(model="onemin/auto", messages=ask)
    incumbent = parse_account(first.headers["x-onemin-route"])["incumbent"]
    stack.set_faults(api_key, models=[incumbent], status=500)
    raw = client.chat.completions.with_raw_response.create(
        model="onemin/auto", messages=ask, extra_body={"fallbacks": ["deepseek-chat"]}
    )
    assert raw.parse().model == "deepseek-chat"
    request_id = raw.headers["x-request-id"]
    _ledger_written(stack)
    before = _samples(stack, "deepseek-chat")
    label = {"request_id": request_id, "score": -1}
    answers = [client.post("/feedback", body=label, cast_to=dict) for _ in range(5)]
    assert [a["recorded"] for a in answers] == [True, False, False, False, False], answers
    assert answers[1]["reason"] == "already labelled"
    assert _samples(stack, "deepseek-chat") == before + 1


def test_a_request_id_tells_nothing_of_the_next(client: openai.OpenAI) -> None:
    """Feedback labels an answer by its request id, and every bring-your-own-key caller
    shares the default project: ids counted on from one's own would label others' answers."""
    ask = [{"role": "user", "content": "hi"}]
    ids = [
        client.chat.completions.with_raw_response.create(model="onemin/auto", messages=ask)
        .headers["x-request-id"]
        .removeprefix("req_")
        for _ in range(3)
    ]
    # ids lead with the time in milliseconds (12 hex digits) so they sort; what follows is
    # a keyed hash: no shared process prefix, no counter at the end
    secrets = [one[12:] for one in ids]
    assert len({one[:8] for one in secrets}) == 3, ids
    assert len({one[-8:] for one in secrets}) == 3, ids
