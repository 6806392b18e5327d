"""Reading media headers: format sniffing and audio duration without decoding."""

from __future__ import annotations

import io
import struct
import wave

import pytest

from onemin_relay.core.media_types import audio_duration, sniff_audio, sniff_image

# One MPEG-1 Layer III frame: 128 kbit/s, 44.1 kHz, mono, no CRC, 417 bytes.
MP3_FRAME = b"\xff\xfb\x90\xc4" + bytes(413)


def wav(seconds: float, rate: int = 8000, channels: int = 1) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(bytes(int(rate * seconds) * 2 * channels))
    return buffer.getvalue()


def id3(size: int) -> bytes:
    syncsafe = bytes((size >> shift) & 0x7F for shift in (21, 14, 7, 0))
    return b"ID3\x04\x00\x00" + syncsafe + bytes(size)


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (wav(0.1), "wav"),
        (MP3_FRAME, "mp3"),
        (id3(20) + MP3_FRAME, "mp3"),
        (b"OggS\x00\x02", "ogg"),
        (b"fLaC\x00", "flac"),
        (b"\x00\x00\x00\x20ftypM4A ", "m4a"),
        (b"\x1a\x45\xdf\xa3\x01", "webm"),
        (b"hello world", None),
        (b"\xff\xfe", None),
    ],
)
def test_sniff_audio(data: bytes, kind: str | None) -> None:
    assert sniff_audio(data) == kind


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"\x89PNG\r\n\x1a\n....", "image/png"),
        (b"\xff\xd8\xff\xe0", "image/jpeg"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"GIF89a", "image/gif"),
        (b"<svg/>", None),
    ],
)
def test_sniff_image(data: bytes, kind: str | None) -> None:
    assert sniff_image(data) == kind


@pytest.mark.parametrize(("seconds", "rate", "channels"), [(1.5, 8000, 1), (0.25, 44100, 2)])
def test_wav_duration_is_exact(seconds: float, rate: int, channels: int) -> None:
    assert audio_duration(wav(seconds, rate, channels)) == seconds


def test_wav_cut_short_counts_what_arrived() -> None:
    data = wav(2.0)
    assert audio_duration(data[: len(data) // 2]) == pytest.approx(1.0, abs=0.01)


def test_wav_without_data_chunk_has_no_duration() -> None:
    assert audio_duration(wav(1.0)[:36]) is None


def test_cbr_mp3_duration_from_the_bit_rate() -> None:
    frames = 100
    data = id3(64) + MP3_FRAME * frames + b"TAG" + bytes(125)
    assert audio_duration(data) == pytest.approx(frames * 1152 / 44100, rel=0.01)


def test_vbr_mp3_duration_from_the_xing_frame_count() -> None:
    xing = bytearray(MP3_FRAME)
    offset = 4 + 17  # header + MPEG-1 mono side info
    xing[offset : offset + 12] = b"Xing" + struct.pack(">II", 1, 500)
    data = bytes(xing) + MP3_FRAME * 3
    assert audio_duration(data) == round(500 * 1152 / 44100, 3)


@pytest.mark.parametrize("data", [b"", b"OggS....", b"\xff\xfb", b"RIFF\x00\x00\x00\x00WAVE"])
def test_unknown_or_truncated_audio_has_no_duration(data: bytes) -> None:
    assert audio_duration(data) is None
