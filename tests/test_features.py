"""Per-model parameter mapping for images, transcription and speech (pure functions)."""

from __future__ import annotations

from typing import Any

import pytest

from onemin_relay.core.errors import InvalidRequest
from onemin_relay.core.media_types import (
    ImageRequest,
    SpeechRequest,
    TranscriptionRequest,
    VariationRequest,
)
from onemin_relay.feature_plans import (
    image_family,
    plan_generation,
    plan_variation,
    speech_prompt,
    transcription_prompt,
)


def generate(model: str, **fields: Any) -> ImageRequest:
    return ImageRequest(model=model, prompt="a fox", **fields)


@pytest.mark.parametrize(
    ("model", "family"),
    [
        ("dall-e-3", "dall-e-3"),
        ("dall-e-2", "dall-e-2"),
        ("gpt-image-1-mini", "gpt-image"),
        ("black-forest-labs/flux-1.1-pro", "flux"),
        ("midjourney_7_0", "midjourney"),
        ("magic-art", "midjourney"),
        ("6b645e3a-d64f-4341-a6d8-7a3690fbf042", "generic"),
    ],
)
def test_image_family(model: str, family: str) -> None:
    assert image_family(model) == family


def test_dall_e_3_makes_one_call_per_image() -> None:
    plan = plan_generation(
        "dall-e-3", generate("dall-e-3", n=3, size="1792x1024", quality="hd", style="natural")
    )
    assert plan.keep == 3
    assert (
        plan.prompt_objects
        == ({"prompt": "a fox", "size": "1792x1024", "n": 1, "quality": "hd", "style": "natural"},)
        * 3
    )


@pytest.mark.parametrize(
    ("quality", "sent"),
    [(None, "low"), ("auto", "low"), ("low", "low"), ("standard", "medium"),
     ("medium", "medium"), ("hd", "high"), ("high", "high"), ("max", "high")],
)  # fmt: skip
def test_gpt_image_always_sends_a_quality(quality: str | None, sent: str) -> None:
    (prompt,) = plan_generation("gpt-image-1-mini", generate("x", quality=quality)).prompt_objects
    assert prompt["quality"] == sent, "1min.ai answers MISSING_REQUIRED_FIELDS without one"


def test_gpt_image_options_and_n_in_one_call() -> None:
    request = generate(
        "x",
        n=4,
        size="1536x1024",
        style="vivid",
        background="transparent",
        output_format="webp",
        output_compression=50,
    )
    (prompt,) = plan_generation("gpt-image-1", request).prompt_objects
    assert prompt == {
        "prompt": "a fox",
        "size": "1536x1024",
        "n": 4,
        "quality": "low",
        "style": "vivid",
        "background": "transparent",
        "output_format": "webp",
        "output_compression": 50,
    }
    (mini,) = plan_generation("gpt-image-1-mini", request).prompt_objects
    assert "style" not in mini, "style is a gpt-image-1 field only"
    (auto,) = plan_generation("gpt-image-1", generate("x", background="auto")).prompt_objects
    assert "background" not in auto


def test_gpt_image_refuses_formats_it_cannot_write() -> None:
    with pytest.raises(InvalidRequest) as caught:
        plan_generation("gpt-image-1", generate("x", output_format="svg"))
    assert caught.value.param == "output_format"


@pytest.mark.parametrize(
    ("model", "size"),
    [("dall-e-3", "512x512"), ("dall-e-2", "1792x1024"), ("gpt-image-1", "1792x1024")],
)
def test_unlisted_sizes_are_a_400_listing_the_supported_ones(model: str, size: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        plan_generation(model, generate(model, size=size))
    assert caught.value.param == "size"
    assert "1024x1024" in caught.value.message


@pytest.mark.parametrize("size", [None, "auto"])
def test_no_size_means_a_square(size: str | None) -> None:
    (prompt,) = plan_generation("dall-e-2", generate("x", size=size)).prompt_objects
    assert prompt == {"prompt": "a fox", "size": "1024x1024", "n": 1}


@pytest.mark.parametrize(
    ("size", "ratio"),
    [(None, "1:1"), ("1024x1024", "1:1"), ("1792x1024", "16:9"), ("1024x1536", "2:3"),
     ("1536x1024", "3:2"), ("1080x1350", "4:5"), ("1000x3000", "9:16")],
)  # fmt: skip
def test_flux_maps_size_to_the_nearest_aspect_ratio(size: str | None, ratio: str) -> None:
    plan = plan_generation("black-forest-labs/flux-1.1-pro", generate("x", n=2, size=size))
    assert plan.prompt_objects == ({"prompt": "a fox", "aspect_ratio": ratio},) * 2


@pytest.mark.parametrize("size", ["big", "0x100", "1024*1024"])
def test_malformed_sizes_are_refused(size: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        plan_generation("black-forest-labs/flux-1.1-pro", generate("x", size=size))
    assert caught.value.param == "size"


@pytest.mark.parametrize(
    ("n", "calls"),
    [(1, 1), (4, 1), (5, 2), (10, 3)],
)
def test_midjourney_makes_four_per_call_and_keeps_n(n: int, calls: int) -> None:
    plan = plan_generation("midjourney", generate("x", n=n, size="1920x1080"))
    assert (len(plan.prompt_objects), plan.keep) == (calls, n)
    assert plan.prompt_objects[0] == {
        "prompt": "a fox",
        "mode": "fast",
        "n": 4,
        "aspect_width": 7,
        "aspect_height": 4,
    }, "16:9 has a term above 7; 7:4 is the nearest allowed"


def test_unknown_models_get_the_generic_body() -> None:
    plan = plan_generation("leonardo-x", generate("x", n=2, size="640x480", quality="hd"))
    assert plan.prompt_objects == ({"prompt": "a fox", "n": 2, "size": "640x480"},)


@pytest.mark.parametrize("n", [0, 11])
def test_n_is_bounded(n: int) -> None:
    with pytest.raises(InvalidRequest) as caught:
        plan_generation("dall-e-2", generate("x", n=n))
    assert caught.value.param == "n"


def test_variation_mapping() -> None:
    request = VariationRequest(model="x", image=b"", n=2, size="512x512")
    assert plan_variation("dall-e-2", request).prompt_objects == ({"n": 2, "size": "512x512"},)
    midjourney = plan_variation("midjourney", request)
    assert midjourney.keep == 2 and midjourney.prompt_objects[0]["n"] == 4
    assert plan_variation("flux-redux-dev", request).prompt_objects == ({"n": 2},)
    with pytest.raises(InvalidRequest):
        plan_variation("dall-e-2", VariationRequest(model="x", image=b"", size="1024x1792"))


def transcription(task: str = "transcribe", **fields: Any) -> TranscriptionRequest:
    return TranscriptionRequest(task=task, model="x", audio=b"", **fields)  # type: ignore[arg-type]


def test_whisper_transcription_asks_for_text() -> None:
    request = transcription(language="de", prompt="names: Zoë", temperature=0.2)
    assert transcription_prompt("whisper-1", request) == {
        "response_format": "text",
        "language": "de",
        "prompt": "names: Zoë",
        "temperature": 0.2,
    }
    assert transcription_prompt("whisper-1", transcription()) == {"response_format": "text"}


@pytest.mark.parametrize(
    ("language", "sent"),
    [(None, "en-US"), ("en", "en-US"), ("pt", "pt-BR"), ("de", "de"), ("fr-CA", "fr-CA")],
)
def test_google_models_get_only_a_bcp47_language(language: str | None, sent: str) -> None:
    request = transcription(language=language, prompt="ignored", temperature=0.5)
    assert transcription_prompt("latest_long", request) == {"language": sent}


def test_translation_has_no_language() -> None:
    request = transcription("translate", language="de", prompt="p")
    assert transcription_prompt("whisper-1", request) == {"response_format": "text", "prompt": "p"}


def speech(**fields: Any) -> SpeechRequest:
    return SpeechRequest(**{"model": "x", "text": "hi", "voice": "alloy", **fields})


def test_speech_per_backend() -> None:
    assert speech_prompt("tts-1", speech(response_format="flac", speed=1.5)) == (
        {"text": "hi", "voice": "alloy", "response_format": "flac", "speed": 1.5},
        "flac",
    )
    assert speech_prompt("elevenlabs-tts", speech(voice="abc", response_format="wav")) == (
        {"text": "hi", "voice_id": "abc", "output_format": "mp3_44100_128"},
        "mp3",
    ), "ElevenLabs always answers mp3"
    assert speech_prompt("qwen3-tts-flash", speech(voice="Dylan", speed=2.0)) == (
        {"text": "hi", "voice": "Dylan"},
        "wav",
    ), "Qwen3 always answers wav and has no speed"
