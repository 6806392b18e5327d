"""The feature client against the emulator: the wire body, records, errors, downloads, timeouts."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestServer

from onemin_relay.core.errors import (
    InvalidRequest,
    ModelNotFound,
    UpstreamError,
    UpstreamTimeout,
)
from onemin_relay.emulator import Faults
from onemin_relay.emulator.images import image_for
from onemin_relay.emulator.state import STATE
from onemin_relay.settings import Settings
from onemin_relay.upstream import OneMinClient
from onemin_relay.upstream.features import (
    FeatureClient,
    FeatureRecord,
    parse_feature_response,
    transcript_text,
)

KEY = "feature-client-key"


def features_for(
    server: TestServer, session: aiohttp.ClientSession, **settings: Any
) -> FeatureClient:
    url = str(server.make_url("")).rstrip("/")
    config = Settings(upstream_url=url, asset_url=url, **settings)
    return FeatureClient(OneMinClient(session, config), config)


def recorded(server: TestServer) -> list[Any]:
    return [r for r in server.app[STATE].requests if r.path == "/api/features"]


async def test_run_sends_the_documented_body_and_reads_the_record(
    emulator: TestServer, session: aiohttp.ClientSession
) -> None:
    client = features_for(emulator, session)
    prompt = {"prompt": "a fox", "n": 2, "size": "1024x1024", "quality": "low"}
    record = await client.run("IMAGE_GENERATOR", "gpt-image-1", prompt, KEY)
    (sent,) = recorded(emulator)
    assert sent.api_key == KEY
    assert sent.body == {"type": "IMAGE_GENERATOR", "model": "gpt-image-1", "promptObject": prompt}
    assert len(record.results) == 2 and all(r.startswith("images/") for r in record.results)
    assert record.temporary_url is not None and record.results[0] in record.temporary_url


async def test_missing_quality_surfaces_the_details_message(
    emulator: TestServer, session: aiohttp.ClientSession
) -> None:
    client = features_for(emulator, session)
    with pytest.raises(InvalidRequest) as caught:
        await client.run("IMAGE_GENERATOR", "gpt-image-1-mini", {"prompt": "x"}, KEY)
    assert "Missing required fields" in caught.value.message
    assert "Field 'quality' is required" in caught.value.message, "details are read too"


async def test_provider_error_shows_the_reason_behind_the_busy_message(
    emulator: TestServer, session: aiohttp.ClientSession
) -> None:
    client = features_for(emulator, session)
    with pytest.raises(InvalidRequest) as caught:
        await client.run("IMAGE_GENERATOR", "dall-e-3", {"prompt": "x", "size": "9x9"}, KEY)
    assert "Invalid value: '9x9'" in caught.value.message


async def test_disabled_model_maps_to_model_not_found(
    emulator: TestServer, session: aiohttp.ClientSession
) -> None:
    client = features_for(emulator, session)
    with pytest.raises(ModelNotFound):
        await client.run("IMAGE_GENERATOR", "black-forest-labs/flux-schnell", {"prompt": "x"}, KEY)


async def test_failed_record_is_an_upstream_error(
    emulator: TestServer, session: aiohttp.ClientSession
) -> None:
    emulator.app[STATE].faults.put(KEY, Faults(record_failed=True))
    client = features_for(emulator, session)
    with pytest.raises(UpstreamError, match="failed"):
        await client.run("IMAGE_GENERATOR", "dall-e-3", {"prompt": "x"}, KEY)


async def test_connection_refused_before_any_work_is_retried(
    emulator: TestServer, session: aiohttp.ClientSession
) -> None:
    emulator.app[STATE].faults.put(KEY, Faults(status=503, status_times=1))
    client = features_for(emulator, session)
    record = await client.run("IMAGE_GENERATOR", "dall-e-3", {"prompt": "x"}, KEY)
    assert len(record.results) == 1
    assert [r.status for r in recorded(emulator)] == [503, 200], "a 503 before work is retried"


async def test_slow_feature_hits_the_total_timeout(
    emulator: TestServer, session: aiohttp.ClientSession
) -> None:
    emulator.app[STATE].faults.put(KEY, Faults(latency_ms=2000))
    client = features_for(emulator, session, total_timeout=0.2)
    with pytest.raises(UpstreamTimeout):
        await client.run("IMAGE_GENERATOR", "dall-e-3", {"prompt": "x"}, KEY)


@pytest.mark.parametrize(
    ("body", "results", "temporary"),
    [
        ({"aiRecord": {"aiRecordDetail": {"resultObject": "just text"}}}, ("just text",), None),
        (
            {"aiRecord": {"aiRecordDetail": {"resultObject": ["a", "b"]}}, "temporaryUrl": "t"},
            ("a", "b"),
            "t",
        ),
        (
            {"aiRecord": {"temporaryUrl": "r", "aiRecordDetail": {"resultObject": ["a"]}}},
            ("a",),
            "r",
        ),
    ],
)
def test_parse_reads_results_and_either_temporary_url(
    body: dict[str, Any], results: tuple[str, ...], temporary: str | None
) -> None:
    record = parse_feature_response(orjson.dumps(body), "IMAGE_GENERATOR")
    assert (record.results, record.temporary_url) == (results, temporary)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"{}",
        b'{"aiRecord": {"aiRecordDetail": {"resultObject": []}}}',
        b'{"aiRecord": {"status": "FAILED", "aiRecordDetail": {"resultObject": ["a"]}}}',
    ],
)
def test_parse_rejects_records_without_a_result(body: bytes) -> None:
    with pytest.raises(UpstreamError):
        parse_feature_response(body, "IMAGE_GENERATOR")


def test_asset_urls_are_absolute_on_the_asset_host(session: aiohttp.ClientSession) -> None:
    config = Settings(asset_url="https://asset.example/")
    client = FeatureClient(OneMinClient(session, config), config)
    assert client.asset_url("images/a.png") == "https://asset.example/images/a.png"
    assert client.asset_url("/images/a.png") == "https://asset.example/images/a.png"
    assert client.asset_url("https://cdn.example/x.png") == "https://cdn.example/x.png"
    assert client.asset_url("images/my cat%.png") == "https://asset.example/images/my%20cat%25.png"
    signed = "https://s3.example/k.mp3?X-Amz-Credential=A%2F2025%2Fs3&X-Amz-Signature=a%2Bb"
    assert client.asset_url(signed) == signed, "a signed URL is kept byte for byte"


async def test_download_of_a_key_that_needs_quoting(
    emulator: TestServer, session: aiohttp.ClientSession
) -> None:
    emulator.app[STATE].store_asset("images/my cat.png", "image/png", b"meow")
    client = features_for(emulator, session)
    assert await client.download(client.asset_url("images/my cat.png"), 100) == b"meow"


async def test_download_reads_the_asset_and_caps_its_size(
    emulator: TestServer, session: aiohttp.ClientSession
) -> None:
    client = features_for(emulator, session)
    record = await client.run("IMAGE_GENERATOR", "dall-e-3", {"prompt": "fox"}, KEY)
    url = client.asset_url(record.results[0])
    assert await client.download(url, 10_000) == image_for(b"fox", 0)
    with pytest.raises(UpstreamError, match="larger than 10 bytes"):
        await client.download(url, 10)
    with pytest.raises(UpstreamError, match="HTTP 404"):
        await client.download(client.asset_url("images/missing.png"), 10_000)


async def test_open_download_streams_chunks_with_the_size(
    emulator: TestServer, session: aiohttp.ClientSession
) -> None:
    client = features_for(emulator, session)
    prompt = {"text": "hello", "voice": "alloy", "response_format": "wav"}
    record = await client.run("TEXT_TO_SPEECH", "tts-1", prompt, KEY)
    assert record.temporary_url is not None
    async with client.open_download(record.temporary_url) as download:
        chunks = [chunk async for chunk in download.chunks]
    stored = emulator.app[STATE].assets[record.results[0]].data
    assert b"".join(chunks) == stored and download.size == len(stored)


async def test_upload_resends_the_whole_body_on_retry(
    emulator: TestServer, session: aiohttp.ClientSession
) -> None:
    """Each attempt gets a fresh buffer: a retried upload must not arrive empty."""
    emulator.app[STATE].faults.put(KEY, Faults(status=503, status_times=1))
    client = features_for(emulator, session)
    data = bytes(2 * 1024 * 1024)  # over aiohttp's 1 MB raw-bytes warning
    asset = await client.upload(data, "audio/wav", KEY, "clips/no-extension")
    assert asset.path.startswith("audios/") and asset.path.endswith(".wav")
    assert emulator.app[STATE].assets[asset.path].data == data
    uploads = [r for r in emulator.app[STATE].requests if r.path == "/api/assets"]
    assert [r.status for r in uploads] == [503, 200]
    assert uploads[1].body["filename"].startswith("relay-"), "a name without extension is replaced"


@pytest.mark.parametrize(
    ("result", "text"),
    [
        ("plain words", "plain words"),
        ('{"text": "wrapped words"}', "wrapped words"),
        ("{not json", "{not json"),
        ('{"other": 1}', '{"other": 1}'),
    ],
)
def test_transcript_text_unwraps_json_strings(result: str, text: str) -> None:
    assert transcript_text(FeatureRecord(results=(result,))) == text
