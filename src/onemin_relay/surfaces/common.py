"""What every surface shares: app state keys, body decoding, caller identity, the SSE writer."""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import math
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from ipaddress import IPv4Network, IPv6Network, ip_address
from typing import Any, TypeVar

import msgspec
import orjson
from aiohttp import web

from onemin_relay.core.errors import (
    InvalidRequest,
    RateLimited,
    RelayError,
    UpstreamUnavailable,
)
from onemin_relay.core.held_frames import hold_frames, stop_holding
from onemin_relay.core.ids import unguessable_id
from onemin_relay.core.types import Caller, FilePart
from onemin_relay.features import Features
from onemin_relay.gateway.policy import Gateway
from onemin_relay.gateway.response_store import ResponseStore
from onemin_relay.gateway.traces import client_id
from onemin_relay.metrics import METRICS
from onemin_relay.pipeline import Pipeline
from onemin_relay.relay_path import RELAY_KEY
from onemin_relay.settings import Settings
from onemin_relay.shared_state import SharedState

log = logging.getLogger(__name__)

PIPELINE = web.AppKey("pipeline", Pipeline)
FEATURES = web.AppKey("features", Features)
SETTINGS = web.AppKey("settings", Settings)
RESPONSE_STORE = web.AppKey("response_store", ResponseStore)
GATEWAY = web.AppKey("gateway", Gateway)
SHARED = web.AppKey("shared", SharedState)


class Capture:
    """What a streamed answer sent, kept for an idempotent replay (``idempotency.py``).
    ``complete`` is awaited once the last frame is written and before the stream ends, so a
    client that retries the moment it has the whole stream finds it kept, not running;
    ``failing`` before an error frame leaves, so a client that retries the moment it reads
    the error finds nothing kept and nothing running."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.failed = False
        self.complete: Callable[[web.StreamResponse], Awaitable[None]] | None = None
        self.failing: Callable[[], Awaitable[None]] | None = None


class ReportedInStream(Exception):
    """Raised by a stream's frames after they have told the client of ``error`` themselves
    (a Responses ``response.failed`` event, a Gemini array's error element): the stream
    failed, and no error frame is to be added."""

    def __init__(self, error: RelayError) -> None:
        super().__init__(error.message)
        self.error = error


CAPTURE = web.RequestKey("idempotency_capture", Capture)
T = TypeVar("T")
IPNetwork = IPv4Network | IPv6Network
REQUEST_ID = web.RequestKey("request_id", str)
RECEIVED = web.RequestKey("received", float)  # time.monotonic() when the request arrived
CONVERSATION_HEADER = "x-onemin-conversation-id"
# an x-request-id a client may choose: short, and safe in a header, a log line and a URL
_CLIENT_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")

# Below this many unsent bytes a write returns at once (aiohttp drains past 64 KiB).
_BACKED_UP = 32 * 1024

SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}


class RequestTimeout(InvalidRequest):
    status = 408
    code = "request_timeout"


async def read_bytes(request: web.Request) -> bytes:
    """The whole body, within ``ONEMIN_BODY_TIMEOUT`` (as nginx's ``client_body_timeout``):
    a client trickling a large body a byte at a time cannot hold a connection forever.
    A body already here whole (most are: one packet) needs no deadline, nor its timer."""
    if request.content.is_eof():
        return await request.read()
    deadline = request.app[SETTINGS].body_timeout
    try:
        async with asyncio.timeout(deadline):
            return await request.read()
    except TimeoutError:
        request.content.feed_eof()  # the rest is not wanted: no lingering to read it
        raise RequestTimeout(f"the request body did not arrive within {deadline:g} s") from None


async def read_body(request: web.Request, decoder: msgspec.json.Decoder[T]) -> T:
    """Decode a JSON body into a typed Struct; schema errors become a 400 naming the field."""
    raw = await read_bytes(request)
    if not raw:
        raise InvalidRequest("the request body is empty; send a JSON object")
    try:
        return decoder.decode(raw)
    except msgspec.ValidationError as exc:
        raise InvalidRequest(f"invalid request: {exc}", param=_param_from(str(exc))) from None
    except msgspec.DecodeError:
        raise InvalidRequest("the request body is not valid JSON") from None
    except UnicodeDecodeError:
        raise InvalidRequest("the request body is not valid UTF-8") from None
    except RecursionError:
        raise InvalidRequest("the request body is nested too deeply") from None


async def read_json(request: web.Request) -> Any:
    """The body as plain JSON values, for protocols that need a look before typing it."""
    raw = await read_bytes(request)
    if not raw:
        raise InvalidRequest("the request body is empty; send a JSON object")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidRequest("the request body is not valid JSON") from None
    except RecursionError:
        raise InvalidRequest("the request body is nested too deeply") from None


def convert(data: Any, into: type[T]) -> T:
    """Type plain JSON values as ``into``; schema errors become a 400 naming the field."""
    try:
        return msgspec.convert(data, into)
    except msgspec.ValidationError as exc:
        raise InvalidRequest(f"invalid request: {exc}", param=_param_from(str(exc))) from None


def file_part(file_data: str, filename: str | None, param: str) -> FilePart:
    """An OpenAI ``file_data`` (a ``data:`` URI, or bare base64 taken as a PDF) as a FilePart."""
    header, sep, payload = file_data.partition(",")
    if sep and header.startswith("data:"):
        media_type = header[5:].split(";", 1)[0] or "application/octet-stream"
    else:
        media_type, payload = "application/pdf", file_data
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest("'file_data' is not valid base64", param=param) from None
    return FilePart(data=data, media_type=media_type, filename=filename)


def _param_from(message: str) -> str | None:
    """The field a msgspec error names.

    ``… - at `$.messages[0].content` `` → ``messages[0].content``;
    ``Object missing required field `messages` `` → ``messages``.
    """
    path = ""
    marker = "- at `$"
    start = message.rfind(marker)
    if start >= 0:
        path = message[start + len(marker) :].rstrip("`").lstrip(".")
    missing = "missing required field `"
    at = message.find(missing)
    if at >= 0:
        field = message[at + len(missing) :].split("`", 1)[0]
        path = f"{path}.{field}" if path else field
    return path or None


def bearer_or_header(request: web.Request, *header_names: str) -> str | None:
    """The credential from ``Authorization: Bearer …`` or the first named header present."""
    auth = request.headers.get("Authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    for name in header_names:
        header = request.headers.get(name)
        if header and header.strip():
            return header.strip()
    return None


def caller_from(request: web.Request, *header_names: str) -> Caller:
    return caller_with_key(request, bearer_or_header(request, *header_names))


def caller_with_key(request: web.Request, api_key: str | None) -> Caller:
    """Who is calling: the key the protocol carries, a relay key from the path, the
    address, the route (the ledger's surface) and this request's id."""
    resource = request.match_info.route.resource
    idempotency = request.headers.get("Idempotency-Key", "").strip() or None
    return Caller(
        api_key=api_key,
        client_ip=client_address(request, request.app[SETTINGS].trusted_proxy_networks),
        relay_key=request.match_info.get(RELAY_KEY),
        surface=resource.canonical if resource is not None else "",
        request_id=request_id(request),
        idempotency_key=idempotency,
        conversation_id=client_id(request.headers.get(CONVERSATION_HEADER)),
        received=request.get(RECEIVED, 0.0),
    )


def client_address(request: web.Request, trusted: tuple[IPNetwork, ...]) -> str:
    """The client's address: the socket's peer, unless that peer is a trusted proxy; then
    the nearest address in ``X-Forwarded-For`` (or ``Forwarded: for=``) that is not one,
    read from the right, since only the proxies' own additions can be believed."""
    peer = request.remote or ""
    if not trusted or not within(peer, trusted):
        return peer
    chain = _forwarded_chain(request)
    for address in reversed(chain):
        if not within(address, trusted):
            return address
    return chain[0] if chain else peer


def _forwarded_chain(request: web.Request) -> list[str]:
    forwarded = request.headers.getall("X-Forwarded-For", [])
    chain = [part.strip() for value in forwarded for part in value.split(",") if part.strip()]
    if chain:
        return chain
    for value in request.headers.getall("Forwarded", []):
        for element in value.split(","):
            for pair in element.split(";"):
                name, _, found = pair.strip().partition("=")
                if name.lower() == "for" and found:
                    chain.append(_host_of(found.strip('"')))
    return chain


def _host_of(node: str) -> str:
    """``[2001:db8::1]:4711`` → ``2001:db8::1``; ``192.0.2.60:4711`` → ``192.0.2.60``."""
    if node.startswith("["):
        return node[1:].split("]", 1)[0]
    return node.split(":", 1)[0] if node.count(":") == 1 else node


def within(address: str, networks: tuple[IPNetwork, ...]) -> bool:
    """Whether ``address`` (text) lies in one of ``networks``; never for a non-address."""
    try:
        ip = ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def request_id(request: web.Request) -> str:
    """This request's id (also sent back as ``x-request-id``): the client's own
    ``x-request-id`` if it is short and plain, else one made on first use that no other
    caller can guess (it labels the answer, see ``core/ids.py``)."""
    found = request.get(REQUEST_ID)
    if found is None:
        given = request.headers.get("x-request-id", "")
        if not _CLIENT_REQUEST_ID.fullmatch(given):
            given = unguessable_id("req_")
        found = request[REQUEST_ID] = given
    return str(found)


def error_headers(exc: RelayError) -> dict[str, str]:
    """Retry hints for any protocol. The SDKs retry 5xx on their own; after 1min.ai may have
    billed the call, ``x-should-retry: false`` stops them from paying twice."""
    headers: dict[str, str] = {}
    if isinstance(exc, RateLimited) and exc.retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    if exc.status >= 500 and not isinstance(exc, UpstreamUnavailable):
        headers["x-should-retry"] = "false"
    return headers


def error_response(exc: RelayError, body: dict[str, Any]) -> web.Response:
    """An error in a protocol's envelope ``body``, with the status and headers ``exc`` implies
    (and the connection closed after it, when the rest of the request is not worth reading)."""
    response = json_response(body, status=exc.status, headers=error_headers(exc))
    if isinstance(exc, RequestTimeout):
        response.force_close()
    return response


def json_response(
    payload: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps(payload), status=status, headers=headers, content_type="application/json"
    )


class _HeldFrames:
    """Frames rendered but not yet written: they leave together when the upstream reader has
    nothing more ready (see ``core/held_frames.py``), or when the stream ends.

    A write that fails while the upstream reader sends is kept, not raised into the reader:
    the writer raises it in its own frame, where a stalled or vanished client is handled.
    """

    def __init__(self, response: web.StreamResponse, request: web.Request, timeout: float):
        self.frames: list[bytes] = []
        self.failure: TimeoutError | ConnectionResetError | None = None
        self._response = response
        self._transport = request.transport
        self._timeout = timeout
        self._owner = asyncio.current_task()

    async def send_for_reader(self) -> None:
        if asyncio.current_task() is not self._owner or self.failure is not None:
            return  # a task that inherited the request's context is not its writer
        try:
            await self.send()
        except (TimeoutError, ConnectionResetError) as exc:
            self.failure = exc
            if isinstance(exc, TimeoutError) and self._transport is not None:
                # dropped now, not at the next frame: losing the connection cancels the
                # request, upstream call included, even if 1min.ai sends nothing more
                log.warning("client stopped reading for %ss; stream dropped", self._timeout)
                self._transport.abort()

    async def send(self) -> None:
        if self.failure is not None:
            raise self.failure
        if not self.frames:
            return
        data = self.frames[0] if len(self.frames) == 1 else b"".join(self.frames)
        self.frames.clear()
        # a write can only wait once the socket's send buffer is backed up, so the deadline
        # is armed only then (it costs ~6 µs per write)
        if self._transport is not None and self._transport.get_write_buffer_size() < _BACKED_UP:
            await self._response.write(data)
            return
        async with asyncio.timeout(self._timeout):
            await self._response.write(data)


async def write_stream(
    request: web.Request,
    frames: AsyncIterator[bytes],
    error_frame: Callable[[RelayError], bytes],
    write_timeout: float,
    headers: dict[str, str] = SSE_HEADERS,
) -> web.StreamResponse:
    """Send frames as they come, those of one upstream read together. An error after the
    headers becomes an in-stream frame.

    A client that stops reading for ``write_timeout`` seconds is dropped, so a stalled
    reader cannot pin an upstream stream open. Cancellation (client gone) propagates.
    """
    response = web.StreamResponse(headers=headers)
    capture = request.get(CAPTURE)
    held = _HeldFrames(response, request, write_timeout)
    holding = hold_frames(held.send_for_reader)
    try:
        await response.prepare(request)  # the client may be gone already: same as mid-stream
        async for frame in frames:
            if capture is not None:
                capture.frames.append(frame)
            held.frames.append(frame)
            if held.failure is not None:
                raise held.failure
        await held.send()
    except (RelayError, ReportedInStream) as exc:
        error = exc.error if isinstance(exc, ReportedInStream) else exc
        if capture is not None:
            capture.failed = True
            if capture.failing is not None:
                await capture.failing()
        log.warning("stream ended with %s (%s): %s", error.code, error.status, error.message)
        request.app[METRICS].errors.labels(error.code).inc()
        if isinstance(exc, RelayError):
            held.frames.append(error_frame(exc))
        await held.send()
    except TimeoutError:
        if capture is not None:
            capture.failed = True
        log.warning("client stopped reading for %ss; stream dropped", write_timeout)
        if (
            request.transport is not None
        ):  # not close(): it would wait to flush to a client not reading
            request.transport.abort()
        return response
    except ConnectionResetError:
        if capture is not None:
            capture.failed = True
        log.debug("client went away mid-stream")
        return response
    finally:
        stop_holding(holding)
    if capture is not None and capture.complete is not None and not capture.failed:
        await capture.complete(response)
    await response.write_eof()
    return response
