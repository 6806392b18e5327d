"""Audio through the official openai SDK: transcriptions, translations and speech, on the live
stack, with real (small, generated) WAV files."""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.request
import wave
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import openai
import pytest
from aiohttp import web

from onemin_relay.app import create_app
from onemin_relay.core.errors import UpstreamError
from onemin_relay.core.media_types import SpeechAudio
from onemin_relay.surfaces.openai.audio import AUDIO_UPLOAD_LIMIT, MAX_AUDIO_BYTES, send_audio
from tests.conftest import Stack

TEXT = "Transcript of speech.wav ({} bytes)"


def wav(seconds: float = 1.5, rate: int = 8000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(bytes(int(rate * seconds) * 2))
    return buffer.getvalue()


def upstream(stack: Stack, api_key: str, path: str) -> list[dict[str, Any]]:
    return [r for r in stack.upstream_requests(api_key) if r["path"] == path]


def emulator_speech(stack: Stack, body: dict[str, Any]) -> bytes:
    """The audio the emulator stores for ``body``, asked of it directly."""
    request = urllib.request.Request(
        f"{stack.emulator_url}/api/features",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "API-KEY": "oracle-key"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        path = json.loads(response.read())["aiRecord"]["aiRecordDetail"]["resultObject"][0]
    with urllib.request.urlopen(f"{stack.emulator_url}/{path}", timeout=5) as response:
        return bytes(response.read())


AUDIO = wav()
SPOKEN = TEXT.format(len(AUDIO))
EXPECTED: dict[str, Callable[[Any], object]] = {
    "json": lambda r: r.text,
    "text": lambda r: r,
    "srt": lambda r: r,
    "vtt": lambda r: r,
    "verbose_json": lambda r: (r.task, r.language, r.duration, r.text, r.segments),
}
TRANSCRIBED = {
    "json": SPOKEN,
    "text": SPOKEN,
    "srt": f"1\n00:00:00,000 --> 00:00:01,500\n{SPOKEN}\n\n",
    "vtt": f"WEBVTT\n\n00:00:00.000 --> 00:00:01.500\n{SPOKEN}\n\n",
    "verbose_json": ("transcribe", "en", 1.5, SPOKEN, []),
}


@pytest.mark.parametrize("fmt", list(TRANSCRIBED))
def test_transcription_in_every_response_format(
    client: openai.OpenAI, stack: Stack, api_key: str, fmt: str
) -> None:
    result = client.audio.transcriptions.create(
        file=("speech.wav", AUDIO, "audio/wav"),
        model="whisper-1",
        response_format=fmt,  # type: ignore[arg-type]
        language="en",
        prompt="a short test",
        temperature=0.2,
    )
    assert EXPECTED[fmt](result) == TRANSCRIBED[fmt]
    (asset,) = upstream(stack, api_key, "/api/assets")
    assert asset["body"] == {"filename": "speech.wav", "mimetype": "audio/wav", "size": len(AUDIO)}
    (call,) = upstream(stack, api_key, "/api/features")
    prompt = call["body"]["promptObject"]
    assert call["body"]["type"] == "SPEECH_TO_TEXT"
    assert prompt["audioUrl"].startswith("audios/") and prompt["audioUrl"].endswith("_speech.wav")
    assert {k: v for k, v in prompt.items() if k != "audioUrl"} == {
        "response_format": "text",
        "language": "en",
        "prompt": "a short test",
        "temperature": 0.2,
    }, "1min.ai is always asked for text; the format is rendered by the relay"


TRANSLATED = SPOKEN.replace("Transcript", "Translation")


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("json", TRANSLATED),
        ("text", TRANSLATED),
        ("srt", f"1\n00:00:00,000 --> 00:00:01,500\n{TRANSLATED}\n\n"),
        ("vtt", f"WEBVTT\n\n00:00:00.000 --> 00:00:01.500\n{TRANSLATED}\n\n"),
        ("verbose_json", ("translate", "english", 1.5, TRANSLATED, [])),
    ],
)
def test_translation_in_every_response_format(
    client: openai.OpenAI, stack: Stack, api_key: str, fmt: str, expected: object
) -> None:
    with pytest.deprecated_call():  # the SDK marks translations deprecated
        result = client.audio.translations.create(
            file=("speech.wav", AUDIO, "audio/wav"),
            model="whisper-1",
            response_format=fmt,  # type: ignore[arg-type]
        )
    assert EXPECTED[fmt](result) == expected
    (call,) = upstream(stack, api_key, "/api/features")
    assert call["body"]["type"] == "AUDIO_TRANSLATOR"


def test_google_speech_model_gets_a_bcp47_language(
    client: openai.OpenAI, stack: Stack, api_key: str
) -> None:
    result = client.audio.transcriptions.create(
        file=("speech.wav", AUDIO), model="latest_long", language="en"
    )
    assert result.text == SPOKEN
    (call,) = upstream(stack, api_key, "/api/features")
    assert call["body"]["promptObject"]["language"] == "en-US"


def test_upload_over_client_max_size_but_under_25_mb_is_accepted(
    client: openai.OpenAI, stack: Stack
) -> None:
    big = wav(seconds=150)  # 2.4 MB; the test relay's client_max_size is 1 MB
    assert len(big) > stack.settings.max_body_bytes
    result = client.audio.transcriptions.create(file=("speech.wav", big), model="whisper-1")
    assert result.text == TEXT.format(len(big))


def test_oversize_upload_is_413_and_nothing_reaches_upstream(
    client: openai.OpenAI, stack: Stack, api_key: str
) -> None:
    too_big = AUDIO + bytes(MAX_AUDIO_BYTES + 1 - len(AUDIO))
    with pytest.raises(openai.APIStatusError) as caught:
        client.audio.transcriptions.create(file=("speech.wav", too_big), model="whisper-1")
    assert caught.value.status_code == 413
    assert caught.value.body["param"] == "file"
    assert stack.upstream_requests(api_key) == [], "no asset, no feature call"


async def test_injected_small_limit_refuses_early(
    aiohttp_server: Any, stack: Stack, api_key: str
) -> None:
    app = create_app(stack.settings)
    app[AUDIO_UPLOAD_LIMIT] = 4096
    server = await aiohttp_server(app)
    async with openai.AsyncOpenAI(
        base_url=str(server.make_url("/v1")), api_key=api_key, max_retries=0
    ) as client:
        with pytest.raises(openai.APIStatusError) as caught:
            await client.audio.transcriptions.create(file=("a.wav", wav(1.0)), model="whisper-1")
        assert caught.value.status_code == 413
        small = await client.audio.transcriptions.create(
            file=("a.wav", wav(0.1)), model="whisper-1"
        )
    assert small.text.startswith("Transcript of a.wav")
    paths = [r["path"] for r in stack.upstream_requests(api_key)]
    assert paths == ["/api/assets", "/api/features"], "only the upload under the limit went up"


def test_unrecognised_audio_is_refused_before_upload(
    client: openai.OpenAI, stack: Stack, api_key: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.audio.transcriptions.create(file=("notes.txt", b"hello"), model="whisper-1")
    assert caught.value.body["param"] == "file"
    assert stack.upstream_requests(api_key) == []


def test_tts_model_cannot_transcribe(client: openai.OpenAI, stack: Stack, api_key: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.audio.transcriptions.create(file=("speech.wav", AUDIO), model="tts-1")
    assert caught.value.body["code"] == "model_not_supported"
    assert stack.upstream_requests(api_key) == []


# -- speech -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "fmt", "content_type", "magic"),
    [
        ("tts-1", None, "audio/mpeg", b"\xff\xfb"),
        ("tts-1-hd", "wav", "audio/wav", b"RIFF"),
        ("elevenlabs-tts", "wav", "audio/mpeg", b"\xff\xfb"),
    ],
)
def test_speech_returns_the_emulators_audio(
    client: openai.OpenAI,
    stack: Stack,
    api_key: str,
    model: str,
    fmt: str | None,
    content_type: str,
    magic: bytes,
) -> None:
    extra = {"response_format": fmt} if fmt else {}
    response = client.audio.speech.with_raw_response.create(
        model=model, input="Hello from the relay", voice="alloy", **extra
    )
    audio = response.content
    assert response.headers["content-type"] == content_type
    assert int(response.headers["content-length"]) == len(audio)
    assert audio.startswith(magic)
    (call,) = upstream(stack, api_key, "/api/features")
    assert audio == emulator_speech(stack, call["body"])


def test_speech_streams_in_chunks(client: openai.OpenAI, stack: Stack, api_key: str) -> None:
    with client.audio.speech.with_streaming_response.create(
        model="tts-1", input="x" * 200, voice="nova", response_format="pcm"
    ) as response:
        assert response.headers["content-type"] == "audio/pcm"
        chunks = list(response.iter_bytes(4096))
    (call,) = upstream(stack, api_key, "/api/features")
    assert call["body"]["promptObject"]["response_format"] == "pcm"
    assert b"".join(chunks) == emulator_speech(stack, call["body"])


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"input": "x" * 4097}, "input"),
        ({"speed": 5.0}, "speed"),
        ({"stream_format": "sse"}, "stream_format"),
    ],
)
def test_bad_speech_parameters_are_400(
    client: openai.OpenAI, stack: Stack, api_key: str, fields: dict[str, Any], param: str
) -> None:
    request = {"model": "tts-1", "input": "hi", "voice": "alloy", **fields}
    with pytest.raises(openai.BadRequestError) as caught:
        client.audio.speech.create(**request)
    assert caught.value.body["param"] == param
    assert stack.upstream_requests(api_key) == []


def test_speech_with_an_unknown_model_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.audio.speech.create(model="tts-9", input="hi", voice="alloy")


def post_raw(stack: Stack, api_key: str, body: bytes, content_type: str) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"{stack.relay_url}/v1/audio/transcriptions",
        data=body,
        headers={"Content-Type": content_type, "Authorization": f"Bearer {api_key}"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())


def form(*parts: tuple[str, bytes, str | None]) -> bytes:
    chunks = []
    for name, value, filename in parts:
        disposition = f'form-data; name="{name}"'
        if filename:
            disposition += f'; filename="{filename}"'
        chunks.append(f"--xyz\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + value)
    return b"\r\n".join(chunks) + b"\r\n--xyz--\r\n"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"--xyz\r\nnot a part", None),
        (form(("model", b"whisper-1", None)), "file"),
        (form(("file", AUDIO, "a.wav")), "model"),
        (form(("file", AUDIO, "a.wav"), ("model", b"whisper-1", None),
              ("response_format", b"diarized_json", None)), "response_format"),
        (form(("file", AUDIO, "a.wav"), ("model", b"whisper-1", None),
              ("temperature", b"warm", None)), "temperature"),
    ],
)  # fmt: skip
def test_malformed_or_incomplete_forms_are_400(
    stack: Stack, api_key: str, body: bytes, param: str | None
) -> None:
    status, error = post_raw(stack, api_key, body, "multipart/form-data; boundary=xyz")
    assert status == 400, error
    assert error["error"]["param"] == param
    assert stack.upstream_requests(api_key) == []


@pytest.mark.parametrize("size", [100, None])
async def test_speech_failing_after_the_headers_cuts_the_connection(
    aiohttp_client: Any, size: int | None
) -> None:
    """A client must never take a truncated file for a whole one."""

    async def chunks() -> AsyncIterator[bytes]:
        yield b"RIFF0000WAVE"
        raise UpstreamError("the asset host went away")

    async def handler(request: web.Request) -> web.StreamResponse:
        audio = SpeechAudio(format="wav", size=size, chunks=chunks())
        return await send_audio(request, audio, write_timeout=5.0)

    app = web.Application()
    app.router.add_get("/speech", handler)
    client = await aiohttp_client(app)
    async with client.get("/speech") as response:
        assert response.status == 200 and response.content_type == "audio/wav"
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()
