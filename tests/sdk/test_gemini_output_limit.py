"""Gemini's ``generationConfig.maxOutputTokens`` bounds a request as OpenAI's ``max_tokens``
does: a managed key's plain stream is held for it and cut there; a whole answer, which
1min.ai cannot bound, is held for the model's maximum."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from google import genai
from google.genai import errors, types

from tests.conftest import Stack

MODEL = "gemini-2.5-flash"
PROMPT = "Say hello"


@contextmanager
def gemini_for(stack: Stack, key: str) -> Iterator[genai.Client]:
    options = types.HttpOptions(base_url=f"{stack.relay_url}/gemini")
    with genai.Client(api_key=key, http_options=options) as client:
        yield client


def limited(tokens: int) -> types.GenerateContentConfig:
    return types.GenerateContentConfig(max_output_tokens=tokens)


def test_max_output_tokens_lowers_the_hold_of_a_stream(stack: Stack) -> None:
    managed = stack.issue_key("managed", balance_usd=0.0005)
    with gemini_for(stack, managed) as gemini:
        with pytest.raises(errors.APIError) as raised:
            gemini.models.generate_content(model=MODEL, contents=PROMPT, config=limited(20))
        assert raised.value.code == 402, "a whole answer is held for the model's maximum"
        chunks = gemini.models.generate_content_stream(
            model=MODEL, contents=PROMPT, config=limited(20)
        )
        text = "".join(chunk.text or "" for chunk in chunks)
    assert text == f"Echo: {PROMPT}", "a stream cut at 20 tokens is held only for them"


def test_a_stream_past_max_output_tokens_is_cut(stack: Stack) -> None:
    managed = stack.issue_key("managed", balance_usd=1.0)
    stack.set_faults(stack.operator_key, reply="word " * 300)
    try:
        with gemini_for(stack, managed) as gemini, pytest.raises(errors.APIError) as raised:
            for _ in gemini.models.generate_content_stream(
                model=MODEL, contents=PROMPT, config=limited(5)
            ):
                pass
    finally:
        stack.set_faults(stack.operator_key)
    assert "5 output tokens" in str(raised.value.message)
    (row,) = stack.ledger(managed)
    assert row.error_code == "hold_exceeded" and row.output_tokens > 5
