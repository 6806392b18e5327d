"""The emulated ``GET /models`` catalog: a realistic subset of what 1min.ai lists.

A model belongs to every feature named in its ``features``; ``/models?feature=X`` lists
those entries, and a request is served only by an ``ACTIVE`` entry listed under its
feature. Ids deliberately include ``/``, ``:`` and ``.`` as the live ones do.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

import msgspec

Status = Literal["ACTIVE", "DISABLED"]

_STAMP = "2025-01-15T10:00:00.000Z"
_CHAT_FEATURES = (
    "UNIFY_CHAT_WITH_AI",
    "CHAT_WITH_AI",
    "CHAT_WITH_PDF",
    "CHAT_WITH_YOUTUBE_VIDEO",
    "CODE_GENERATOR",
    "SUMMARIZER",
    "REWRITER",
)


class ModelEntry(msgspec.Struct, frozen=True, rename="camel"):
    """One ``/models`` entry with the keys of the live schema."""

    uuid: str
    model_id: str
    name: str
    group: str
    provider: str | None
    status: Status
    deprecation_date: str | None
    features: tuple[str, ...]
    modality: dict[str, tuple[str, ...]] | None
    credit_metadata: dict[str, Any]
    cutoff_date: str | None = None
    logo_url: str | None = None
    information: dict[str, Any] | None = None
    created_at: str = _STAMP
    created_by: str = "SYSTEM"
    updated_at: str = _STAMP
    updated_by: str = "SYSTEM"
    number_of_stars: int = 0
    credit_estimation: dict[str, Any] | None = None

    @property
    def provider_label(self) -> str:
        """The upper-case provider a chat record's ``modelDetail`` carries."""
        return (self.provider or "unknown").upper()


def _entry(
    model_id: str,
    name: str,
    group: str,
    provider: str | None,
    features: tuple[str, ...],
    credits: dict[str, Any],
    *,
    modality: dict[str, tuple[str, ...]] | None = None,
    status: Status = "ACTIVE",
    deprecation_date: str | None = None,
) -> ModelEntry:
    return ModelEntry(
        uuid=str(uuid.uuid5(uuid.NAMESPACE_URL, f"1min.ai/models/{model_id}")),
        model_id=model_id,
        name=name,
        group=group,
        provider=provider,
        status=status,
        deprecation_date=deprecation_date,
        features=features,
        modality=modality,
        credit_metadata=credits,
        logo_url=f"models/{group.split('/')[0]}.png",
    )


def _chat(
    model_id: str,
    name: str,
    group: str,
    provider: str,
    prices: tuple[float, float, int, int],
    *,
    vision: bool,
    image_feature: bool | None = None,
    status: Status = "ACTIVE",
    deprecation_date: str | None = None,
) -> ModelEntry:
    """A chat model; ``image_feature`` may lag ``vision`` as the live feature flags do."""
    with_image = vision if image_feature is None else image_feature
    features = (*_CHAT_FEATURES, "CHAT_WITH_IMAGE") if with_image else _CHAT_FEATURES
    inputs = ("text", "image") if vision else ("text",)
    price_in, price_out, context, max_out = prices
    credits = {"INPUT": price_in, "OUTPUT": price_out, "CONTEXT": context}
    credits["MAX_OUTPUT_TOKEN"] = max_out
    return _entry(
        model_id,
        name,
        group,
        provider,
        features,
        credits,
        modality={"INPUT": inputs, "OUTPUT": ("text",)},
        status=status,
        deprecation_date=deprecation_date,
    )


_CHAT = (
    _chat("gpt-4o-mini", "GPT-4o Mini - OpenAI", "openai/gpt", "openai",
          (0.15, 0.6, 128000, 16384), vision=True),
    _chat("gpt-4o", "GPT-4o - OpenAI", "openai/gpt", "openai",
          (2.5, 10, 128000, 16384), vision=True),
    _chat("gpt-5", "GPT-5 - OpenAI", "openai/gpt", "openai",
          (1.25, 10, 400000, 128000), vision=True, deprecation_date="2026-10-21T00:00:00.000Z"),
    _chat("o3-mini", "o3 Mini - OpenAI", "openai/o", "openai",
          (1.1, 4.4, 200000, 100000), vision=False, deprecation_date="2026-10-21T00:00:00.000Z"),
    _chat("claude-sonnet-4-5-20250929", "Claude Sonnet 4.5 - Anthropic", "anthropic/claude",
          "anthropic", (3, 15, 200000, 64000), vision=True),
    _chat("us.anthropic.claude-haiku-4-5-20251001-v1:0", "Claude Haiku 4.5 - Anthropic",
          "anthropic/claude", "anthropic", (1, 5, 200000, 64000), vision=True,
          image_feature=False),
    _chat("claude-3-5-sonnet-20240620", "Claude 3.5 Sonnet - Anthropic", "anthropic/claude",
          "anthropic", (3, 15, 200000, 8192), vision=True, status="DISABLED"),
    _chat("gemini-2.5-flash", "Gemini 2.5 Flash - Google", "google/gemini", "googleai",
          (0.3, 2.5, 1048576, 65536), vision=True),
    _chat("gemini-2.5-pro", "Gemini 2.5 Pro - Google", "google/gemini", "googleai",
          (1.25, 10, 1048576, 65536), vision=True),
    _chat("mistral-large-latest", "Mistral Large - Mistral AI", "mistral/mistral", "mistralai",
          (2, 6, 128000, 8192), vision=False),
    _chat("open-mistral-nemo", "Mistral Nemo - Mistral AI", "mistral/mistral", "mistralai",
          (0.15, 0.15, 128000, 8192), vision=False),
    _chat("deepseek-chat", "DeepSeek V3 - DeepSeek", "deepseek/deepseek", "deepseek",
          (0.27, 1.1, 64000, 8192), vision=False),
    _chat("grok-4", "Grok 4 - xAI", "xai/grok", "xai", (3, 15, 256000, 16384), vision=True),
    _chat("meta-llama/llama-4-maverick", "Llama 4 Maverick - Meta", "meta/llama", "replicate",
          (0.27, 0.85, 1048576, 16384), vision=True),
    _chat("command-r-plus-08-2024", "Command R+ - Cohere", "cohere/command", "cohere",
          (2.5, 10, 128000, 4096), vision=False),
    _chat("sonar", "Sonar - Perplexity", "perplexity/sonar", "perplexity",
          (1, 1, 127000, 8192), vision=False),
)  # fmt: skip

_IMAGE = ("IMAGE_GENERATOR",)
_SIZES = {"1024x1024": 40000, "1024x1792": 80000, "1792x1024": 80000}
_OTHER = (
    _entry("dall-e-3", "DALL·E 3 - OpenAI", "openai/dall-e", "openai", _IMAGE,
           {"standard": _SIZES, "hd": {k: v * 2 for k, v in _SIZES.items()}}),
    _entry("dall-e-2", "DALL·E 2 - OpenAI", "openai/dall-e", "openai",
           (*_IMAGE, "IMAGE_VARIATOR"), {"1024x1024": 16000, "512x512": 14000, "256x256": 12000}),
    _entry("gpt-image-1", "GPT Image 1 - OpenAI", "openai/gpt-image", "openai", _IMAGE,
           {"low": 11000, "medium": 42000, "high": 167000}),
    _entry("gpt-image-1-mini", "GPT Image 1 Mini - OpenAI", "openai/gpt-image", "openai",
           _IMAGE, {"low": 5000, "medium": 11000, "high": 36000}),
    _entry("black-forest-labs/flux-1.1-pro", "Flux 1.1 Pro - Black Forest Labs",
           "black-forest-labs/flux", "replicate", _IMAGE, {"ALL": 40000}),
    _entry("black-forest-labs/flux-schnell", "Flux Schnell - Black Forest Labs",
           "black-forest-labs/flux", "replicate", _IMAGE, {"ALL": 3000}, status="DISABLED"),
    _entry("midjourney", "Midjourney 5.2 (switch to Magic Art)", "midjourney/midjourney",
           "ttapi", (*_IMAGE, "IMAGE_VARIATOR"),
           {"fast": 10000, "relax": 5000, "describe": 10000}),
    _entry("whisper-1", "Whisper - OpenAI", "openai/whisper", "openai",
           ("SPEECH_TO_TEXT", "AUDIO_TRANSLATOR"), {"ALL": 100}),
    _entry("latest_long", "Google Speech Long", "google/speech", None,
           ("SPEECH_TO_TEXT",), {"ALL": 100}),
    _entry("tts-1", "TTS-1 - OpenAI", "openai/tts", "openai", ("TEXT_TO_SPEECH",), {"ALL": 15}),
    _entry("tts-1-hd", "TTS-1 HD - OpenAI", "openai/tts", "openai", ("TEXT_TO_SPEECH",),
           {"ALL": 30}),
    _entry("elevenlabs-tts", "ElevenLabs TTS", "elevenlabs/tts", "elevenlabs",
           ("TEXT_TO_SPEECH",), {"ALL": 30}),
)  # fmt: skip

CATALOG: tuple[ModelEntry, ...] = _CHAT + _OTHER


def models_for(feature: str) -> list[ModelEntry]:
    """Every entry listed under ``feature``, disabled ones included (as the live API does)."""
    return [entry for entry in CATALOG if feature in entry.features]


def usable_model(feature: str, model_id: str) -> ModelEntry | None:
    """The entry that may serve ``model_id`` for ``feature``: listed there and ``ACTIVE``."""
    for entry in CATALOG:
        if entry.model_id == model_id:
            active = entry.status == "ACTIVE"
            return entry if active and feature in entry.features else None
    return None
