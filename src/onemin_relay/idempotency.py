"""``Idempotency-Key``: a paid call retried by its client is answered, not run (or billed) twice.

The official SDKs retry 5xx and 429 on their own. A POST carrying ``Idempotency-Key`` that
repeats one seen in the last 24 hours from the same credentials gets the first outcome back
(marked ``Idempotent-Replayed: true``), or 409 while the first is still running; no second
upstream call, no second charge. Only successful outcomes are kept: a call that failed was not
charged, so its retry is free to run. Streams are kept as the bytes the client received and
replayed whole. The record lives in the gateway store, so every relay process sharing it sees it.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from onemin_relay.core.errors import Conflict, InvalidRequest
from onemin_relay.gateway.policy import SETTLED
from onemin_relay.gateway.storage import Remembered, Store
from onemin_relay.relay_path import RELAY_KEY, canonical_path
from onemin_relay.surfaces.common import CAPTURE, Capture

HEADER = "Idempotency-Key"
ADMIN_PREFIX = "/admin/"
MAX_KEY_LENGTH = 255
_CREDENTIAL_HEADERS = ("Authorization", "x-api-key", "x-goog-api-key")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def holder_of(request: web.Request) -> str:
    """Who holds an idempotency key: a hash of every credential the request carries, and
    the endpoint (a key reused on another endpoint is another request)."""
    parts = [request.method, canonical_path(request), request.match_info.get(RELAY_KEY, "")]
    parts += [request.headers.get(name, "") for name in _CREDENTIAL_HEADERS]
    parts.append(request.query.get("key", ""))
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def middleware(store: Callable[[], Store], running_lease: float) -> Middleware:
    """The middleware; ``store`` gives the gateway store once the app has opened it. A first
    request still marked running after ``running_lease`` seconds died with its process."""

    @web.middleware
    async def idempotent(request: web.Request, handler: Handler) -> web.StreamResponse:
        key = request.headers.get(HEADER, "").strip()
        if not key or request.method != "POST" or request.path.startswith(ADMIN_PREFIX):
            return await handler(request)  # the admin API's answers hold fresh secrets
        if len(key) > MAX_KEY_LENGTH:
            raise InvalidRequest(f"{HEADER} must be at most {MAX_KEY_LENGTH} characters")
        holder, records = holder_of(request), store()
        now = time.time()
        first = await records.remember(holder, key, now, stale_before=now - running_lease)
        if first is not None:
            return _replay(first)
        capture = request[CAPTURE] = Capture()
        kept: list[bool] = []
        forgotten: list[bool] = []  # from here on the key may be a retry's: never forget it

        async def stream_complete(response: web.StreamResponse) -> None:
            """Kept before the stream's end reaches the client (see ``Capture``), and kept
            even if the client, having read it all, hangs up while this is written."""
            kept.append(True)
            body = b"".join(capture.frames)
            outcome = records.record_outcome(holder, key, response.status, _type_of(response), body)
            await asyncio.shield(outcome)

        async def stream_failing() -> None:
            """Forgotten before the stream's error reaches the client, who may retry the
            moment it reads it: the retry then runs afresh, and is not forgotten later."""
            forgotten.append(True)
            await records.forget(holder, key)

        capture.complete, capture.failing = stream_complete, stream_failing
        settled = SETTLED.set([])
        try:
            response = await handler(request)
        except BaseException:
            if not kept and not forgotten:
                await records.forget(holder, key)
            raise
        finally:
            statuses = SETTLED.get() or []
            SETTLED.reset(settled)
        if any(status >= 400 for status in statuses):
            capture.failed = True  # a stream that failed after its headers: not replayable
        body = _kept_body(response, capture)
        if forgotten:
            return response
        if body is None:
            await records.forget(holder, key)
        elif not kept:
            outcome = records.record_outcome(holder, key, response.status, _type_of(response), body)
            await asyncio.shield(outcome)  # the client may hang up as soon as it has the answer
        return response

    return idempotent


def _replay(first: Remembered) -> web.Response:
    if first.state == "running":
        raise Conflict(f"a request with this {HEADER} is still in progress; retry shortly")
    return web.Response(
        status=first.status or 200,
        body=first.body or b"",
        headers={"Content-Type": first.content_type or "application/json",
                 "Idempotent-Replayed": "true"},
    )  # fmt: skip


def _kept_body(response: web.StreamResponse, capture: Capture) -> bytes | None:
    """The answer to keep, or None when there is nothing to replay (a failure, or a stream
    that was not captured whole)."""
    if response.status >= 400:
        return None
    if isinstance(response, web.Response):
        body = response.body
        return bytes(body) if isinstance(body, bytes | bytearray) else None
    if capture.failed or not capture.frames:
        return None
    return b"".join(capture.frames)


def _type_of(response: web.StreamResponse) -> str:
    return response.headers.get("Content-Type", "application/json")
