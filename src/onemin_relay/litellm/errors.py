"""The relay's errors as LiteLLM's own exception types, so LiteLLM's retries, Router
fallbacks and proxy status codes treat ``one_min/`` like any other provider.

    InvalidRequest 400, PayloadTooLarge 413  → BadRequestError
    AuthenticationFailed 401                 → AuthenticationError
    InsufficientBalance 402                  → PaymentRequiredError (a BadRequestError)
    PermissionDenied 403                     → PermissionDeniedError
    NotFound / ModelNotFound 404             → NotFoundError
    RateLimited 429                          → RateLimitError (with Retry-After)
    UpstreamError 502 (stream, JSON, tools)  → BadGatewayError
    UpstreamUnavailable 503                  → ServiceUnavailableError
    UpstreamTimeout 504, LiteLLM's timeout   → Timeout
    anything else                            → InternalServerError
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from litellm.exceptions import (
    AuthenticationError,
    BadGatewayError,
    BadRequestError,
    InternalServerError,
    NotFoundError,
    PaymentRequiredError,
    PermissionDeniedError,
    RateLimitError,
    ServiceUnavailableError,
    Timeout,
)

from onemin_relay.core.errors import RateLimited, RelayError

PROVIDER = "one_min"
# LiteLLM's classes share a constructor shape (message, model, llm_provider, response)
_STATUS_ERRORS: dict[int, Any] = {
    400: BadRequestError,
    401: AuthenticationError,
    402: PaymentRequiredError,
    403: PermissionDeniedError,
    404: NotFoundError,
    413: BadRequestError,
    429: RateLimitError,
    502: BadGatewayError,
    503: ServiceUnavailableError,
}


@contextmanager
def litellm_errors(model: str, url: str) -> Iterator[None]:
    """Raise relay errors and timeouts leaving the block as LiteLLM exceptions."""
    try:
        yield
    except RelayError as exc:
        raise as_litellm(exc, model, url) from exc
    except TimeoutError as exc:  # LiteLLM's own ``timeout=`` ran out
        raise Timeout(f"1min.ai did not answer in time ({exc})", model, PROVIDER) from exc


def as_litellm(exc: RelayError, model: str, url: str) -> Exception:
    """The LiteLLM exception for ``exc``; its message never holds a key (the relay's don't)."""
    message = f"1min.ai: {exc.message}"
    if exc.status == 504:
        return Timeout(message, model, PROVIDER, exception_status_code=504)
    headers = {}
    if isinstance(exc, RateLimited) and exc.retry_after is not None:
        headers["retry-after"] = str(max(1, round(exc.retry_after)))
    response = httpx.Response(
        exc.status, headers=headers, request=httpx.Request("POST", url), text=message
    )
    kind = _STATUS_ERRORS.get(exc.status, InternalServerError)
    error: Exception = kind(message=message, model=model, llm_provider=PROVIDER, response=response)
    if isinstance(error, InternalServerError):
        error.status_code = exc.status  # keeps 500 for a relay bug, 409 and the rarer others
    return error
