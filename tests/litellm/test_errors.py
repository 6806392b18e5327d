"""Errors arrive as LiteLLM's own exception types, so its Router retries and falls back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import litellm
import pytest
from litellm.exceptions import MidStreamFallbackError, PaymentRequiredError

from onemin_relay.core.errors import (
    Conflict,
    InsufficientBalance,
    InvalidRequest,
    ModelNotFound,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    RelayError,
    UpstreamError,
    UpstreamTimeout,
)
from onemin_relay.litellm.errors import as_litellm
from tests.conftest import Stack

Asker = Callable[..., Any]


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (400, litellm.BadRequestError),
        (401, litellm.AuthenticationError),
        (429, litellm.RateLimitError),
        (503, litellm.ServiceUnavailableError),
    ],
)
def test_upstream_status_becomes_litellm_error(
    ask: Asker, stack: Stack, api_key: str, status: int, expected: type[Exception]
) -> None:
    stack.set_faults(api_key, status=status, retry_after=0)
    with pytest.raises(expected) as caught:
        ask()
    assert caught.value.status_code == status  # type: ignore[attr-defined]
    assert api_key not in str(caught.value), "a key never appears in an error"


def test_unknown_model_is_not_found(ask: Asker) -> None:
    with pytest.raises(litellm.NotFoundError):
        ask(model="one_min/no-such-model-anywhere")


def test_no_key_is_an_authentication_error(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ONE_MIN_API_KEY", "ONEMIN_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(litellm.AuthenticationError, match="ONE_MIN_API_KEY"):
        litellm.completion(
            model="one_min/gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            api_base=stack.emulator_url,
        )


def test_a_base_url_that_is_not_http_is_a_bad_request(ask: Asker) -> None:
    with pytest.raises(litellm.BadRequestError, match="ONEMIN_UPSTREAM_URL must be an http"):
        ask(api_base="ftp://127.0.0.1:1")


def test_slow_upstream_is_a_timeout(ask: Asker, stack: Stack, api_key: str) -> None:
    stack.set_faults(api_key, latency_ms=2000)
    with pytest.raises(litellm.Timeout):
        ask(timeout=0.3)


async def test_error_mid_stream_is_a_litellm_error(aask: Asker, stack: Stack, api_key: str) -> None:
    stack.set_faults(api_key, error_after_chunks=2)
    stream = await aask(stream=True)
    with pytest.raises(MidStreamFallbackError) as caught:
        async for _ in stream:
            pass
    # LiteLLM wraps a 5xx after the first chunk so its Router can fall back mid-stream
    assert isinstance(caught.value.original_exception, litellm.BadGatewayError)


def test_empty_conversation_is_a_bad_request(ask: Asker, stack: Stack, api_key: str) -> None:
    with pytest.raises(litellm.BadRequestError, match="no content"):
        ask(messages=[{"role": "user", "content": "  "}])
    assert stack.chat_requests(api_key) == [], "nothing reached 1min.ai"


def test_router_falls_back_from_a_failing_one_min_model(stack: Stack, api_key: str) -> None:
    broken = f"{api_key}-broken"
    stack.set_faults(broken, status=503)
    router = litellm.Router(
        model_list=[
            {
                "model_name": "primary",
                "litellm_params": {
                    "model": "one_min/gpt-4o-mini",
                    "api_key": broken,
                    "api_base": stack.emulator_url,
                },
            },
            {
                "model_name": "backup",
                "litellm_params": {
                    "model": "one_min/gpt-4o",
                    "api_key": api_key,
                    "api_base": stack.emulator_url,
                },
            },
        ],
        fallbacks=[{"primary": ["backup"]}],
        num_retries=0,
    )
    response = router.completion(model="primary", messages=[{"role": "user", "content": "hi"}])
    assert response.choices[0].message.content == "Echo: hi"
    assert [r["body"]["model"] for r in stack.chat_requests(api_key)] == ["gpt-4o"]
    assert stack.chat_requests(broken), "the primary was tried first"


@pytest.mark.parametrize(
    ("error", "expected", "status"),
    [
        (InvalidRequest("bad"), litellm.BadRequestError, 400),
        (PayloadTooLarge("big"), litellm.BadRequestError, 413),
        (InsufficientBalance("broke"), PaymentRequiredError, 402),
        (PermissionDenied("no"), litellm.PermissionDeniedError, 403),
        (ModelNotFound("gone"), litellm.NotFoundError, 404),
        (UpstreamError("odd"), litellm.BadGatewayError, 502),
        (UpstreamTimeout("slow"), litellm.Timeout, 504),
        (Conflict("twice"), litellm.InternalServerError, 409),
    ],
)
def test_every_relay_error_has_a_litellm_type(
    error: RelayError, expected: type[Exception], status: int
) -> None:
    mapped = as_litellm(error, "gpt-4o", "http://127.0.0.1:1")
    assert type(mapped) is expected
    assert mapped.status_code == status  # type: ignore[attr-defined]


def test_rate_limit_carries_retry_after() -> None:
    mapped = as_litellm(RateLimited("slow down", retry_after=7.2), "gpt-4o", "http://127.0.0.1:1")
    assert isinstance(mapped, litellm.RateLimitError)
    assert mapped.response.headers["retry-after"] == "7"
