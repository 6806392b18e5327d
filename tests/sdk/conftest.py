"""Official-SDK clients pointed at the live relay, closed after each test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import anthropic
import openai
import pytest
from google import genai
from google.genai import types as genai_types

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


@pytest.fixture
def claude(stack: Stack, api_key: str) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(
        base_url=f"{stack.relay_url}/anthropic", api_key=api_key, max_retries=0
    ) as c:
        yield c


@pytest.fixture
async def async_claude(stack: Stack, api_key: str) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(
        base_url=f"{stack.relay_url}/anthropic", api_key=api_key, max_retries=0
    ) as c:
        yield c


@pytest.fixture
def gemini(stack: Stack, api_key: str) -> Iterator[genai.Client]:
    client = genai.Client(
        api_key=api_key,
        http_options=genai_types.HttpOptions(base_url=f"{stack.relay_url}/gemini"),
    )
    with client:
        yield client
