"""The emulator's image and audio features, driven over loopback HTTP as 1min.ai would be."""

from __future__ import annotations

import json
import re
import wave
from collections.abc import Awaitable, Callable
from io import BytesIO
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from onemin_relay.emulator import create_app
from onemin_relay.emulator.audio import MP3_FRAME, speech_audio
from onemin_relay.emulator.images import image_for

Client = TestClient[web.Request, web.Application]

KEY = "features-key"
AUTH = {"API-KEY": KEY}
FEATURES = "/api/features"
PATH = re.compile(r"images/\d{4}(_\d{2}){5}_\d{3}_\d{6}\.png")
LIVE_MISSING_QUALITY = {
    "errorCode": "MISSING_REQUIRED_FIELDS",
    "message": "Missing required fields for gpt-image-1-mini model: quality. "
    "Please provide all required parameters.",
    "details": '[{"field":"quality","message":"Field \'quality\' is required for '
    'gpt-image-1-mini model with type IMAGE_GENERATOR"}]',
}


@pytest.fixture
async def client(aiohttp_client: Callable[..., Awaitable[Client]]) -> Client:
    return await aiohttp_client(create_app())


async def feature(
    client: Client, feature_type: str, model: str, **prompt: Any
) -> tuple[int, dict[str, Any]]:
    body = {"type": feature_type, "model": model, "promptObject": prompt}
    response = await client.post(FEATURES, json=body, headers=AUTH)
    return response.status, await response.json()


async def upload(client: Client, name: str, data: bytes, content_type: str) -> str:
    form = aiohttp.FormData()
    form.add_field("asset", data, filename=name, content_type=content_type)
    response = await client.post("/api/assets", data=form, headers=AUTH)
    assert response.status == 200, await response.text()
    return str((await response.json())["fileContent"]["path"])


async def fetch(client: Client, path: str) -> tuple[int, bytes, str]:
    response = await client.get("/" + path)
    return response.status, await response.read(), response.content_type


def results(body: dict[str, Any]) -> list[str]:
    return list(body["aiRecord"]["aiRecordDetail"]["resultObject"])


def details(body: dict[str, Any]) -> Any:
    assert isinstance(body["details"], str), "details is a JSON-encoded string (§8)"
    return json.loads(body["details"])


def small_wav() -> bytes:
    buffer = BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(bytes(1600))
    return buffer.getvalue()


# -- IMAGE_GENERATOR ----------------------------------------------------------------------


async def test_generator_stores_one_png_per_image_and_signs_only_the_first(
    client: Client,
) -> None:
    status, body = await feature(
        client, "IMAGE_GENERATOR", "gpt-image-1-mini", prompt="a red fox", n=2, quality="low"
    )
    assert status == 200, body
    paths = results(body)
    assert len(paths) == 2 and all(PATH.fullmatch(p) for p in paths), paths
    record = body["aiRecord"]
    assert record["metadata"] == {"resultModeration": {"status": "unknown"}, "credit": 2 * 5000}
    assert body["temporaryUrl"] == record["temporaryUrl"], "temporaryUrl at both levels"
    assert f"/{paths[0]}?X-Amz-" in body["temporaryUrl"], "signed URL of the first result"
    for index, path in enumerate(paths):
        status, data, content_type = await fetch(client, path)
        assert status == 200 and content_type == "image/png"
        assert data == image_for(b"a red fox", index), "deterministic bytes per prompt+index"
    assert image_for(b"a red fox", 0) != image_for(b"a red fox", 1)


async def test_signed_temporary_url_is_served_too(client: Client) -> None:
    _, body = await feature(client, "IMAGE_GENERATOR", "dall-e-3", prompt="x")
    signed = body["temporaryUrl"].split("/", 3)[3]
    response = await client.get("/" + signed)
    assert response.status == 200 and (await response.read()).startswith(b"\x89PNG")


async def test_gpt_image_without_quality_answers_the_live_error(client: Client) -> None:
    status, body = await feature(client, "IMAGE_GENERATOR", "gpt-image-1-mini", prompt="x")
    assert (status, body) == (400, LIVE_MISSING_QUALITY)


async def test_disabled_model_is_unsupported(client: Client) -> None:
    status, body = await feature(
        client, "IMAGE_GENERATOR", "black-forest-labs/flux-schnell", prompt="x"
    )
    assert status == 400
    assert body == {
        "errorCode": "UNSUPPORTED_MODEL",
        "message": "Model black-forest-labs/flux-schnell is not supported",
    }


@pytest.mark.parametrize(
    ("model", "prompt"),
    [
        ("dall-e-3", {"size": "512x512"}),
        ("dall-e-3", {"n": 2}),
        ("dall-e-2", {"n": 11}),
        ("gpt-image-1", {"quality": "hd"}),
    ],
)
async def test_provider_rejections_hide_behind_a_busy_message(
    client: Client, model: str, prompt: dict[str, Any]
) -> None:
    status, body = await feature(client, "IMAGE_GENERATOR", model, prompt="x", **prompt)
    assert status == 400
    assert body["errorCode"] == "EXTERNAL_API_RESPONSE_WITH_ERROR"
    assert "busy" in body["message"] and body["context"] == {"service": "openai"}
    reason = details(body)["response"]["data"]["error"]
    assert reason["param"] in prompt, reason


async def test_midjourney_always_makes_four(client: Client) -> None:
    status, body = await feature(client, "IMAGE_GENERATOR", "midjourney", prompt="x", n=1)
    assert status == 200 and len(results(body)) == 4
    status, body = await feature(
        client, "IMAGE_GENERATOR", "midjourney", prompt="x", aspect_width=9
    )
    assert status == 400 and body["context"] == {"service": "ttapi"}


async def test_flux_makes_one_per_call_and_checks_the_aspect_ratio(client: Client) -> None:
    model = "black-forest-labs/flux-1.1-pro"
    status, body = await feature(client, "IMAGE_GENERATOR", model, prompt="x", aspect_ratio="16:9")
    assert status == 200 and len(results(body)) == 1
    status, body = await feature(client, "IMAGE_GENERATOR", model, prompt="x", aspect_ratio="7:3")
    assert status == 400 and body["context"] == {"service": "replicate"}


async def test_missing_prompt_is_a_prompt_object_error(client: Client) -> None:
    status, body = await feature(client, "IMAGE_GENERATOR", "dall-e-3", size="1024x1024")
    assert status == 422 and body["errorCode"] == "PROMPT_OBJECT_VALIDATION_FAILED"
    assert details(body) == [
        {"field": "prompt", "message": "Object missing required field `prompt`"}
    ]


async def test_failed_record_knob_answers_200_with_no_result(client: Client) -> None:
    await client.put(f"/_emulator/faults/{KEY}", json={"record_failed": True})
    status, body = await feature(client, "IMAGE_GENERATOR", "dall-e-3", prompt="x")
    assert status == 200 and body["aiRecord"]["status"] == "FAILED"
    assert results(body) == [] and "temporaryUrl" not in body


# -- IMAGE_VARIATOR -----------------------------------------------------------------------


async def test_variator_needs_an_uploaded_image(client: Client) -> None:
    source = image_for(b"source", 0)
    path = await upload(client, "cat.png", source, "image/png")
    status, body = await feature(client, "IMAGE_VARIATOR", "dall-e-2", imageUrl=path, n=3)
    assert status == 200 and len(results(body)) == 3
    _, data, _ = await fetch(client, results(body)[1])
    assert data == image_for(source, 1), "variations are seeded by the source image"
    status, body = await feature(client, "IMAGE_VARIATOR", "midjourney", imageUrl="/" + path)
    assert status == 200 and len(results(body)) == 4, "a leading slash is tolerated"
    status, body = await feature(client, "IMAGE_VARIATOR", "dall-e-2", imageUrl="images/no.png")
    assert status == 400 and body["errorCode"] == "REQUEST_BODY_VALIDATION_FAILED"


async def test_variator_rejects_models_without_the_feature(client: Client) -> None:
    status, body = await feature(client, "IMAGE_VARIATOR", "dall-e-3", imageUrl="images/a.png")
    assert status == 400 and body["errorCode"] == "UNSUPPORTED_MODEL"


# -- SPEECH_TO_TEXT / AUDIO_TRANSLATOR ------------------------------------------------------


async def test_transcript_names_the_uploaded_file(client: Client) -> None:
    audio = small_wav()
    path = await upload(client, "hello.wav", audio, "audio/wav")
    status, body = await feature(
        client, "SPEECH_TO_TEXT", "whisper-1", audioUrl=path, response_format="text"
    )
    assert status == 200, body
    assert results(body) == [f"Transcript of hello.wav ({len(audio)} bytes)"]
    assert "temporaryUrl" not in body, "a text result has nothing to sign"
    status, body = await feature(
        client, "AUDIO_TRANSLATOR", "whisper-1", audioUrl=path, response_format="text"
    )
    assert results(body) == [f"Translation of hello.wav ({len(audio)} bytes)"]


async def test_transcription_required_fields(client: Client) -> None:
    path = await upload(client, "hello.wav", small_wav(), "audio/wav")
    status, body = await feature(client, "SPEECH_TO_TEXT", "whisper-1", audioUrl=path)
    assert status == 400 and body["errorCode"] == "MISSING_REQUIRED_FIELDS"
    assert "response_format" in body["message"]
    status, body = await feature(client, "SPEECH_TO_TEXT", "latest_long", audioUrl=path)
    assert status == 400 and "language" in body["message"], "Google models need a language"
    status, body = await feature(
        client, "SPEECH_TO_TEXT", "latest_long", audioUrl=path, language="en-US"
    )
    assert status == 200
    status, body = await feature(
        client, "SPEECH_TO_TEXT", "whisper-1", audioUrl="audios/x.wav", response_format="text"
    )
    assert status == 400 and body["errorCode"] == "REQUEST_BODY_VALIDATION_FAILED"


# -- TEXT_TO_SPEECH -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "prompt", "fmt", "magic"),
    [
        ("tts-1", {"voice": "alloy"}, "mp3", MP3_FRAME[:4]),
        ("tts-1-hd", {"voice": "nova", "response_format": "wav"}, "wav", b"RIFF"),
        ("elevenlabs-tts", {"voice_id": "21m00Tcm4TlvDq8ikWAM"}, "mp3", MP3_FRAME[:4]),
    ],
)
async def test_speech_is_stored_and_served(
    client: Client, model: str, prompt: dict[str, Any], fmt: str, magic: bytes
) -> None:
    status, body = await feature(client, "TEXT_TO_SPEECH", model, text="hello there", **prompt)
    assert status == 200, body
    (path,) = results(body)
    assert path.startswith("audios/") and path.endswith(f".{fmt}")
    price = {"tts-1": 15, "tts-1-hd": 30, "elevenlabs-tts": 30}[model]
    assert body["aiRecord"]["metadata"] == {"credit": price}, "11 characters: one block of 100"
    assert body["temporaryUrl"].split("?")[0].endswith(path)
    status, data, _ = await fetch(client, path)
    assert status == 200 and data.startswith(magic)
    assert data == speech_audio("hello there", fmt)


async def test_pcm_is_the_raw_samples_of_the_wav(client: Client) -> None:
    wav, pcm = speech_audio("hi", "wav"), speech_audio("hi", "pcm")
    with wave.open(BytesIO(wav)) as parsed:
        assert parsed.readframes(parsed.getnframes()) == pcm


@pytest.mark.parametrize(
    ("model", "prompt", "code"),
    [
        ("elevenlabs-tts", {"voice": "alloy"}, "MISSING_REQUIRED_FIELDS"),
        ("tts-1", {}, "MISSING_REQUIRED_FIELDS"),
        ("tts-1", {"voice": "darth"}, "EXTERNAL_API_RESPONSE_WITH_ERROR"),
        ("tts-1", {"voice": "alloy", "speed": 9}, "EXTERNAL_API_RESPONSE_WITH_ERROR"),
        ("tts-1", {"voice": "alloy", "text": "x" * 4097}, "EXTERNAL_API_RESPONSE_WITH_ERROR"),
    ],
)
async def test_speech_rejections(
    client: Client, model: str, prompt: dict[str, Any], code: str
) -> None:
    status, body = await feature(client, "TEXT_TO_SPEECH", model, **{"text": "hi", **prompt})
    assert (status, body["errorCode"]) == (400, code)


async def test_feature_calls_are_recorded(client: Client) -> None:
    await feature(client, "TEXT_TO_SPEECH", "tts-1", text="hi", voice="alloy")
    recorded = await (await client.get("/_emulator/requests", params={"api_key": KEY})).json()
    (call,) = recorded
    assert call["path"] == FEATURES and call["status"] == 200
    assert call["body"]["promptObject"] == {"text": "hi", "voice": "alloy"}
