"""Rate limits through the official SDKs: exact under a burst, per IP and per key, the
headers clients read, and each SDK's own rate-limit error."""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter

import anthropic
import openai
import pytest
from aiohttp import web
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types

from onemin_relay.gateway.keys import issue
from onemin_relay.surfaces.common import GATEWAY
from tests.conftest import LIMITS_OFF, Stack

MESSAGES = [{"role": "user", "content": "hi"}]
CLAUDE = "claude-sonnet-4-5-20250929"


def _limits(**on: object) -> dict[str, object]:
    return {**LIMITS_OFF, **on}


def _key(stack: Stack, app: web.Application, kind: str = "managed", **fields: object) -> str:
    new = issue(kind, "limited", balance=10**12, **fields)  # type: ignore[arg-type]
    stack.on_relay(app[GATEWAY].store.add_key(new.record))
    return new.secret


async def _burst(url: str, key: str, count: int, **create: object) -> Counter[int | str]:
    """Each call's status; a call that got no answer counts as its error's name, so a
    failure says what went wrong instead of ending the burst."""
    client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=60)
    async with client:

        async def one() -> int | str:
            try:
                await client.chat.completions.create(
                    model="gpt-4o-mini", messages=MESSAGES, **create
                )
            except openai.APIStatusError as exc:
                return exc.status_code
            except openai.APIConnectionError as exc:
                return type(exc).__name__
            return 200

        async with asyncio.timeout(120):
            return Counter(await asyncio.gather(*(one() for _ in range(count))))


def test_a_burst_of_1000_gets_exactly_180_through(stack: Stack, api_key: str) -> None:
    # the client's 1,000 calls share the GIL with the relay and the emulator: on a slow host
    # one admitted call could wait past the tests' 3 s first-byte timeout, which is not the
    # limit under test
    with stack.another_relay(**_limits(ip_rpm=180), first_byte_timeout=30) as (url, _):
        outcome = asyncio.run(_burst(url, api_key, 1000))
    assert outcome == Counter({200: 180, 429: 820})
    assert len(stack.chat_requests(api_key)) == 180


def test_a_token_limit_is_exact_under_a_burst(stack: Stack, api_key: str) -> None:
    # each request is admitted on 0 + 100 tokens ("hi" is 0 tokens at four characters a
    # token, plus max_tokens 100): 50 fit in 5,000. The calls are kept in flight through the
    # burst: one that ended would give back what it did not use, and let another in.
    stack.set_faults(api_key, latency_ms=5000)
    with stack.another_relay(**_limits(ip_tpm=5000), first_byte_timeout=30) as (url, _):
        outcome = asyncio.run(_burst(url, api_key, 300, max_tokens=100))
    assert outcome == Counter({200: 50, 429: 250})


def test_limits_per_key_and_per_ip_are_independent(stack: Stack) -> None:
    with stack.another_relay(**_limits(ip_rpm=30)) as (url, app):
        first, second = (_key(stack, app, rpm=5) for _ in range(2))
        both = asyncio.run(_both(url, first, second))
        third = _key(stack, app)  # no key limit: only the IP's 30 remain
        rest = asyncio.run(_burst(url, third, 40))
    assert both == (Counter({200: 5, 429: 15}), Counter({200: 5, 429: 15}))
    assert rest == Counter({200: 20, 429: 20})


async def _both(url: str, first: str, second: str) -> tuple[Counter[int | str], Counter[int | str]]:
    one, two = await asyncio.gather(_burst(url, first, 20), _burst(url, second, 20))
    return one, two


def test_openai_headers_and_rate_limit_error(stack: Stack, api_key: str) -> None:
    with (
        stack.another_relay(**_limits(ip_rpm=3, ip_tpm=100_000)) as (url, _),
        openai.OpenAI(base_url=f"{url}/v1", api_key=api_key, max_retries=0) as client,
    ):
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=MESSAGES, max_tokens=10
        )
        assert raw.headers["x-ratelimit-limit-requests"] == "3"
        assert raw.headers["x-ratelimit-remaining-requests"] == "2"
        # e.g. "1m52s": the count is gone when the sliding window has passed both fixed
        # windows it spans, 60-120 s from now ("2m0s" in the first second of a window)
        minutes, _, seconds = raw.headers["x-ratelimit-reset-requests"].partition("m")
        assert seconds.endswith("s") and not seconds.endswith("ms")
        assert 60 < int(minutes) * 60 + int(seconds.removesuffix("s")) <= 120
        assert raw.headers["x-ratelimit-limit-tokens"] == "100000"
        assert int(raw.headers["x-ratelimit-remaining-tokens"]) == 100_000 - 10
        for _ in range(2):
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        with pytest.raises(openai.RateLimitError) as raised:
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert "3 requests per minute for this IP" in str(raised.value.message)
    retry_after = int(raised.value.response.headers["retry-after"])
    assert 1 <= retry_after <= 120  # a sliding window: at most two windows away
    assert raised.value.response.headers["x-ratelimit-remaining-requests"] == "0"


def test_retry_after_is_correct_to_the_second(stack: Stack, api_key: str) -> None:
    with (
        stack.another_relay(**_limits(ip_rpm=2, rate_window=3.0)) as (url, _),
        openai.OpenAI(base_url=f"{url}/v1", api_key=api_key, max_retries=0) as client,
    ):
        for _ in range(2):
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        with pytest.raises(openai.RateLimitError) as raised:
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        refused_at = time.monotonic()
        wait = int(raised.value.response.headers["retry-after"])
        assert 1 <= wait <= math.ceil(3.0 * 2)
        time.sleep(max(0.0, refused_at + wait - time.monotonic()))
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)


def test_anthropic_headers_and_rate_limit_error(stack: Stack, api_key: str) -> None:
    with (
        stack.another_relay(**_limits(ip_rpm=1)) as (url, _),
        anthropic.Anthropic(base_url=f"{url}/anthropic", api_key=api_key, max_retries=0) as c,
    ):
        raw = c.messages.with_raw_response.create(model=CLAUDE, max_tokens=5, messages=MESSAGES)
        assert raw.headers["anthropic-ratelimit-requests-limit"] == "1"
        assert raw.headers["anthropic-ratelimit-requests-remaining"] == "0"
        assert raw.headers["anthropic-ratelimit-requests-reset"].endswith("Z")
        with pytest.raises(anthropic.RateLimitError) as raised:
            c.messages.create(model=CLAUDE, max_tokens=5, messages=MESSAGES)
    assert raised.value.response.headers["retry-after"]


def test_gemini_gets_resource_exhausted(stack: Stack, api_key: str) -> None:
    with stack.another_relay(**_limits(ip_rpm=1)) as (url, _):
        options = genai_types.HttpOptions(base_url=f"{url}/gemini")
        with genai.Client(api_key=api_key, http_options=options) as gemini:
            gemini.models.generate_content(model="gemini-2.5-flash", contents="hi")
            with pytest.raises(genai_errors.ClientError) as raised:
                gemini.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert raised.value.code == 429 and raised.value.status == "RESOURCE_EXHAUSTED"
    assert "requests per minute" in (raised.value.message or "")


def test_requests_in_flight_are_capped_per_ip(stack: Stack, api_key: str) -> None:
    stack.set_faults(api_key, latency_ms=800)
    with stack.another_relay(**_limits(ip_max_in_flight=3)) as (url, _):
        outcome = asyncio.run(_burst(url, api_key, 10))
        after = asyncio.run(_burst(url, api_key, 3))
    assert outcome == Counter({200: 3, 429: 7})
    assert after == Counter({200: 3}), "the slots come back when the calls end"


def test_forwarded_addresses_count_only_from_trusted_proxies(stack: Stack, api_key: str) -> None:
    overrides = _limits(ip_rpm=1, trusted_proxies="127.0.0.1/32")
    with (
        stack.another_relay(**overrides) as (url, _),
        openai.OpenAI(base_url=f"{url}/v1", api_key=api_key, max_retries=0) as client,
    ):
        for address in ("198.51.100.1", "198.51.100.2"):  # two clients behind the proxy
            headers = {"X-Forwarded-For": f"203.0.113.7, {address}"}
            client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, extra_headers=headers
            )
    with (
        stack.another_relay(**_limits(ip_rpm=1)) as (url, _),
        openai.OpenAI(base_url=f"{url}/v1", api_key=api_key, max_retries=0) as client,
    ):
        client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, extra_headers={"X-Forwarded-For": "1.2.3.4"}
        )
        with pytest.raises(openai.RateLimitError):  # an untrusted peer's header is ignored
            client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, extra_headers={"X-Forwarded-For": "5.6.7.8"}
            )


def test_tokens_not_used_are_given_back(stack: Stack, api_key: str) -> None:
    with (
        stack.another_relay(**_limits(ip_tpm=1000)) as (url, _),
        openai.OpenAI(base_url=f"{url}/v1", api_key=api_key, max_retries=0) as client,
    ):
        first = client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, max_tokens=900
        )
        assert first.usage is not None and first.usage.total_tokens < 100
        # admitted on 900, it used a few: a second 900 fits only because they came back
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=MESSAGES, max_tokens=900
        )
    remaining = int(raw.headers["x-ratelimit-remaining-tokens"])
    assert remaining == 1000 - first.usage.total_tokens - 900
