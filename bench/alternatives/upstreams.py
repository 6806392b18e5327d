"""The upstream clients compared: the relay's own ``OneMinClient`` on aiohttp, and the same
two calls (JSON chat, SSE chat) on pyreqwest and on pyqwest (both Rust: reqwest/hyper under
Tokio), with the relay's timeouts, error mapping, pooling and stream parsing.

The Rust clients set the read timeout per client, not per request, so each keeps two clients
(two pools): one whose read timeout is the first-byte timeout (JSON calls) and one whose read
timeout is the between-events timeout (streams). That costs nothing per request.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import aiohttp
import orjson

from onemin_relay import __version__
from onemin_relay.core.errors import RelayError, UpstreamError, UpstreamTimeout
from onemin_relay.core.types import Finish, StreamEvent
from onemin_relay.settings import Settings
from onemin_relay.upstream.client import CHAT_PATH, CHAT_TYPE, ChatCall, OneMinClient
from onemin_relay.upstream.errors import UpstreamConnectError, error_from_response
from onemin_relay.upstream.records import ChatRecord, parse_chat_response
from onemin_relay.upstream.stream import ChatStreamParser

USER_AGENT = f"onemin-relay/{__version__}"


class AiohttpUpstream:
    """The relay's client as ``app.py`` builds it: one pooled session, no cookie jar."""

    def __init__(self, settings: Settings) -> None:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=settings.upstream_pool_size, ttl_dns_cache=300),
            headers={"User-Agent": USER_AGENT},
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        self.client = OneMinClient(self.session, settings)
        self.chat = self.client.chat
        self.stream_chat = self.client.stream_chat

    async def aclose(self) -> None:
        await self.session.close()


class PyreqwestUpstream:
    """``OneMinClient.chat`` and ``stream_chat`` on pyreqwest (no retries: the success path
    of the relay's retry loop is a counter and one loop turn)."""

    def __init__(self, settings: Settings) -> None:
        from pyreqwest.client import ClientBuilder

        def build(read_timeout: float) -> Any:
            return (
                ClientBuilder()
                .max_connections(settings.upstream_pool_size)
                .timeout(timedelta(seconds=settings.total_timeout))
                .connect_timeout(timedelta(seconds=settings.connect_timeout))
                .read_timeout(timedelta(seconds=read_timeout))
                .user_agent(USER_AGENT)
                .follow_redirects(False)
                .build()
            )

        self._json = build(settings.first_byte_timeout)
        self._streams = build(settings.read_timeout)
        self._chat_url = settings.upstream_base + CHAT_PATH
        self._stream_url = self._chat_url + "?isStreaming=true"

    async def aclose(self) -> None:
        await self._json.close()
        await self._streams.close()

    async def chat(self, call: ChatCall, api_key: str) -> ChatRecord:
        request = self._json.post(self._chat_url).headers(_headers(api_key))
        with _map_errors("waiting for the reply"):
            response = await request.body_bytes(_body(call)).build().send()
            payload = (await response.bytes()).to_bytes()
        if response.status >= 300:
            raise error_from_response(response.status, payload, response.get_header("Retry-After"))
        return parse_chat_response(payload)

    @asynccontextmanager
    async def stream_chat(
        self, call: ChatCall, api_key: str
    ) -> AsyncIterator[AsyncIterator[StreamEvent]]:
        """Leaving the block (also by cancellation) drops the response: reqwest closes the
        connection of a body that was not read to the end."""
        builder = self._streams.post(self._stream_url).headers(_headers(api_key))
        request = builder.body_bytes(_body(call)).build_streamed()
        async with contextlib.AsyncExitStack() as stack:
            with _map_errors("waiting for the reply"):
                response = await stack.enter_async_context(request)
            if response.status >= 300:
                with _map_errors("reading the reply"):
                    payload = (await response.bytes()).to_bytes()
                raise error_from_response(response.status, payload)
            yield _events(response)


class PyqwestUpstream:
    """The same two calls on pyqwest (hyper and reqwest's pool under a Tokio runtime, like
    pyreqwest, with its own Python binding); read timeouts per transport, as pyreqwest."""

    def __init__(self, settings: Settings) -> None:
        from pyqwest import Client, HTTPTransport

        def build(read_timeout: float) -> Any:
            transport = HTTPTransport(
                timeout=settings.total_timeout,
                connect_timeout=settings.connect_timeout,
                read_timeout=read_timeout,
                max_connections_per_address=settings.upstream_pool_size,
                follow_redirects=False,
                enable_otel=False,
            )
            return Client(transport)

        self._json = build(settings.first_byte_timeout)
        self._streams = build(settings.read_timeout)
        self._chat_url = settings.upstream_base + CHAT_PATH
        self._stream_url = self._chat_url + "?isStreaming=true"

    async def aclose(self) -> None:
        """The transports close with the process (pyqwest has no close on a client)."""

    async def chat(self, call: ChatCall, api_key: str) -> ChatRecord:
        with _map_errors("waiting for the reply"):
            response = await self._json.post(self._chat_url, _headers(api_key), _body(call))
        if response.status >= 300:
            retry_after = response.headers.get("Retry-After")
            raise error_from_response(response.status, response.content, retry_after)
        return parse_chat_response(response.content)

    @asynccontextmanager
    async def stream_chat(
        self, call: ChatCall, api_key: str
    ) -> AsyncIterator[AsyncIterator[StreamEvent]]:
        opened = self._streams.stream("POST", self._stream_url, _headers(api_key), _body(call))
        async with contextlib.AsyncExitStack() as stack:
            with _map_errors("waiting for the reply"):
                response = await stack.enter_async_context(opened)
            if response.status >= 300:
                with _map_errors("reading the reply"):
                    payload = b"".join([bytes(c) async for c in response.content])
                raise error_from_response(response.status, payload)
            yield _pyqwest_events(response)


Upstream = AiohttpUpstream | PyreqwestUpstream | PyqwestUpstream
NAMES = ("aiohttp", "pyreqwest", "pyqwest")
_CLASSES: dict[str, type[Upstream]] = {
    "aiohttp": AiohttpUpstream,
    "pyreqwest": PyreqwestUpstream,
    "pyqwest": PyqwestUpstream,
}


def make(name: str, settings: Settings) -> Upstream:
    return _CLASSES[name](settings)


def _headers(api_key: str) -> dict[str, str]:
    return {"API-KEY": api_key, "Content-Type": "application/json"}


def _body(call: ChatCall) -> bytes:
    prompt = {"prompt": call.prompt}
    return orjson.dumps({"type": CHAT_TYPE, "model": call.model, "promptObject": prompt})


async def _events(response: Any) -> AsyncIterator[StreamEvent]:
    parser = ChatStreamParser(response.get_header("Content-Type"))
    reader = response.body_reader
    with _map_errors("streaming the reply"):
        while (chunk := await reader.read_chunk()) is not None:
            for event in parser.feed(chunk.to_bytes()):
                yield event
                if isinstance(event, Finish):
                    return
        for event in parser.finish():
            yield event


async def _pyqwest_events(response: Any) -> AsyncIterator[StreamEvent]:
    parser = ChatStreamParser(response.headers.get("Content-Type"))
    with _map_errors("streaming the reply"):
        async for chunk in response.content:
            for event in parser.feed(bytes(chunk)):
                yield event
                if isinstance(event, Finish):
                    return
        for event in parser.finish():
            yield event


@contextlib.contextmanager
def _map_errors(phase: str) -> Iterator[None]:
    """pyreqwest's and pyqwest's errors as the relay's (``upstream/errors.map_client_errors``
    for aiohttp). pyqwest raises the builtin TimeoutError and ConnectionError, and its own
    errors for broken responses."""
    try:
        yield
    except RelayError:
        raise
    except TimeoutError as exc:  # pyreqwest's timeout errors subclass it too
        raise UpstreamTimeout(f"1min.ai did not answer in time ({phase})") from exc
    except Exception as exc:
        if type(exc).__name__ in ("ConnectError", "ConnectionRefusedError"):
            raise UpstreamConnectError("could not connect to 1min.ai") from exc
        raise UpstreamError(f"connection to 1min.ai failed ({phase})") from exc
