"""Official-SDK clients pointed at the live relay, closed after each test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import openai
import pytest

from tests.conftest import Stack


@pytest.fixture
def client(stack: Stack, api_key: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{stack.relay_url}/v1", api_key=api_key, max_retries=0) as c:
        yield c


@pytest.fixture
async def async_client(stack: Stack, api_key: str) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=f"{stack.relay_url}/v1", api_key=api_key, max_retries=0
    ) as c:
        yield c
