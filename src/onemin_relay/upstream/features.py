"""1min.ai's non-chat features (``POST /api/features``) and downloads from its asset host.

Built on the chat client: the same pooled session, the same retry policy (only calls that
never reached 1min.ai are retried: a feature call spends credits too) and the same error
mapping. Timeouts differ from chat because 1min.ai answers a feature call only once the
work is done, which for an image can take minutes (Midjourney: up to ~10 min, §10 item 8):

* feature calls: connect ``connect_timeout``, then only the ``total_timeout`` cap (no
  first-byte or idle timeout: there is nothing to read until the record is ready);
* asset uploads and downloads: connect ``connect_timeout``, idle ``read_timeout``, total
  ``total_timeout``.

The asset host is the operator's configured ``asset_url`` (and URLs 1min.ai itself returns,
such as a signed ``temporaryUrl``), never a client-supplied URL, so downloads skip the SSRF
guard that ``media.py`` applies to client URLs; their size is capped instead.
"""

from __future__ import annotations

import math
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

import aiohttp
import msgspec
import orjson
from yarl import URL

from onemin_relay.core.errors import UpstreamError
from onemin_relay.settings import Settings
from onemin_relay.upstream.client import Asset, OneMinClient
from onemin_relay.upstream.errors import map_client_errors

FEATURES_PATH = "/api/features"
DOWNLOAD_CHUNK_BYTES = 64 * 1024


class FeatureRecord(msgspec.Struct, frozen=True):
    """What a finished feature call produced: ``resultObject`` entries as sent (asset paths,
    URLs or text), and the signed URL of the first result when 1min.ai gives one."""

    results: tuple[str, ...]
    temporary_url: str | None = None
    credit: int | None = None  # what 1min.ai charged for the call, when it says


class Download(msgspec.Struct):
    """An open asset download: its size when the host says it, and its bytes in chunks."""

    size: int | None
    chunks: AsyncIterator[bytes]


class _Detail(msgspec.Struct):
    resultObject: list[str] | str | None = None


class _Record(msgspec.Struct):
    status: str | None = None
    temporaryUrl: str | None = None
    aiRecordDetail: _Detail | None = None
    metadata: msgspec.Raw = msgspec.Raw(b"null")


class _Metadata(msgspec.Struct):
    credit: float | None = None


class _Envelope(msgspec.Struct):
    aiRecord: _Record | None = None
    temporaryUrl: str | None = None


_envelope_decoder = msgspec.json.Decoder(_Envelope)
_metadata_decoder: msgspec.json.Decoder[_Metadata | None] = msgspec.json.Decoder(_Metadata | None)


def _credit(raw: msgspec.Raw) -> int | None:
    """The record's ``metadata.credit``; None when absent or oddly shaped."""
    try:
        metadata = _metadata_decoder.decode(raw)
    except msgspec.DecodeError:
        return None
    if metadata is None or metadata.credit is None:
        return None
    return math.ceil(metadata.credit)


def parse_feature_response(body: bytes, feature: str) -> FeatureRecord:
    """Read the §4.1 envelope of a successful ``/api/features`` call."""
    try:
        envelope = _envelope_decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise UpstreamError(f"1min.ai answered {feature} with an unreadable body") from exc
    record = envelope.aiRecord
    if record is None:
        raise UpstreamError(f"1min.ai answered {feature} without a record")
    if (record.status or "").upper() == "FAILED":
        raise UpstreamError(f"1min.ai reported the {feature} request as failed")
    raw = record.aiRecordDetail.resultObject if record.aiRecordDetail else None
    results = (raw,) if isinstance(raw, str) else tuple(raw or ())
    if not results:
        raise UpstreamError(f"1min.ai returned no result for {feature}")
    url = record.temporaryUrl or envelope.temporaryUrl
    return FeatureRecord(results, url, _credit(record.metadata))


def transcript_text(record: FeatureRecord) -> str:
    """``resultObject[0]`` of a transcription, unwrapping the ``{"text": …}`` JSON string
    some backends return (API doc §4.1)."""
    text = record.results[0]
    if text.startswith("{"):
        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError:
            return text
        if isinstance(data, dict) and isinstance(data.get("text"), str):
            return str(data["text"])
    return text


class FeatureClient:
    """Feature calls, asset uploads and asset downloads for images and audio."""

    def __init__(self, client: OneMinClient, settings: Settings) -> None:
        self._client = client
        self._session = client._session
        self._url = URL(settings.upstream_base + FEATURES_PATH)
        self._asset_base = settings.asset_base
        self._call_timeout = aiohttp.ClientTimeout(
            total=settings.total_timeout, sock_connect=settings.connect_timeout
        )
        self._transfer_timeout = aiohttp.ClientTimeout(
            total=settings.total_timeout,
            sock_connect=settings.connect_timeout,
            sock_read=settings.read_timeout,
        )

    async def run(
        self, feature: str, model: str, prompt_object: dict[str, Any], api_key: str
    ) -> FeatureRecord:
        """One ``POST /api/features`` call, answered once the work is done."""
        body = orjson.dumps({"type": feature, "model": model, "promptObject": prompt_object})
        headers = {"API-KEY": api_key, "Content-Type": "application/json"}

        def send() -> Awaitable[aiohttp.ClientResponse]:
            return self._session.post(
                self._url, data=body, headers=headers, timeout=self._call_timeout
            )

        response = await self._client._send_with_retries(send)
        with map_client_errors(f"reading the {feature} result"):
            async with response:
                payload = await response.read()
        return parse_feature_response(payload, feature)

    async def upload(
        self, data: bytes, media_type: str, api_key: str, filename: str | None = None
    ) -> Asset:
        """Store bytes as an asset (``POST /api/assets``); its ``path`` goes into a feature call."""
        return await self._client.upload_asset(data, media_type, api_key, filename)

    def asset_url(self, ref: str) -> str:
        """An absolute URL for a result: bucket paths go (quoted) under the asset host; URLs
        1min.ai returned stay exactly as sent, since a signed URL must not be re-encoded."""
        if ref.startswith(("https://", "http://")):
            return ref
        return f"{self._asset_base}/{quote(ref.lstrip('/'), safe='/')}"

    async def download(self, url: str, max_bytes: int) -> bytes:
        """The whole asset, refused (502) once it passes ``max_bytes``."""
        data = bytearray()
        async with self.open_download(url) as download:
            if download.size is not None and download.size > max_bytes:
                raise UpstreamError(f"the 1min.ai asset is larger than {max_bytes} bytes")
            async for chunk in download.chunks:
                data += chunk
                if len(data) > max_bytes:
                    raise UpstreamError(f"the 1min.ai asset is larger than {max_bytes} bytes")
        return bytes(data)

    @asynccontextmanager
    async def open_download(self, url: str) -> AsyncIterator[Download]:
        """Open a GET of an encoded URL (from ``asset_url`` or 1min.ai); the connection is
        released when the block ends."""
        with map_client_errors("downloading an asset"):
            response = await self._session.get(
                URL(url, encoded=True), timeout=self._transfer_timeout
            )
        chunks = _chunks(response)
        try:
            if response.status != 200:
                raise UpstreamError(f"the 1min.ai asset host answered HTTP {response.status}")
            yield Download(size=response.content_length, chunks=chunks)
        finally:
            await chunks.aclose()
            response.release()


async def _chunks(response: aiohttp.ClientResponse) -> AsyncGenerator[bytes, None]:
    with map_client_errors("downloading an asset"):
        async for chunk in response.content.iter_chunked(DOWNLOAD_CHUNK_BYTES):
            yield chunk
