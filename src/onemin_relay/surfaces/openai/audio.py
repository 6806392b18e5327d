"""OpenAI ``/v1/audio/transcriptions``, ``/v1/audio/translations`` and ``/v1/audio/speech``.

Uploads are read with aiohttp's streaming multipart reader (which the app-wide
``client_max_size`` does not apply to), counting bytes: an audio file is refused with 413 as
soon as it passes 25 MB (``MAX_AUDIO_BYTES``; an app may lower it with
``AUDIO_UPLOAD_LIMIT``), before anything is sent to 1min.ai.

1min.ai returns a transcript as plain text, so every ``response_format`` is rendered from
that text alone: ``json`` ``{"text"}``; ``text`` as is; ``srt``/``vtt`` one cue spanning the
whole audio (its duration read from a WAV or MP3 header; when unknown the cue ends at
99:59:59.999, i.e. "until the end"), never invented segments — blank lines and ``-->`` inside
the text are folded so the cue stays well-formed; ``verbose_json`` with ``segments: []``,
``duration`` 0.0 when unknown and ``language`` as given (``english`` for translations,
``unknown`` otherwise).

Speech is streamed to the client in chunks as it downloads, with the content type of the
format 1min.ai produced (``pcm`` is raw little-endian 16-bit samples, hence ``audio/pcm``
rather than the big-endian ``audio/L16``). An upstream failure after the headers went out
closes the connection, so a client never mistakes a cut file for a whole one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Annotated, Literal

import msgspec
from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from onemin_relay.core.errors import InvalidRequest, PayloadTooLarge, RelayError
from onemin_relay.core.media_types import (
    SpeechAudio,
    SpeechRequest,
    Transcript,
    TranscriptionRequest,
    sniff_audio,
)
from onemin_relay.surfaces.common import FEATURES, SETTINGS, caller_from, json_response, read_body

log = logging.getLogger(__name__)

MAX_AUDIO_BYTES = 25 * 1024 * 1024
AUDIO_UPLOAD_LIMIT = web.AppKey("audio_upload_limit", int)
MAX_FIELD_BYTES = 64 * 1024
MAX_FORM_PARTS = 64
_READ_BYTES = 64 * 1024

TRANSCRIPT_FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
SPEECH_CONTENT_TYPES = {
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
}
UNKNOWN_END = 359_999.999  # 99:59:59.999


# -- multipart forms (also used by the images surface) ----------------------------------


class Upload(msgspec.Struct, frozen=True):
    data: bytes
    filename: str | None


class Form(msgspec.Struct, frozen=True):
    fields: dict[str, str]
    files: dict[str, Upload]

    def text(self, name: str) -> str | None:
        value = self.fields.get(name)
        return value if value else None

    def integer(self, name: str) -> int | None:
        value = self.text(name)
        if value is None:
            return None
        try:
            return int(value)
        except ValueError:
            raise InvalidRequest(f"{name!r} must be an integer", param=name) from None

    def number(self, name: str) -> float | None:
        value = self.text(name)
        if value is None:
            return None
        try:
            return float(value)
        except ValueError:
            raise InvalidRequest(f"{name!r} must be a number", param=name) from None

    def choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        value = self.text(name) or default
        if value not in choices:
            raise InvalidRequest(f"{name!r} must be one of {', '.join(choices)}", param=name)
        return value


async def read_form(request: web.Request, file_limits: Mapping[str, int]) -> Form:
    """Read a multipart form: the files named in ``file_limits`` (each refused with 413 once
    it passes its limit), every other field as text of at most ``MAX_FIELD_BYTES``; files
    not asked for are skipped unread into memory."""
    if not request.content_type.startswith("multipart/form-data"):
        raise InvalidRequest("send the request as multipart/form-data")
    try:
        return await _read_parts(await request.multipart(), file_limits)
    except (ValueError, LookupError, HttpProcessingError):  # bad framing, charset, part headers
        raise InvalidRequest("the multipart/form-data body is malformed") from None


async def _read_parts(reader: MultipartReader, file_limits: Mapping[str, int]) -> Form:
    fields: dict[str, str] = {}
    files: dict[str, Upload] = {}
    for _ in range(MAX_FORM_PARTS):
        part = await reader.next()
        if part is None:
            return Form(fields, files)
        if not isinstance(part, BodyPartReader) or not part.name:
            raise InvalidRequest("nested or unnamed multipart parts are not supported")
        if part.name in file_limits:
            data = await _read_capped(part, file_limits[part.name])
            files[part.name] = Upload(data, part.filename)
        elif part.filename is not None:
            await part.release()
        else:
            raw = await _read_capped(part, MAX_FIELD_BYTES)
            fields[part.name.removesuffix("[]")] = raw.decode(part.get_charset("utf-8"), "replace")
    raise InvalidRequest(f"the form has more than {MAX_FORM_PARTS} parts")


async def _read_capped(part: BodyPartReader, limit: int) -> bytes:
    data = bytearray()
    while chunk := await part.read_chunk(_READ_BYTES):
        if len(data) + len(chunk) > limit:
            raise PayloadTooLarge(f"'{part.name}' is larger than {limit} bytes", param=part.name)
        data += chunk
    return bytes(data)


# -- transcriptions and translations ----------------------------------------------------


async def transcriptions(request: web.Request) -> web.Response:
    return await _transcribe(request, "transcribe")


async def translations(request: web.Request) -> web.Response:
    return await _transcribe(request, "translate")


async def _transcribe(
    request: web.Request, task: Literal["transcribe", "translate"]
) -> web.Response:
    limit = request.app.get(AUDIO_UPLOAD_LIMIT, MAX_AUDIO_BYTES)
    form = await read_form(request, {"file": limit})
    upload = form.files.get("file")
    if upload is None:
        raise InvalidRequest("'file' is required: the audio to transcribe", param="file")
    if not upload.data:
        raise InvalidRequest("'file' is empty", param="file")
    if sniff_audio(upload.data) is None:
        raise InvalidRequest(
            "'file' is not a recognised audio file; send flac, m4a, mp3, mp4, mpeg, mpga, "
            "oga, ogg, wav or webm",
            param="file",
        )
    model = form.text("model")
    if model is None:
        raise InvalidRequest("'model' is required", param="model")
    fmt = form.choice("response_format", TRANSCRIPT_FORMATS, "json")
    if form.text("stream") == "true":
        raise InvalidRequest("streamed transcriptions are not supported", param="stream")
    core = TranscriptionRequest(
        task=task,
        model=model.strip(),
        audio=upload.data,
        filename=upload.filename,
        language=form.text("language") if task == "transcribe" else None,
        prompt=form.text("prompt"),
        temperature=form.number("temperature"),
    )
    transcript = await request.app[FEATURES].transcribe(core, caller_from(request, "x-api-key"))
    return render_transcript(transcript, fmt)


def render_transcript(transcript: Transcript, fmt: str) -> web.Response:
    """The transcript in OpenAI's ``response_format`` (see the module docstring)."""
    text = transcript.text
    if fmt == "json":
        return json_response({"text": text})
    if fmt == "verbose_json":
        return json_response(
            {
                "task": transcript.task,
                "language": transcript.language or "unknown",
                "duration": transcript.duration or 0.0,
                "text": text,
                "segments": [],
            }
        )
    end = transcript.duration if transcript.duration is not None else UNKNOWN_END
    if fmt == "srt":
        body = f"1\n00:00:00,000 --> {_timestamp(end, ',')}\n{_cue_text(text)}\n\n" if text else ""
    elif fmt == "vtt":
        cue = f"00:00:00.000 --> {_timestamp(end, '.')}\n{_cue_text(text)}\n\n" if text else ""
        body = "WEBVTT\n\n" + cue
    else:
        body = text
    return web.Response(text=body, content_type="text/plain", charset="utf-8")


def _timestamp(seconds: float, decimal: str) -> str:
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal}{millis:03d}"


def _cue_text(text: str) -> str:
    """Cue text may not hold a blank line (it would end the cue) nor ``-->``."""
    lines = [line for line in text.strip().replace("-->", "->").splitlines() if line.strip()]
    return "\n".join(lines)


# -- speech -------------------------------------------------------------------------------


class _Voice(msgspec.Struct):
    id: str


class _SpeechBody(msgspec.Struct):
    model: str
    input: Annotated[str, msgspec.Meta(min_length=1, max_length=4096)]
    voice: str | _Voice
    response_format: Literal["mp3", "opus", "aac", "flac", "wav", "pcm"] = "mp3"
    speed: Annotated[float, msgspec.Meta(ge=0.25, le=4.0)] | None = None
    instructions: str | None = None  # gpt-4o-mini-tts only; 1min.ai has no field for it
    stream_format: Literal["audio", "sse"] | None = None


_speech_decoder = msgspec.json.Decoder(_SpeechBody)


def parse_speech(body: _SpeechBody) -> SpeechRequest:
    if body.stream_format == "sse":
        raise InvalidRequest(
            "stream_format 'sse' is not supported; use 'audio'", param="stream_format"
        )
    voice = body.voice.id if isinstance(body.voice, _Voice) else body.voice
    return SpeechRequest(
        model=body.model.strip(),
        text=body.input,
        voice=voice,
        response_format=body.response_format,
        speed=body.speed,
    )


async def speech(request: web.Request) -> web.StreamResponse:
    speech_request = parse_speech(await read_body(request, _speech_decoder))
    features = request.app[FEATURES]
    async with features.speech(speech_request, caller_from(request, "x-api-key")) as audio:
        return await send_audio(request, audio, request.app[SETTINGS].write_timeout)


async def send_audio(
    request: web.Request, audio: SpeechAudio, write_timeout: float
) -> web.StreamResponse:
    """Copy the audio to the client chunk by chunk; a stalled reader is dropped."""
    response = web.StreamResponse(headers={"Content-Type": SPEECH_CONTENT_TYPES[audio.format]})
    if audio.size is not None:
        response.content_length = audio.size
    await response.prepare(request)
    try:
        async for chunk in audio.chunks:
            async with asyncio.timeout(write_timeout):
                await response.write(chunk)
    except RelayError as exc:
        log.warning("speech download failed after the headers: %s", exc.message)
        _drop(request)
        return response
    except TimeoutError:
        log.warning("client stopped reading speech for %ss; dropped", write_timeout)
        _drop(request)
        return response
    await response.write_eof()
    return response


def _drop(request: web.Request) -> None:
    if request.transport is not None:
        request.transport.close()


def add_routes(app: web.Application) -> None:
    for prefix in ("/v1", ""):  # as for chat: clients whose base URL lacks /v1
        app.router.add_post(f"{prefix}/audio/transcriptions", transcriptions)
        app.router.add_post(f"{prefix}/audio/translations", translations)
        app.router.add_post(f"{prefix}/audio/speech", speech)
