"""Media bytes are checked against what they claim to be before anything is uploaded."""

from __future__ import annotations

import base64
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from onemin_relay.core.errors import InvalidRequest
from onemin_relay.core.media_types import check_image_data_uri
from onemin_relay.media import ImageFetcher
from tests.conftest import PNG_1X1


def _uri(label: str, data: bytes) -> str:
    return f"data:{label};base64,{base64.b64encode(data).decode()}"


@pytest.mark.parametrize(
    "data",
    [
        PNG_1X1,
        b"\xff\xd8\xff\xe0" + bytes(20),
        b"RIFF\x00\x00\x00\x00WEBPVP8 " + bytes(8),
        b"GIF89a" + bytes(10),
    ],
)
def test_real_images_pass(data: bytes) -> None:
    check_image_data_uri(_uri("image/png", data), "p")


@pytest.mark.parametrize(
    ("label", "data"),
    [
        ("image/png", b"<html><body>hi</body></html>"),
        ("image/jpeg", b"%PDF-1.7\n"),
        ("image/webp", b"RIFF"),
        ("image/png", b"x"),
        ("", b"plain text, no label"),
    ],
)
def test_non_images_are_refused_naming_the_field(label: str, data: bytes) -> None:
    with pytest.raises(InvalidRequest) as caught:
        check_image_data_uri(_uri(label, data), "messages[0].content")
    assert caught.value.param == "messages[0].content"


@pytest.mark.parametrize(
    "uri", ["https://example.com/cat.png", "data:image/png,raw", "data:image/png;base64,@@@"]
)
def test_other_forms_are_left_to_the_full_decode(uri: str) -> None:
    check_image_data_uri(uri, "p")


async def _fetcher(aiohttp_server: Any, body: bytes, content_type: str) -> tuple[Any, str]:
    async def serve(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type=content_type)

    app = web.Application()
    app.router.add_get("/img", serve)
    server = await aiohttp_server(app)
    session = aiohttp.ClientSession()
    fetcher = ImageFetcher(
        session, max_bytes=10_000, timeout=5, allow_hosts=frozenset({"127.0.0.1"})
    )
    return (fetcher, session), f"http://127.0.0.1:{server.port}/img"


async def test_fetched_html_labelled_as_png_is_refused(aiohttp_server: Any) -> None:
    (fetcher, session), url = await _fetcher(aiohttp_server, b"<html>nope</html>", "image/png")
    async with session:
        with pytest.raises(InvalidRequest) as caught:
            await fetcher.fetch(url)
    assert caught.value.param == "image_url"


async def test_fetched_image_takes_the_type_its_bytes_show(aiohttp_server: Any) -> None:
    (fetcher, session), url = await _fetcher(aiohttp_server, PNG_1X1, "image/jpeg")
    async with session:
        media = await fetcher.fetch(url)
    assert (media.media_type, media.data) == ("image/png", PNG_1X1)
