"""OpenAI's error envelope, shared by every OpenAI-compatible endpoint."""

from __future__ import annotations

import math

import orjson
from aiohttp import web

from onemin_relay.core.errors import (
    AuthenticationFailed,
    InsufficientBalance,
    PermissionDenied,
    RateLimited,
    RelayError,
    UpstreamError,
    UpstreamUnavailable,
)


def error_type(exc: RelayError) -> str:
    match exc:
        case AuthenticationFailed():
            return "authentication_error"
        case PermissionDenied():
            return "permission_error"
        case InsufficientBalance():
            return "insufficient_quota"
        case RateLimited():
            return "rate_limit_error"
        case UpstreamError():
            return "upstream_error"
    return "invalid_request_error" if exc.status < 500 else "server_error"


def error_body(exc: RelayError) -> dict[str, dict[str, str | None]]:
    return {
        "error": {
            "message": exc.message,
            "type": error_type(exc),
            "param": exc.param,
            "code": exc.code,
        }
    }


def error_headers(exc: RelayError) -> dict[str, str]:
    """Retry hints. The SDKs retry 5xx on their own; after 1min.ai may have billed the
    call, ``x-should-retry: false`` stops them from paying twice."""
    headers: dict[str, str] = {}
    if isinstance(exc, RateLimited) and exc.retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    if exc.status >= 500 and not isinstance(exc, UpstreamUnavailable):
        headers["x-should-retry"] = "false"
    return headers


def render_error(exc: RelayError) -> web.Response:
    return web.Response(
        body=orjson.dumps(error_body(exc)),
        status=exc.status,
        headers=error_headers(exc),
        content_type="application/json",
    )


def render_error_frame(exc: RelayError) -> bytes:
    """The in-stream error: the SDKs raise on a ``data:`` object with an ``error`` key."""
    return b"data: " + orjson.dumps(error_body(exc)) + b"\n\n"
