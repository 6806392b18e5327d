"""``POST /api/features``: one handler per ``type``, found in the ``FEATURES`` table.

Chat left this endpoint for ``/api/chat-with-ai`` (§1), so the ``CHAT_WITH_*`` types are
rejected unless the app runs with ``legacy_features_chat``; then ``isStreaming=true``
answers the old raw-text stream (§4.3) — the reply's UTF-8 bytes, ended by closing.
Images (``images.py``) and audio (``audio.py``) are further table entries.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from aiohttp import web

from onemin_relay.emulator.audio import speak, transcribe
from onemin_relay.emulator.bodies import Rejected, convert, read_json
from onemin_relay.emulator.catalog import usable_model
from onemin_relay.emulator.chat import (
    Answer,
    Ask,
    answer,
    is_streaming,
    prompt_invalid,
    unsupported_model,
)
from onemin_relay.emulator.images import generate_images, vary_image
from onemin_relay.emulator.respond import error_response, json_response
from onemin_relay.emulator.state import CONFIG
from onemin_relay.emulator.stream import StreamWriter, run_stream

FeatureHandler = Callable[[web.Request, dict[str, Any]], Awaitable[web.StreamResponse]]
LEGACY_CHAT_TYPES = ("CHAT_WITH_AI", "CHAT_WITH_IMAGE", "CHAT_WITH_PDF", "CHAT_WITH_YOUTUBE_VIDEO")


class _LegacyPrompt(msgspec.Struct, rename="camel"):
    prompt: str
    web_search: bool = False
    image_list: list[str] = []


class _LegacyChatBody(msgspec.Struct, rename="camel"):
    type: str
    model: str
    prompt_object: _LegacyPrompt
    conversation_id: str | None = None


def _unsupported_feature(message: str) -> Rejected:
    return Rejected(error_response(400, "UNSUPPORTED_FEATURE", message))


async def features(request: web.Request) -> web.StreamResponse:
    data = await read_json(request)
    feature = data.get("type")
    handler = FEATURES.get(feature) if isinstance(feature, str) else None
    if handler is None:
        raise _unsupported_feature(f"Feature {feature} is not supported")
    return await handler(request, data)


async def _legacy_chat(request: web.Request, data: dict[str, Any]) -> web.StreamResponse:
    if not request.app[CONFIG].legacy_features_chat:
        raise _unsupported_feature(
            f"{data['type']} is no longer supported by this API, use POST /api/chat-with-ai"
        )
    body = convert(data, _LegacyChatBody, prompt_invalid(request))
    model = usable_model(body.type, body.model)
    if model is None:
        return error_response(400, "UNSUPPORTED_MODEL", unsupported_model(body.model))
    prompt = body.prompt_object
    ask = Ask(
        prompt=prompt.prompt,
        images=tuple(prompt.image_list),
        web_search=prompt.web_search,
        conversation_id=body.conversation_id,
    )
    result = answer(request, ask, model, body.type)
    if not is_streaming(request):
        return json_response({"aiRecord": result.record})
    return await run_stream(
        request, "text/plain; charset=utf-8", lambda writer: _write_text(writer, result)
    )


async def _write_text(writer: StreamWriter, result: Answer) -> bool:
    for delta in result.deltas:
        if delta:
            await writer.send(delta.encode())
    return True


FEATURES: dict[str, FeatureHandler] = {
    **dict.fromkeys(LEGACY_CHAT_TYPES, _legacy_chat),
    "IMAGE_GENERATOR": generate_images,
    "IMAGE_VARIATOR": vary_image,
    "SPEECH_TO_TEXT": transcribe,
    "AUDIO_TRANSLATOR": transcribe,
    "TEXT_TO_SPEECH": speak,
}
