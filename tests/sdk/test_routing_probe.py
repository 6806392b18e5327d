"""Hostile and edge requests a probe found answered wrongly: aliases on the token-count
endpoints (a client counts with the model it sends, ``onemin/auto`` included), and a Gemini
schema whose integer keyword holds a non-ASCII digit."""

from __future__ import annotations

from typing import Any

import anthropic
import openai
import pytest
from google import genai

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
