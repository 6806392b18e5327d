"""Request bodies and headers for both sides of every scenario.

A direct call speaks 1min.ai (``POST /api/chat-with-ai``, ``API-KEY``); a relayed call speaks
OpenAI (``POST /v1/chat/completions``, ``Authorization: Bearer``). Both carry the same prompt
to the same emulator, and the emulator gives both the same reply.
"""

from __future__ import annotations

import base64
import struct
import zlib

import orjson

MODEL = "gpt-4o-mini"
PROMPT = "Write twenty words about a gateway."
VISION_PROMPT = "Describe this image."
# 20 words: the emulator streams it as 20 non-empty content deltas (after its empty first one).
REPLY = (
    "A gateway sits between clients and the upstream service, translating every request "
    "while adding as little latency as it can."
)
DIRECT_CHAT_PATH = "/api/chat-with-ai"
DIRECT_STREAM_PATH = "/api/chat-with-ai?isStreaming=true"
DIRECT_ASSETS_PATH = "/api/assets"
RELAYED_CHAT_PATH = "/v1/chat/completions"
IMAGE_BYTES = 200 * 1024


def direct_chat(prompt: str = PROMPT, images: tuple[str, ...] = ()) -> bytes:
    prompt_object: dict[str, object] = {"prompt": prompt}
    if images:
        prompt_object["attachments"] = {"images": list(images)}
    return orjson.dumps(
        {"type": "UNIFY_CHAT_WITH_AI", "model": MODEL, "promptObject": prompt_object}
    )


def relayed_chat(prompt: str = PROMPT, *, stream: bool = False, image_uri: str = "") -> bytes:
    content: object = prompt
    if image_uri:
        content = [
            {"type": "text", "text": prompt},
            {"type": "image_url", "image_url": {"url": image_uri}},
        ]
    body: dict[str, object] = {"model": MODEL, "messages": [{"role": "user", "content": content}]}
    if stream:
        body["stream"] = True
    return orjson.dumps(body)


def direct_headers(key: str) -> dict[str, str]:
    return {"API-KEY": key}


def relayed_headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def png_image(size: int = IMAGE_BYTES) -> bytes:
    """A valid RGB PNG of about ``size`` bytes whose pixels do not compress (a photo-like load)."""
    width = 256
    row_bytes = 1 + width * 3
    rows = size // row_bytes + 1
    noise = bytearray()
    state = 0x2545F491
    while len(noise) < rows * width * 3:  # xorshift32: deterministic, incompressible enough
        state ^= (state << 13) & 0xFFFFFFFF
        state ^= state >> 17
        state ^= (state << 5) & 0xFFFFFFFF
        noise += state.to_bytes(4, "little")
    raw = b"".join(b"\x00" + bytes(noise[r * width * 3 : (r + 1) * width * 3]) for r in range(rows))

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, rows, 8, 2, 0, 0, 0)
    idat = zlib.compress(raw, 1)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def multipart_upload(png: bytes, filename: str, boundary: str) -> bytes:
    """A ``multipart/form-data`` body with the image in part ``asset`` (1min.ai's upload)."""
    return (
        (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="asset"; filename="{filename}"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + png
        + f"\r\n--{boundary}--\r\n".encode()
    )
