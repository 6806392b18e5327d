"""Protocol-neutral shapes for images and audio, and what can be read from media bytes alone.

The surfaces parse OpenAI's images and audio endpoints into these types; ``features.py``
turns them into 1min.ai calls. ``sniff_audio``, ``sniff_image`` and ``audio_duration`` look
only at headers (no decoding), so they are cheap enough for the request path.
"""

from __future__ import annotations

import binascii
import struct
from collections.abc import AsyncIterator
from typing import Literal, TypeAlias

import msgspec
import pybase64

from onemin_relay.core.errors import InvalidRequest

ImageResponseFormat: TypeAlias = Literal["url", "b64_json"]
AudioTask: TypeAlias = Literal["transcribe", "translate"]
SpeechFormat: TypeAlias = Literal["mp3", "opus", "aac", "flac", "wav", "pcm"]


class ImageRequest(msgspec.Struct, frozen=True):
    """Generate ``n`` images; ``None`` fields take the model's default."""

    model: str
    prompt: str
    n: int = 1
    size: str | None = None
    quality: str | None = None
    style: str | None = None
    background: str | None = None
    output_format: str | None = None
    output_compression: int | None = None
    response_format: ImageResponseFormat | None = None


class VariationRequest(msgspec.Struct, frozen=True):
    """Make ``n`` variations of an uploaded image."""

    model: str
    image: bytes
    filename: str | None = None
    n: int = 1
    size: str | None = None
    response_format: ImageResponseFormat | None = None


class GeneratedImage(msgspec.Struct, frozen=True):
    """One image: an absolute URL, or its bytes base64-encoded (never both)."""

    url: str | None = None
    b64_json: str | None = None


class ImageResult(msgspec.Struct, frozen=True):
    created: int
    images: tuple[GeneratedImage, ...]


class TranscriptionRequest(msgspec.Struct, frozen=True):
    """Audio to text, in its own language (transcribe) or in English (translate)."""

    task: AudioTask
    model: str
    audio: bytes
    filename: str | None = None
    language: str | None = None
    prompt: str | None = None
    temperature: float | None = None


class Transcript(msgspec.Struct, frozen=True):
    """The text 1min.ai returned; ``duration`` (seconds) is read from the audio's header."""

    task: AudioTask
    text: str
    language: str | None
    duration: float | None


class SpeechRequest(msgspec.Struct, frozen=True):
    model: str
    text: str
    voice: str
    response_format: SpeechFormat = "mp3"
    speed: float | None = None


class SpeechAudio(msgspec.Struct):
    """Synthesised audio being downloaded: its actual format, size if known, and bytes."""

    format: SpeechFormat
    size: int | None
    chunks: AsyncIterator[bytes]


# -- reading media headers -------------------------------------------------------------

# The audio files OpenAI's transcription endpoints accept, by extension, with their MIME type.
AUDIO_MEDIA_TYPES = {
    "flac": "audio/flac",
    "m4a": "audio/mp4",
    "mp3": "audio/mpeg",
    "mp4": "audio/mp4",
    "mpeg": "audio/mpeg",
    "mpga": "audio/mpeg",
    "oga": "audio/ogg",
    "ogg": "audio/ogg",
    "wav": "audio/wav",
    "webm": "audio/webm",
}


def sniff_image(data: bytes) -> str | None:
    """The MIME type of a PNG, JPEG, WebP or GIF image, from its magic bytes."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    return None


def check_image_data_uri(uri: str, param: str) -> None:
    """Refuse a base64 ``data:`` URI whose bytes are not a PNG, JPEG, WebP or GIF image,
    whatever its label says. Only the first bytes are decoded; anything else wrong with
    the URI (not a data: URI, not base64, bad padding) is left to the full decode.
    """
    header, sep, payload = uri.partition(",")
    if not sep or not header.startswith("data:"):
        return
    params = header[5:].split(";")
    if "base64" not in (p.strip().lower() for p in params[1:]):
        return
    try:
        head = pybase64.b64decode(payload[:16], validate=True)
    except (binascii.Error, ValueError):
        return
    if sniff_image(head) is None:
        label = params[0].strip().lower() or "without a media type"
        raise InvalidRequest(
            f"the data: URI labelled {label} does not hold a PNG, JPEG, WebP or GIF image",
            param=param,
        )


def sniff_audio(data: bytes) -> str | None:
    """The file extension of a WAV, MP3, Ogg, FLAC, MP4/M4A or WebM file, from its magic bytes."""
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "wav"
    if data.startswith(b"ID3") or _frame_header(data, 0) is not None:
        return "mp3"
    if data.startswith(b"OggS"):
        return "ogg"
    if data.startswith(b"fLaC"):
        return "flac"
    if data[4:8] == b"ftyp":
        return "m4a"
    if data.startswith(b"\x1a\x45\xdf\xa3"):
        return "webm"
    return None


def audio_duration(data: bytes) -> float | None:
    """Seconds of audio in a PCM WAV or an MPEG Layer III file; None for anything else.

    WAV: data bytes / byte rate. MP3: the frame count of a Xing/Info header when there is
    one, else the bit rate of the first frame applied to the whole file (exact for CBR).
    """
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return _wav_duration(data)
    return _mp3_duration(data)


def _wav_duration(data: bytes) -> float | None:
    byte_rate = 0
    pos = 12
    while pos + 8 <= len(data):
        chunk, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = pos + 8
        if chunk == b"fmt " and size >= 12 and body + 12 <= len(data):
            byte_rate = struct.unpack_from("<I", data, body + 8)[0]
        elif chunk == b"data":
            available = min(size, len(data) - body)
            return round(available / byte_rate, 3) if byte_rate else None
        pos = body + size + (size & 1)
    return None


# MPEG Layer III: bit rates (kbit/s) by index, for MPEG-1 and for MPEG-2/2.5.
_BITRATES = {
    1: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    2: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_SAMPLE_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


class _Frame(msgspec.Struct, frozen=True):
    mpeg1: bool
    bitrate: int  # bit/s
    sample_rate: int
    mono: bool


def _frame_header(data: bytes, pos: int) -> _Frame | None:
    """The MPEG audio Layer III frame header at ``pos``, if one is there."""
    if pos + 4 > len(data) or data[pos] != 0xFF or data[pos + 1] & 0xE0 != 0xE0:
        return None
    version, layer = (data[pos + 1] >> 3) & 3, (data[pos + 1] >> 1) & 3
    bitrate_index, rate_index = data[pos + 2] >> 4, (data[pos + 2] >> 2) & 3
    if version == 1 or layer != 1 or bitrate_index in (0, 15) or rate_index == 3:
        return None
    table = _BITRATES[1 if version == 3 else 2]
    return _Frame(
        mpeg1=version == 3,
        bitrate=table[bitrate_index] * 1000,
        sample_rate=_SAMPLE_RATES[version][rate_index],
        mono=data[pos + 3] >> 6 == 3,
    )


def _mp3_duration(data: bytes) -> float | None:
    start = 0
    if data.startswith(b"ID3") and len(data) >= 10:
        size = sum((byte & 0x7F) << (7 * (3 - i)) for i, byte in enumerate(data[6:10]))
        start = 10 + size + (10 if data[5] & 0x10 else 0)
    frame = _frame_header(data, start)
    if frame is None:
        return None
    samples_per_frame = 1152 if frame.mpeg1 else 576
    side_info = (17 if frame.mono else 32) if frame.mpeg1 else (9 if frame.mono else 17)
    xing = start + 4 + side_info
    has_xing = len(data) >= xing + 12 and data[xing : xing + 4] in (b"Xing", b"Info")
    if has_xing and data[xing + 7] & 1:
        frames: int = struct.unpack_from(">I", data, xing + 8)[0]
        return round(frames * samples_per_frame / frame.sample_rate, 3)
    end = len(data) - 128 if data[-128:-125] == b"TAG" else len(data)
    return round((end - start) * 8 / frame.bitrate, 3)
