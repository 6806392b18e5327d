"""What each image and audio model is sent: the pure half of :mod:`onemin_relay.features`.

Per-model parameter mapping (API doc §3.5–3.7). A parameter a model has no field for is
dropped; a value it cannot honour is a 400 naming the parameter. Image generation:

====================  =====================================================================
dall-e-3              size 1024x1024, 1024x1792, 1792x1024; quality hd|high|xhigh|max → hd,
                      else standard; style; one image per call: n>1 is n concurrent calls
dall-e-2              size 256x256, 512x512, 1024x1024; n in one call
gpt-image-*           size 1024x1024, 1024x1536, 1536x1024; quality (required upstream):
                      none|auto|low → low, medium|standard → medium, high|hd|xhigh|max → high;
                      background transparent|opaque; output_format png|jpeg|webp;
                      output_compression; style (gpt-image-1 only); n in one call
*flux*                no sizes upstream: WxH → nearest aspect_ratio of 1:1 16:9 9:16 3:2 2:3
                      4:5 5:4 (by log ratio); one image per call, so n calls
midjourney*,          WxH → nearest aspect_width:aspect_height with terms 1–7; always 4 images
magic-art*            per call (mode fast): ceil(n/4) calls, the extra images dropped
anything else         ``{prompt, n, size}`` as other relays send it; size passed through
====================  =====================================================================

For models with a size list, no size or ``auto`` means 1024x1024 and any other size is a 400
listing the supported ones: a silently different size would surprise more than an error.
``response_format`` defaults to ``b64_json`` for gpt-image-* (OpenAI's GPT image models return
only base64) and ``url`` otherwise; URLs are absolute on the asset host. Variations: dall-e-2
``{imageUrl, n, size}``, midjourney* 4 per call as above, others ``{imageUrl, n}``.

Audio: the upload is stored as an asset first, its path sent as ``audioUrl``. Whisper-style
models get ``response_format: "text"`` (every OpenAI format is rendered from that text by the
surface), ``language``, ``prompt``, ``temperature``; Google models (``latest_long`` …) only a
BCP-47 ``language`` (``en`` → ``en-US``; default ``en-US``); translation (``AUDIO_TRANSLATOR``)
``{response_format, prompt, temperature}``. Speech: elevenlabs-tts ``{text, voice_id,
output_format: mp3_44100_128}`` (always mp3, the voice is an ElevenLabs voice id), qwen3-tts*
``{text, voice}`` (always wav), others ``{text, voice, response_format, speed}``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any, Literal, TypeAlias

import msgspec

from onemin_relay.core.errors import (
    InvalidRequest,
)
from onemin_relay.core.media_types import (
    ImageRequest,
    SpeechFormat,
    SpeechRequest,
    TranscriptionRequest,
    VariationRequest,
)

Family: TypeAlias = Literal["dall-e-3", "dall-e-2", "gpt-image", "flux", "midjourney", "generic"]

MAX_IMAGES = 10
MIDJOURNEY_BATCH = 4
# The largest generated image the relay downloads to base64-encode.
DEFAULT_SIZE = "1024x1024"
LISTED_SIZES: dict[Family, tuple[str, ...]] = {
    "dall-e-3": ("1024x1024", "1024x1792", "1792x1024"),
    "dall-e-2": ("256x256", "512x512", "1024x1024"),
    "gpt-image": ("1024x1024", "1024x1536", "1536x1024"),
}
FLUX_RATIOS = ((1, 1), (16, 9), (9, 16), (3, 2), (2, 3), (4, 5), (5, 4))
MIDJOURNEY_TERMS = tuple((w, h) for w in range(1, 8) for h in range(1, 8) if math.gcd(w, h) == 1)
_HIGH_QUALITY = frozenset({"hd", "high", "xhigh", "max"})
_GPT_IMAGE_QUALITY = {"low": "low", "auto": "low", "medium": "medium", "standard": "medium"}
_GPT_IMAGE_QUALITY |= dict.fromkeys(_HIGH_QUALITY, "high")
_GPT_IMAGE_FORMATS = ("png", "jpeg", "webp")
_SIZE = re.compile(r"(\d{1,5})x(\d{1,5})")

GOOGLE_SPEECH_MODELS = frozenset(
    ("latest_long", "latest_short", "phone_call", "telephony", "telephony_short",
     "medical_dictation", "medical_conversation")
)  # fmt: skip
_BCP47 = {"en": "en-US", "zh": "zh-CN", "pt": "pt-BR", "es": "es-ES", "ja": "ja-JP"}
_BCP47 |= {"ko": "ko-KR", "hi": "hi-IN", "ar": "ar-SA", "uk": "uk-UA", "vi": "vi-VN"}


class ImageCalls(msgspec.Struct, frozen=True):
    """The promptObjects to send, one per upstream call, and how many images to keep."""

    prompt_objects: tuple[dict[str, Any], ...]
    keep: int


# -- per-model mapping (pure) ------------------------------------------------------------


def image_family(model: str) -> Family:
    name = model.lower()
    if name == "dall-e-3":
        return "dall-e-3"
    if name == "dall-e-2":
        return "dall-e-2"
    if name.startswith("gpt-image-"):
        return "gpt-image"
    if "flux" in name:
        return "flux"
    if name.startswith(("midjourney", "magic-art")):
        return "midjourney"
    return "generic"


def plan_generation(model: str, request: ImageRequest) -> ImageCalls:
    """The ``IMAGE_GENERATOR`` calls that produce ``request.n`` images with ``model``."""
    n = _checked_n(request.n)
    family = image_family(model)
    base: dict[str, Any] = {"prompt": request.prompt}
    if family == "midjourney":
        width, height = _nearest(request.size, MIDJOURNEY_TERMS)
        base |= {"mode": "fast", "n": MIDJOURNEY_BATCH}
        base |= {"aspect_width": width, "aspect_height": height}
        return ImageCalls((base,) * math.ceil(n / MIDJOURNEY_BATCH), keep=n)
    if family == "flux":
        base["aspect_ratio"] = "{}:{}".format(*_nearest(request.size, FLUX_RATIOS))
        return ImageCalls((base,) * n, keep=n)
    if family == "generic":
        size = request.size if request.size not in (None, "auto") else DEFAULT_SIZE
        return ImageCalls(({**base, "n": n, "size": size},), keep=n)
    base["size"] = _listed_size(family, request.size)
    if family == "dall-e-3":
        quality = "hd" if request.quality in _HIGH_QUALITY else "standard"
        base |= {"n": 1, "quality": quality}
        if request.style:
            base["style"] = request.style
        return ImageCalls((base,) * n, keep=n)
    base["n"] = n
    if family == "gpt-image":
        base |= _gpt_image_options(model, request)
    return ImageCalls((base,), keep=n)


def plan_variation(model: str, request: VariationRequest) -> ImageCalls:
    """The ``IMAGE_VARIATOR`` calls, without ``imageUrl`` (added once the image is stored)."""
    n = _checked_n(request.n)
    family = image_family(model)
    if family == "midjourney":
        base = {"mode": "fast", "n": MIDJOURNEY_BATCH, "isNiji6": False}
        base |= {"aspect_width": 1, "aspect_height": 1, "maintainModeration": True}
        return ImageCalls((base,) * math.ceil(n / MIDJOURNEY_BATCH), keep=n)
    if family == "dall-e-2":
        return ImageCalls(({"n": n, "size": _listed_size(family, request.size)},), keep=n)
    return ImageCalls(({"n": n},), keep=n)


def transcription_prompt(model: str, request: TranscriptionRequest) -> dict[str, Any]:
    """The promptObject of a ``SPEECH_TO_TEXT`` / ``AUDIO_TRANSLATOR`` call, minus ``audioUrl``."""
    if request.task == "transcribe" and model in GOOGLE_SPEECH_MODELS:
        language = request.language or "en"
        return {"language": language if "-" in language else _BCP47.get(language, language)}
    prompt_object: dict[str, Any] = {"response_format": "text"}
    if request.task == "transcribe" and request.language:
        prompt_object["language"] = request.language
    if request.prompt:
        prompt_object["prompt"] = request.prompt
    if request.temperature is not None:
        prompt_object["temperature"] = request.temperature
    return prompt_object


def speech_prompt(model: str, request: SpeechRequest) -> tuple[dict[str, Any], SpeechFormat]:
    """The promptObject of a ``TEXT_TO_SPEECH`` call and the format the audio will be in."""
    name = model.lower()
    if name.startswith("elevenlabs"):
        voice = {"voice_id": request.voice, "output_format": "mp3_44100_128"}
        return {"text": request.text, **voice}, "mp3"
    if name.startswith("qwen3-tts"):
        return {"text": request.text, "voice": request.voice}, "wav"
    prompt_object: dict[str, Any] = {"text": request.text, "voice": request.voice}
    prompt_object["response_format"] = request.response_format
    if request.speed is not None:
        prompt_object["speed"] = request.speed
    return prompt_object, request.response_format


def _checked_n(n: int) -> int:
    if not 1 <= n <= MAX_IMAGES:
        raise InvalidRequest(f"n must be between 1 and {MAX_IMAGES}", param="n")
    return n


def _listed_size(family: Family, size: str | None) -> str:
    if size is None or size == "auto":
        return DEFAULT_SIZE
    listed = LISTED_SIZES[family]
    if size not in listed:
        raise InvalidRequest(
            f"size {size!r} is not supported by {family}; use one of {', '.join(listed)}",
            param="size",
        )
    return size


def _nearest(size: str | None, candidates: Iterable[tuple[int, int]]) -> tuple[int, int]:
    """The candidate ratio closest to ``size``'s (a square when no size is given)."""
    width, height = 1, 1
    if size is not None and size != "auto":
        match = _SIZE.fullmatch(size)
        width, height = (int(match[1]), int(match[2])) if match else (0, 0)
        if not (width and height):
            raise InvalidRequest(f"size must look like 1024x1024, got {size!r}", param="size")
    target = math.log(width / height)
    return min(candidates, key=lambda c: abs(math.log(c[0] / c[1]) - target))


def _gpt_image_options(model: str, request: ImageRequest) -> dict[str, Any]:
    quality = _GPT_IMAGE_QUALITY.get(request.quality or "auto")
    if quality is None:
        raise InvalidRequest(f"quality {request.quality!r} is not supported", param="quality")
    options: dict[str, Any] = {"quality": quality}
    if request.style and model == "gpt-image-1":
        options["style"] = request.style
    if request.background in ("transparent", "opaque"):
        options["background"] = request.background
    if request.output_format is not None:
        if request.output_format not in _GPT_IMAGE_FORMATS:
            raise InvalidRequest(
                f"output_format must be one of {', '.join(_GPT_IMAGE_FORMATS)} for {model}",
                param="output_format",
            )
        options["output_format"] = request.output_format
    if request.output_compression is not None:
        options["output_compression"] = request.output_compression
    return options
