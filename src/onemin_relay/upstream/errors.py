"""The one boundary where aiohttp exceptions and 1min.ai error bodies become core errors.

1min.ai answers errors in two envelopes (docs/1min-api.md §8): the flat one captured live,
``{"errorCode", "message", "details"?}`` with ``details`` a JSON *string*, and the documented
``{"success": false, "error": {"code", "message", "details"?}}``. Both are read here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import aiohttp
import orjson

from onemin_relay.core.errors import (
    AuthenticationFailed,
    InsufficientBalance,
    InvalidRequest,
    ModelNotFound,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    RelayError,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)

_MAX_MESSAGE = 500
_MAX_DETAILS = 5


class UpstreamConnectError(UpstreamUnavailable):
    """The request never reached 1min.ai (DNS, refused, TLS): safe to retry."""


@contextlib.contextmanager
def map_client_errors(phase: str = "request") -> Iterator[None]:
    """Translate aiohttp and timeout exceptions raised inside the block into core errors."""
    try:
        yield
    except RelayError:
        raise
    except TimeoutError as exc:
        raise UpstreamTimeout(f"1min.ai did not answer in time ({phase})") from exc
    except aiohttp.ClientConnectorError as exc:
        raise UpstreamConnectError("could not connect to 1min.ai") from exc
    except aiohttp.ServerDisconnectedError as exc:
        raise UpstreamError(f"1min.ai closed the connection ({phase})") from exc
    except (aiohttp.ClientPayloadError, aiohttp.ClientResponseError) as exc:
        raise UpstreamError(f"1min.ai sent a broken response ({phase})") from exc
    except (aiohttp.ClientError, ConnectionError) as exc:
        raise UpstreamError(f"connection to 1min.ai failed ({phase})") from exc


def error_from_response(status: int, body: bytes, retry_after: str | None = None) -> RelayError:
    """Map a non-2xx 1min.ai answer to the core error a client should see."""
    code, message = _read_error_body(body)
    if status == 401:
        return AuthenticationFailed("1min.ai rejected the API key")
    if status == 403:
        return PermissionDenied("1min.ai refused access to this resource")
    if status == 402:
        return InsufficientBalance("the 1min.ai account has insufficient credits")
    if status == 429:
        return RateLimited("rate limited by 1min.ai", retry_after=_parse_retry_after(retry_after))
    if status == 413:
        return PayloadTooLarge(message or "the upload is too large for 1min.ai")
    if code == "UNSUPPORTED_MODEL":
        return ModelNotFound(message or "the model is not supported by 1min.ai", param="model")
    if status == 503:
        return UpstreamUnavailable("1min.ai is temporarily unavailable")
    if status >= 500:
        return UpstreamError(f"1min.ai returned an internal error (HTTP {status})")
    if status in (400, 404, 409, 422):
        # 422 is 1min.ai rejecting the body the relay built; still worth showing what it said.
        text = message or f"1min.ai rejected the request (HTTP {status})"
        return InvalidRequest(text) if status != 422 else UpstreamError(text)
    return UpstreamError(f"1min.ai request failed (HTTP {status})")


def _read_error_body(body: bytes) -> tuple[str | None, str | None]:
    """(errorCode, message with up to five messages from ``details``), from either envelope."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, None
    if not isinstance(data, dict):
        return None, None
    nested = data.get("error")
    if isinstance(nested, dict):
        code, message, details = nested.get("code"), nested.get("message"), nested.get("details")
    else:
        code = data.get("errorCode")
        message = data.get("message") or (nested if isinstance(nested, str) else None)
        details = data.get("details")
    extra = [m for m in _detail_messages(details) if m != message][:_MAX_DETAILS]
    if isinstance(message, str) and extra:
        message = f"{message} ({'; '.join(extra)})"
    if isinstance(message, str):
        message = message[:_MAX_MESSAGE]
    return (code if isinstance(code, str) else None), (
        message if isinstance(message, str) else None
    )


def _detail_messages(details: Any) -> list[str]:
    if isinstance(details, str):
        try:
            details = orjson.loads(details)
        except orjson.JSONDecodeError:
            return []
    found: list[str] = []
    _collect_messages(details, found, depth=0)
    return list(dict.fromkeys(found))


def _collect_messages(node: Any, found: list[str], depth: int) -> None:
    if depth > 6 or len(found) >= _MAX_DETAILS * 2:
        return
    if isinstance(node, dict):
        message = node.get("message")
        if isinstance(message, str) and message:
            found.append(message)
        for value in node.values():
            if isinstance(value, dict | list):
                _collect_messages(value, found, depth + 1)
    elif isinstance(node, list):
        for item in node:
            _collect_messages(item, found, depth + 1)


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
