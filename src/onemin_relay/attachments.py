"""A chat's images and files, uploaded to 1min.ai's assets before the call that names them.

An image already in 1min.ai's assets is named by its path; one given as a ``data:`` URI must
be an image; one given by ``http(s)`` URL is fetched through the SSRF-guarded fetcher. Files
are uploaded as given. Uploads run concurrently.
"""

from __future__ import annotations

import asyncio

from onemin_relay.core.errors import InvalidRequest
from onemin_relay.core.media_types import sniff_image
from onemin_relay.core.prompt import FlatPrompt
from onemin_relay.core.types import FilePart, ImagePart
from onemin_relay.media import ImageFetcher, Media, decode_data_uri
from onemin_relay.settings import Settings
from onemin_relay.upstream import Asset, OneMinClient


class Attachments:
    def __init__(self, client: OneMinClient, fetcher: ImageFetcher, settings: Settings) -> None:
        self._client = client
        self._fetcher = fetcher
        self._settings = settings
        self._asset_prefix = settings.asset_base + "/"

    async def send(self, flat: FlatPrompt, api_key: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The asset paths of the prompt's images and the ids of its files, in order."""
        if not flat.images and not flat.files:
            return (), ()
        limit = self._settings.max_images_per_request
        if len(flat.images) > limit:
            raise InvalidRequest(f"at most {limit} images per request", param="messages")
        images = await asyncio.gather(*(self._image_path(p, api_key) for p in flat.images))
        files = await asyncio.gather(*(self._file_uuid(p, api_key) for p in flat.files))
        return tuple(images), tuple(files)

    async def _image_path(self, part: ImagePart, api_key: str) -> str:
        url = part.url
        if url.startswith(self._asset_prefix):
            return url[len(self._asset_prefix) :]
        if url.startswith("data:"):
            media = decode_data_uri(url, self._settings.image_fetch_max_bytes)
            if not media.media_type.startswith("image/") or sniff_image(media.data) is None:
                raise InvalidRequest(
                    "an image_url data: URI must hold a PNG, JPEG, WebP or GIF image",
                    param="image_url",
                )
        elif url.startswith(("https://", "http://")):
            media = await self._fetcher.fetch(url)
        else:
            raise InvalidRequest("image URLs must be https: or data: URIs", param="image_url")
        return (await self._upload(media, api_key)).path

    async def _file_uuid(self, part: FilePart, api_key: str) -> str:
        asset = await self._upload(Media(part.data, part.media_type), api_key, part.filename)
        if asset.uuid is None:
            raise InvalidRequest("1min.ai did not return an id for the uploaded file")
        return asset.uuid

    async def _upload(self, media: Media, api_key: str, filename: str | None = None) -> Asset:
        return await self._client.upload_asset(media.data, media.media_type, api_key, filename)
