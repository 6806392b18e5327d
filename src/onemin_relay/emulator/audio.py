"""``SPEECH_TO_TEXT``, ``AUDIO_TRANSLATOR`` and ``TEXT_TO_SPEECH`` (§3.7).

Transcripts come from the uploaded asset, which ``audioUrl`` must name: ``Transcript of
<original filename> (<size> bytes)``, or ``Translation of …`` — in ``resultObject[0]`` as
plain text whatever ``response_format`` asks. Whisper-style models require
``response_format`` and Google models ``language`` (400 ``MISSING_REQUIRED_FIELDS``).

Speech is a short deterministic file (about 10 ms per character, 0.2–1 s) stored as an
asset: ``wav`` a tone whose pitch depends on the text (24 kHz mono 16-bit, via ``wave``);
``pcm`` the same samples raw; ``mp3`` silent MPEG-1 Layer III frames (valid headers, so
players and duration readers accept it). ``opus``/``aac``/``flac`` get the WAV bytes under
that extension: encoding them needs codecs the standard library lacks. elevenlabs-tts always
answers mp3 and needs ``voice_id``; qwen3-tts-flash always answers wav.

Metadata is ``{"credit": n}`` (``billing``): transcription by started minute of audio, whose
length is read from a WAV header or a constant-bitrate MPEG-1 Layer III frame header (1
minute when neither parses); speech by started block of 100 characters.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
import struct
import wave
from typing import Any

import msgspec
from aiohttp import web

from onemin_relay.emulator.billing import audio_minutes_credits, speech_credits
from onemin_relay.emulator.bodies import convert
from onemin_relay.emulator.chat import prompt_invalid
from onemin_relay.emulator.feature_records import (
    FeatureBody,
    feature_model,
    feature_response,
    invalid_reference,
    missing_field,
    provider_error,
    store_output,
    stored_key,
)
from onemin_relay.emulator.state import STATE

SAMPLE_RATE = 24_000
MAX_SPEECH_CHARS = 4096
OPENAI_VOICES = frozenset(
    {"alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer"}
)
SPEECH_FORMATS = ("mp3", "opus", "aac", "flac", "wav", "pcm")
# One silent MPEG-1 Layer III frame: 128 kbit/s, 44.1 kHz, mono, no CRC → 417 bytes.
MP3_FRAME = b"\xff\xfb\x90\xc4" + bytes(413)
_MP3_FRAME_SECONDS = 1152 / 44_100
# MPEG-1 Layer III bitrates in kbit/s by the header's 4-bit index (0 "free" and 15 invalid).
_MP3_KBPS = (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 0)
_STAMP = re.compile(r"^\d{4}(?:_\d{2}){5}_\d{3}_")


class _TranscribePrompt(msgspec.Struct, rename="camel"):
    audio_url: str
    response_format: str | None = msgspec.field(default=None, name="response_format")
    language: str | None = None


class _SpeechPrompt(msgspec.Struct):
    text: str
    voice: str | None = None
    voice_id: str | None = None
    response_format: str = "mp3"
    speed: float = 1.0


def _id3_size(data: bytes) -> int:
    """The length of a leading ID3v2 tag (its size is four 7-bit "syncsafe" bytes)."""
    if len(data) < 10 or not data.startswith(b"ID3"):
        return 0
    size = 0
    for byte in data[6:10]:
        size = size << 7 | (byte & 0x7F)
    return 10 + size


def audio_seconds(data: bytes) -> float | None:
    """How long an uploaded audio file plays, when its header says; else ``None``."""
    try:
        with wave.open(io.BytesIO(data), "rb") as parsed:
            return parsed.getnframes() / parsed.getframerate()
    except (wave.Error, EOFError, ZeroDivisionError):
        pass
    start = _id3_size(data)
    header = data[start : start + 4]
    # frame sync (11 bits), MPEG-1 (11), Layer III (01), then the bitrate index
    if len(header) < 4 or header[0] != 0xFF or header[1] & 0xFE != 0xFA:
        return None
    kbps = _MP3_KBPS[header[2] >> 4]
    return (len(data) - start) * 8 / (kbps * 1000) if kbps else None


def _original_name(key: str) -> str:
    return _STAMP.sub("", key.rsplit("/", 1)[-1])


async def transcribe(request: web.Request, data: dict[str, Any]) -> web.Response:
    """``SPEECH_TO_TEXT`` and ``AUDIO_TRANSLATOR``."""
    invalid = prompt_invalid(request)
    body = convert(data, FeatureBody, invalid)
    model = feature_model(body)
    prompt = convert(
        body.prompt_object, _TranscribePrompt, lambda f, m: invalid(f"promptObject.{f}", m)
    )
    if model.provider is None and body.type == "SPEECH_TO_TEXT":  # Google speech models
        if not prompt.language:
            raise missing_field(model.model_id, body.type, "language")
    elif prompt.response_format is None:
        raise missing_field(model.model_id, body.type, "response_format")
    key = stored_key(request, prompt.audio_url)
    if key is None:
        raise invalid_reference("audioUrl", prompt.audio_url)
    asset = request.app[STATE].assets[key]
    verb = "Transcript" if body.type == "SPEECH_TO_TEXT" else "Translation"
    text = f"{verb} of {_original_name(key)} ({len(asset.data)} bytes)"
    credit = audio_minutes_credits(model.credit_metadata, audio_seconds(asset.data))
    return feature_response(request, body, model, [text], metadata={}, credit=credit, stored=False)


def _tone(text: str) -> bytes:
    seconds = min(1.0, 0.2 + 0.01 * len(text))
    pitch = 200 + int.from_bytes(hashlib.sha256(text.encode()).digest()[:2], "big") % 600
    count = int(SAMPLE_RATE * seconds)
    step = 2 * math.pi * pitch / SAMPLE_RATE
    return struct.pack(f"<{count}h", *(int(6000 * math.sin(step * i)) for i in range(count)))


def speech_audio(text: str, fmt: str) -> bytes:
    """The bytes the emulator stores for ``text`` spoken in format ``fmt``."""
    if fmt == "mp3":
        seconds = min(1.0, 0.2 + 0.01 * len(text))
        return MP3_FRAME * math.ceil(seconds / _MP3_FRAME_SECONDS)
    samples = _tone(text)
    if fmt == "pcm":
        return samples
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(samples)
    return buffer.getvalue()


def _speech_format(model_id: str, feature: str, prompt: _SpeechPrompt) -> str:
    """The format the backend answers in; raises ``Rejected`` for what it refuses."""
    if model_id.startswith("elevenlabs"):
        if not prompt.voice_id:
            raise missing_field(model_id, feature, "voice_id")
        return "mp3"
    if not prompt.voice:
        raise missing_field(model_id, feature, "voice")
    if model_id.startswith("qwen3-tts"):
        return "wav"
    problem: tuple[str, object] | None = None
    if prompt.voice not in OPENAI_VOICES:
        problem = ("voice", prompt.voice)
    elif prompt.response_format not in SPEECH_FORMATS:
        problem = ("response_format", prompt.response_format)
    elif not 0.25 <= prompt.speed <= 4.0:
        problem = ("speed", prompt.speed)
    if problem is not None:
        message = f"Invalid value for '{problem[0]}': {problem[1]!r}"
        data = {"error": {"message": message, "param": problem[0], "code": "invalid_value"}}
        raise provider_error("openai", data, "/v1/audio/speech")
    return prompt.response_format


async def speak(request: web.Request, data: dict[str, Any]) -> web.Response:
    """``TEXT_TO_SPEECH``: the audio stored as an asset, its path in ``resultObject[0]``."""
    invalid = prompt_invalid(request)
    body = convert(data, FeatureBody, invalid)
    model = feature_model(body)
    prompt = convert(
        body.prompt_object, _SpeechPrompt, lambda f, m: invalid(f"promptObject.{f}", m)
    )
    if len(prompt.text) > MAX_SPEECH_CHARS:
        message = f"string too long: the text is over {MAX_SPEECH_CHARS} characters"
        error = {"message": message, "param": "input", "code": "string_above_max_length"}
        raise provider_error("openai", {"error": error}, "/v1/audio/speech")
    fmt = _speech_format(model.model_id, body.type, prompt)
    key = store_output(request.app[STATE], "audios", fmt, speech_audio(prompt.text, fmt))
    credit = speech_credits(model.credit_metadata, len(prompt.text))
    return feature_response(request, body, model, [key], metadata={}, credit=credit, stored=True)
