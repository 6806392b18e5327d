"""``IMAGE_GENERATOR`` and ``IMAGE_VARIATOR`` (§3.5, §3.6): small deterministic PNGs.

Every image is an 8×8 PNG of one colour drawn from the prompt (for a variation: the source
image's bytes) and the image's index, so a request always yields the same bytes and the
images of one call differ. Outputs are stored as assets and returned as relative paths.
The emulator always writes PNG; a ``jpeg``/``webp`` ``output_format`` is accepted as is.

What the providers refuse, as 1min.ai reports it (§8):

* ``gpt-image-1*`` without ``quality`` → 400 ``MISSING_REQUIRED_FIELDS`` (the live body);
  a quality other than low/medium/high, an unlisted ``size``, ``n`` other than 1 for
  dall-e-3 or outside 1–10 → 400 ``EXTERNAL_API_RESPONSE_WITH_ERROR`` (service openai);
* midjourney*: always 4 images; ``aspect_width``/``aspect_height`` outside 1–7 → same
  error (service ttapi); flux: an unknown ``aspect_ratio`` → same (service replicate).

Credits follow ``billing``: the model's price for the call's quality/size/mode × the images
made, except midjourney, charged once per call.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from typing import Any

import msgspec
from aiohttp import web

from onemin_relay.emulator.billing import image_credits
from onemin_relay.emulator.bodies import Invalid, convert
from onemin_relay.emulator.catalog import ModelEntry
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

GENERATOR = "IMAGE_GENERATOR"
MIDJOURNEY_BATCH = 4
OPENAI_SIZES = {
    "dall-e-3": ("1024x1024", "1024x1792", "1792x1024"),
    "dall-e-2": ("256x256", "512x512", "1024x1024"),
    "gpt-image-1": ("1024x1024", "1024x1536", "1536x1024"),
    "gpt-image-1-mini": ("1024x1024", "1024x1536", "1536x1024"),
}
FLUX_RATIOS = ("1:1", "16:9", "9:16", "3:2", "2:3", "4:5", "5:4", "custom")
_QUALITIES = ("low", "medium", "high")
_MODERATION = {"resultModeration": {"status": "unknown"}}
_OPENAI_PATH = "/v1/images/generations"


class _GeneratePrompt(msgspec.Struct):
    prompt: str
    n: int = 1
    size: str | None = None
    quality: str | None = None
    aspect_ratio: str | None = None
    aspect_width: int = 1
    aspect_height: int = 1
    mode: str | None = None


class _VariationPrompt(msgspec.Struct, rename="camel"):
    image_url: str
    n: int = 1
    size: str | None = None
    mode: str | None = None


def png(rgb: bytes, side: int = 8) -> bytes:
    """A ``side``×``side`` RGB PNG of one colour."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    rows = (b"\x00" + rgb * side) * side
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def image_for(seed: bytes, index: int) -> bytes:
    """The PNG the emulator makes for image ``index`` of a request seeded by ``seed``."""
    return png(hashlib.sha256(seed + b"#%d" % index).digest()[:3])


def _in_prompt(request: web.Request) -> Invalid:
    invalid = prompt_invalid(request)
    return lambda field, message: invalid(f"promptObject.{field}", message)


def _openai_invalid(param: str, value: object, allowed: tuple[str, ...]) -> dict[str, Any]:
    listed = ", ".join(f"'{a}'" for a in allowed)
    message = f"Invalid value: '{value}'. Supported values are: {listed}."
    return {
        "error": {
            "message": message,
            "type": "invalid_request_error",
            "param": param,
            "code": "invalid_value",
        }
    }


def _openai_count(model_id: str, prompt: _GeneratePrompt) -> int:
    if model_id.startswith("gpt-image-1"):
        if prompt.quality is None:
            raise missing_field(model_id, GENERATOR, "quality")
        if prompt.quality not in _QUALITIES:
            data = _openai_invalid("quality", prompt.quality, _QUALITIES)
            raise provider_error("openai", data, _OPENAI_PATH)
    sizes = OPENAI_SIZES[model_id]
    if (prompt.size or sizes[0]) not in sizes:
        raise provider_error("openai", _openai_invalid("size", prompt.size, sizes), _OPENAI_PATH)
    if model_id == "dall-e-3" and prompt.n != 1:
        data = {"error": {"message": "You must provide n=1 for this model.", "param": "n"}}
        raise provider_error("openai", data, _OPENAI_PATH)
    if not 1 <= prompt.n <= 10:
        data = {"error": {"message": f"{prompt.n} is not between 1 and 10 - 'n'", "param": "n"}}
        raise provider_error("openai", data, _OPENAI_PATH)
    return prompt.n


def _midjourney(model_id: str) -> bool:
    return model_id.startswith(("midjourney", "magic-art"))


def _credit(
    model: ModelEntry, count: int, size: str | None, mode: str | None, quality: str | None = None
) -> int:
    """What a call making ``count`` images costs; midjourney's batch is one charge."""
    images = 1 if _midjourney(model.model_id) else count
    table = model.credit_metadata
    return image_credits(table, quality=quality, size=size, mode=mode, images=images)


def image_count(model_id: str, prompt: _GeneratePrompt) -> int:
    """How many images the call makes; raises ``Rejected`` for what the provider refuses."""
    if model_id in OPENAI_SIZES:
        return _openai_count(model_id, prompt)
    if _midjourney(model_id):
        terms = (prompt.aspect_width, prompt.aspect_height)
        if not all(1 <= term <= 7 for term in terms):
            data = {"message": "aspect_width and aspect_height must be between 1 and 7"}
            raise provider_error("ttapi", data, "/midjourney/v1/imagine")
        return MIDJOURNEY_BATCH
    if "flux" in model_id:
        if (prompt.aspect_ratio or "1:1") not in FLUX_RATIOS:
            data = {"detail": f"aspect_ratio: value is not one of {', '.join(FLUX_RATIOS)}"}
            raise provider_error("replicate", data, "/v1/predictions")
        return 1
    return max(1, min(prompt.n, 10))


async def generate_images(request: web.Request, data: dict[str, Any]) -> web.Response:
    body = convert(data, FeatureBody, prompt_invalid(request))
    model = feature_model(body)
    prompt = convert(body.prompt_object, _GeneratePrompt, _in_prompt(request))
    count = image_count(model.model_id, prompt)
    state, seed = request.app[STATE], prompt.prompt.encode()
    keys = [store_output(state, "images", "png", image_for(seed, i)) for i in range(count)]
    credit = _credit(model, count, prompt.size, prompt.mode, prompt.quality)
    return feature_response(
        request, body, model, keys, metadata=_MODERATION, credit=credit, stored=True
    )


async def vary_image(request: web.Request, data: dict[str, Any]) -> web.Response:
    body = convert(data, FeatureBody, prompt_invalid(request))
    model = feature_model(body)
    prompt = convert(body.prompt_object, _VariationPrompt, _in_prompt(request))
    key = stored_key(request, prompt.image_url)
    if key is None:
        raise invalid_reference("imageUrl", prompt.image_url)
    if _midjourney(model.model_id):
        count = MIDJOURNEY_BATCH
    else:
        sizes = OPENAI_SIZES["dall-e-2"]
        if model.model_id == "dall-e-2" and (prompt.size or sizes[0]) not in sizes:
            data = _openai_invalid("size", prompt.size, sizes)
            raise provider_error("openai", data, "/v1/images/variations")
        count = max(1, min(prompt.n, 10))
    state = request.app[STATE]
    seed = state.assets[key].data
    keys = [store_output(state, "images", "png", image_for(seed, i)) for i in range(count)]
    credit = _credit(model, count, prompt.size, prompt.mode)
    return feature_response(
        request, body, model, keys, metadata=_MODERATION, credit=credit, stored=True
    )
