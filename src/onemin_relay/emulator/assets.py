"""``POST /api/assets`` uploads and the asset host that serves them back.

Keys follow 1min.ai's layout ``<folder>/<YYYY_MM_DD_HH_MM_SS_mmm>_<originalname>`` with
folder ``images`` for ``image/*``, ``audios`` for ``audio/*`` and ``files`` for anything
else. This app also plays the asset host: ``GET /<key>`` returns the stored bytes, and the
URLs it hands out start with ``EmulatorConfig.asset_base_url`` (default: its own origin),
standing in for ``https://asset.1min.ai/<key>``.
"""

from __future__ import annotations

import hashlib
import mimetypes
from datetime import UTC, datetime, timedelta
from pathlib import PurePosixPath
from typing import Any

from aiohttp import BodyPartReader, hdrs, web

from onemin_relay.emulator.bodies import Rejected
from onemin_relay.emulator.respond import error_response, json_response
from onemin_relay.emulator.state import CONFIG, RECORD, STATE, Asset, EmulatorState

ASSET_FIELD = "asset"
ASSET_ROUTE = "/{key:(?:images|audios|files)/.+}"
_READ_BYTES = 64 * 1024


def _reject(status: int, code: str, message: str) -> Rejected:
    return Rejected(error_response(status, code, message))


async def _asset_part(request: web.Request) -> BodyPartReader:
    if not request.content_type.startswith("multipart/"):
        raise _reject(400, "INVALID_REQUEST", "Expected a multipart/form-data upload")
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if isinstance(part, BodyPartReader) and part.name == ASSET_FIELD:
            return part
    raise _reject(400, "INVALID_REQUEST", f"Missing file field '{ASSET_FIELD}'")


async def _read_bounded(part: BodyPartReader, limit: int) -> bytes:
    """The part's bytes; a 413 as soon as more than ``limit`` bytes have arrived."""
    data = bytearray()
    while chunk := await part.read_chunk(_READ_BYTES):
        data += chunk
        if len(data) > limit:
            raise _reject(413, "FILE_TOO_LARGE", f"File is larger than {limit} bytes")
    return bytes(data)


def _folder(mimetype: str) -> str:
    if mimetype.startswith("image/"):
        return "images"
    return "audios" if mimetype.startswith("audio/") else "files"


def _new_key(state: EmulatorState, folder: str, name: str) -> str:
    """A fresh key; a clash within the same millisecond moves the stamp on by 1 ms."""
    now = datetime.now(UTC)
    while True:
        stamp = now.strftime("%Y_%m_%d_%H_%M_%S_") + f"{now.microsecond // 1000:03d}"
        key = f"{folder}/{stamp}_{name}"
        if key not in state.assets:
            return key
        now += timedelta(milliseconds=1)


def _asset_base(request: web.Request) -> str:
    return (request.app[CONFIG].asset_base_url or str(request.url.origin())).rstrip("/")


async def upload_asset(request: web.Request) -> web.Response:
    part = await _asset_part(request)
    name = PurePosixPath(part.filename or "").name
    mimetype = (
        part.headers.get(hdrs.CONTENT_TYPE)
        or mimetypes.guess_type(name)[0]
        or "application/octet-stream"
    )
    seen: dict[str, Any] = {"filename": name, "mimetype": mimetype, "size": None}
    request[RECORD].body = seen
    if not PurePosixPath(name).suffix:
        raise _reject(400, "INVALID_FILE_TYPE", "file type isn't supported")
    data = await _read_bounded(part, request.app[CONFIG].max_asset_bytes)
    seen["size"] = len(data)
    state = request.app[STATE]
    asset = state.store_asset(_new_key(state, _folder(mimetype), name), mimetype, data)
    return json_response(_upload_body(asset, name, _asset_base(request)))


def _upload_body(asset: Asset, name: str, base: str) -> dict[str, Any]:
    """The §5 answer: multer/S3 fields under ``asset``, the handle to use under ``fileContent``."""
    file_meta = {"fieldname": ASSET_FIELD, "originalname": name, "encoding": "7bit"}
    file_meta["mimetype"] = asset.mimetype
    return {
        "asset": {
            **file_meta,
            "size": len(asset.data),
            "bucket": "asset.1min.ai",
            "key": asset.key,
            "acl": "private",
            "contentType": "application/octet-stream",
            "contentDisposition": None,
            "contentEncoding": None,
            "storageClass": "STANDARD",
            "serverSideEncryption": None,
            "metadata": file_meta,
            "location": f"{base}/{asset.key}",
            "etag": f'"{hashlib.md5(asset.data, usedforsecurity=False).hexdigest()}"',
        },
        "fileContent": {
            "uuid": asset.uuid,
            "path": asset.key,
            "type": PurePosixPath(name).suffix.removeprefix("."),
            "name": asset.key.rsplit("/", 1)[-1],
        },
    }


async def serve_asset(request: web.Request) -> web.Response:
    """The asset host: ``GET /<key>`` with the mimetype given at upload."""
    asset = request.app[STATE].assets.get(request.match_info["key"])
    if asset is None:
        raise web.HTTPNotFound(text="NoSuchKey")
    return web.Response(body=asset.data, headers={hdrs.CONTENT_TYPE: asset.mimetype})
