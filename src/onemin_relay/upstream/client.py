"""The 1min.ai HTTP client: chat (JSON and SSE), asset uploads and the model catalog.

One ``ClientSession`` per process is shared by every call (see ``app.py``). Every call has a
timeout; only calls that provably never reached 1min.ai are retried (``retry.py``).
"""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import msgspec
import orjson
from yarl import URL

from onemin_relay.core.errors import RateLimited, UpstreamError, UpstreamUnavailable
from onemin_relay.core.held_frames import send_held
from onemin_relay.core.types import Finish, StreamEvent
from onemin_relay.settings import Settings
from onemin_relay.upstream.errors import (
    UpstreamConnectError,
    error_from_response,
    map_client_errors,
)
from onemin_relay.upstream.records import ChatRecord, parse_chat_response
from onemin_relay.upstream.retry import RetryBudget, backoff_delay
from onemin_relay.upstream.stream import ChatStreamParser

CHAT_PATH = "/api/chat-with-ai"
ASSETS_PATH = "/api/assets"
MODELS_PATH = "/models"
CHAT_TYPE = "UNIFY_CHAT_WITH_AI"
_RETRY_WAIT_CAP = 2.0
_MODELS_TIMEOUT = 15.0

# 1min.ai rejects uploads whose filename has no extension ("file type isn't supported").
_EXTENSIONS = {
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/jpg": "jpg",
    "image/webp": "webp",
    "image/gif": "gif",
    "image/heic": "heic",
    "application/pdf": "pdf",
    "text/plain": "txt",
    "text/csv": "csv",
    "text/markdown": "md",
    "application/json": "json",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "audio/mpeg": "mp3",
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/ogg": "ogg",
    "audio/webm": "webm",
    "audio/flac": "flac",
    "audio/mp4": "m4a",
}


class ChatCall(msgspec.Struct, frozen=True):
    """One chat-with-ai call: the flattened prompt plus what is attached to it."""

    model: str
    prompt: str
    images: tuple[str, ...] = ()  # asset paths (fileContent.path) or URLs
    files: tuple[str, ...] = ()  # asset uuids (fileContent.uuid)
    web_search: bool = False


class Asset(msgspec.Struct, frozen=True):
    path: str
    uuid: str | None = None


class _FileContent(msgspec.Struct):
    path: str
    uuid: str | None = None


class _AssetResponse(msgspec.Struct):
    fileContent: _FileContent


class CatalogEntry(msgspec.Struct):
    """The fields of a ``GET /models`` entry the relay reads; the rest is ignored."""

    modelId: str
    name: str | None = None
    provider: str | None = None
    status: str | None = None
    modality: dict[str, list[str] | None] | None = None
    creditMetadata: dict[str, Any] | None = None


class _CatalogResponse(msgspec.Struct):
    models: list[CatalogEntry]


_asset_decoder = msgspec.json.Decoder(_AssetResponse)
_catalog_decoder = msgspec.json.Decoder(_CatalogResponse)


def extension_for(media_type: str) -> str:
    """The file extension 1min.ai needs for an upload of this MIME type."""
    base = media_type.split(";", 1)[0].strip().lower()
    if base in _EXTENSIONS:
        return _EXTENSIONS[base]
    subtype = base.rpartition("/")[2]
    return subtype if subtype.isalnum() and len(subtype) <= 5 else "bin"


class OneMinClient:
    def __init__(self, session: aiohttp.ClientSession, settings: Settings) -> None:
        self._session = session
        self._base = settings.upstream_base
        # Parsed once: aiohttp would parse a URL string again on every call.
        self._chat_url = URL(self._base + CHAT_PATH)
        self._stream_url = URL(self._base + CHAT_PATH + "?isStreaming=true")
        self._retries = settings.upstream_retries
        self._budget = RetryBudget()
        self._json_timeout = aiohttp.ClientTimeout(
            total=settings.total_timeout,
            sock_connect=settings.connect_timeout,
            sock_read=settings.first_byte_timeout,
        )
        self._stream_timeout = aiohttp.ClientTimeout(
            total=settings.total_timeout,
            sock_connect=settings.connect_timeout,
            sock_read=settings.read_timeout,
        )
        self._web_search = {
            "webSearch": True,
            "numOfSite": settings.web_search_sites,
            "maxWord": settings.web_search_max_words,
        }

    # -- chat ------------------------------------------------------------------------

    async def chat(self, call: ChatCall, api_key: str) -> ChatRecord:
        """A non-streaming chat call; the whole reply arrives at once."""
        body = self._chat_body(call)
        send = self._poster(self._chat_url, body, api_key, self._json_timeout)
        response = await self._send_with_retries(send)
        with map_client_errors("reading the reply"):
            async with response:
                payload = await response.read()
        return parse_chat_response(payload)

    @asynccontextmanager
    async def stream_chat(
        self, call: ChatCall, api_key: str
    ) -> AsyncIterator[AsyncIterator[StreamEvent]]:
        """Open a streaming chat call; iterate the yielded events inside the ``async with``.

        Leaving the block (normally, on error, or by cancellation when the client hangs up)
        releases the upstream connection at once.
        """
        # No local keeps the body alive while the stream is open: orjson output occupies
        # 4 KiB whatever its length, 4 MB per thousand open streams.
        response = await self._send_with_retries(
            self._poster(self._stream_url, self._chat_body(call), api_key, self._stream_timeout)
        )
        try:
            yield _stream_events(response)
        finally:
            response.release()

    def _chat_body(self, call: ChatCall) -> bytes:
        prompt: dict[str, Any] = {"prompt": call.prompt}
        if call.web_search:
            prompt["settings"] = {"webSearchSettings": self._web_search}
        if call.images or call.files:
            attachments: dict[str, list[str]] = {}
            if call.images:
                attachments["images"] = list(call.images)
            if call.files:
                attachments["files"] = list(call.files)
            prompt["attachments"] = attachments
        return orjson.dumps({"type": CHAT_TYPE, "model": call.model, "promptObject": prompt})

    # -- assets ----------------------------------------------------------------------

    async def upload_asset(
        self, data: bytes, media_type: str, api_key: str, filename: str | None = None
    ) -> Asset:
        """Upload bytes with ``POST /api/assets`` (multipart part ``asset``)."""
        stem = (filename or "").rsplit("/", 1)[-1]
        if "." not in stem.strip("."):
            stem = f"relay-{uuid.uuid4().hex}.{extension_for(media_type)}"

        def send() -> Awaitable[aiohttp.ClientResponse]:
            # a fresh stream per attempt: aiohttp warns on raw bytes over 1 MB, and a retry
            # must not send a stream an earlier attempt already read
            form = aiohttp.FormData()
            form.add_field("asset", io.BytesIO(data), filename=stem, content_type=media_type)
            return self._session.post(
                self._base + ASSETS_PATH,
                data=form,
                headers={"API-KEY": api_key},
                timeout=self._json_timeout,
            )

        response = await self._send_with_retries(send)
        with map_client_errors("uploading an asset"):
            async with response:
                payload = await response.read()
        try:
            content = _asset_decoder.decode(payload).fileContent
        except msgspec.DecodeError as exc:
            raise UpstreamError("1min.ai answered the upload with an unexpected body") from exc
        return Asset(path=content.path, uuid=content.uuid)

    # -- catalog ---------------------------------------------------------------------

    async def list_models(self, feature: str) -> list[CatalogEntry]:
        """``GET /models?feature=…`` (public, no key)."""
        timeout = aiohttp.ClientTimeout(total=_MODELS_TIMEOUT)
        with map_client_errors("listing models"):
            async with self._session.get(
                self._base + MODELS_PATH, params={"feature": feature}, timeout=timeout
            ) as response:
                payload = await response.read()
                if response.status != 200:
                    raise error_from_response(response.status, payload)
        try:
            return _catalog_decoder.decode(payload).models
        except msgspec.DecodeError as exc:
            raise UpstreamError("1min.ai answered /models with an unexpected body") from exc

    # -- sending with retries --------------------------------------------------------

    def _poster(
        self, url: URL, body: bytes, api_key: str, timeout: aiohttp.ClientTimeout
    ) -> Callable[[], Awaitable[aiohttp.ClientResponse]]:
        headers = {"API-KEY": api_key, "Content-Type": "application/json"}

        def send() -> Awaitable[aiohttp.ClientResponse]:
            return self._session.post(url, data=body, headers=headers, timeout=timeout)

        return send

    async def _send_with_retries(
        self, send: Callable[[], Awaitable[aiohttp.ClientResponse]]
    ) -> aiohttp.ClientResponse:
        """Send; return the 2xx response (unread) or raise the mapped error."""
        self._budget.record_request()
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._send_once(send)
            except (UpstreamConnectError, RateLimited, UpstreamUnavailable) as exc:
                retry_after = exc.retry_after if isinstance(exc, RateLimited) else None
                delay = backoff_delay(attempt, retry_after, _RETRY_WAIT_CAP)
                if attempt > self._retries or delay is None or not self._budget.try_spend():
                    raise
                await asyncio.sleep(delay)

    async def _send_once(
        self, send: Callable[[], Awaitable[aiohttp.ClientResponse]]
    ) -> aiohttp.ClientResponse:
        with map_client_errors("waiting for the reply"):
            response = await send()
            if response.status < 300:
                return response
            async with response:
                payload = await response.read()
        raise error_from_response(response.status, payload, response.headers.get("Retry-After"))


async def _stream_events(response: aiohttp.ClientResponse) -> AsyncIterator[StreamEvent]:
    parser = ChatStreamParser(response.headers.get("Content-Type"))
    chunks = response.content.iter_any()
    while True:
        with map_client_errors("streaming the reply"):
            chunk = await anext(chunks, None)
        events = parser.feed(chunk) if chunk is not None else parser.finish()
        for event in events:
            if isinstance(event, Finish):
                await send_held()  # the text so far leaves before the finish is worked out
                yield event
                return
            yield event
        if chunk is None:
            return
        await send_held()  # what this read made leaves before waiting for the next
