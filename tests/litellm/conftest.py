"""LiteLLM against the emulator on loopback: the provider registered as ``one_min``.

LiteLLM fetches its model price list from the network on import unless told to use its
bundled copy; tests never leave loopback, so that is set before anything imports it.
"""

from __future__ import annotations

import os

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

from collections.abc import AsyncIterator, Callable
from typing import Any

import litellm
import pytest

import onemin_relay.litellm as one_min
from tests.conftest import Stack

one_min.register()
HELLO = [{"role": "user", "content": "hello there"}]


@pytest.fixture
def ask(stack: Stack, api_key: str) -> Callable[..., Any]:
    """``litellm.completion`` with this test's key at the emulator (gpt-4o-mini, HELLO
    unless told otherwise)."""

    def call(**kwargs: Any) -> Any:
        kwargs.setdefault("model", "one_min/gpt-4o-mini")
        kwargs.setdefault("messages", HELLO)
        kwargs.setdefault("api_base", stack.emulator_url)
        return litellm.completion(api_key=api_key, **kwargs)

    return call


@pytest.fixture
async def aask(stack: Stack, api_key: str) -> AsyncIterator[Callable[..., Any]]:
    """``litellm.acompletion`` like ``ask``; the test loop's session is closed at the end."""

    async def call(**kwargs: Any) -> Any:
        kwargs.setdefault("model", "one_min/gpt-4o-mini")
        kwargs.setdefault("messages", HELLO)
        kwargs.setdefault("api_base", stack.emulator_url)
        return await litellm.acompletion(api_key=api_key, **kwargs)

    yield call
    await one_min.aclose()
