"""Images and audio through policy and upstream: the non-chat half of the pipeline.

    request → upstream key (policy) → model (catalog: known, right kind) → promptObject(s)
            → ``POST /api/features`` call(s) → core result

What each model is sent (sizes, qualities, how many calls) is planned in
:mod:`onemin_relay.feature_plans`, a pure module.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from onemin_relay.core.errors import (
    InvalidRequest,
    RelayError,
)
from onemin_relay.core.media_types import (
    AUDIO_MEDIA_TYPES,
    GeneratedImage,
    ImageRequest,
    ImageResponseFormat,
    ImageResult,
    SpeechAudio,
    SpeechRequest,
    Transcript,
    TranscriptionRequest,
    VariationRequest,
    audio_duration,
    sniff_audio,
    sniff_image,
)
from onemin_relay.core.types import Caller, ModelInfo, ModelKind
from onemin_relay.feature_plans import (
    ImageCalls,
    image_family,
    plan_generation,
    plan_variation,
    speech_prompt,
    transcription_prompt,
)
from onemin_relay.gateway import pricing
from onemin_relay.gateway.grants import Grant
from onemin_relay.gateway.policy import Gateway
from onemin_relay.settings import Settings
from onemin_relay.upstream import ModelCatalog
from onemin_relay.upstream.features import FeatureClient, transcript_text

T = TypeVar("T")
MAX_IMAGE_DOWNLOAD_BYTES = 32 * 1024 * 1024


# -- the pipeline ------------------------------------------------------------------------


class Features:
    """Image generation and variation, transcription and translation, speech."""

    def __init__(
        self, client: FeatureClient, catalog: ModelCatalog, settings: Settings, gateway: Gateway
    ) -> None:
        self._client = client
        self._catalog = catalog
        self._settings = settings
        self._gateway = gateway

    async def generate_images(self, request: ImageRequest, caller: Caller) -> ImageResult:
        info, model = await self._model(request.model, "image", caller)
        calls = plan_generation(model, request)
        fmt = request.response_format or _default_format(model)
        price = _image_price(info, model, calls)
        async with self._gateway.flat_call(caller, request.model, model, price) as grant:
            return await self._images("IMAGE_GENERATOR", model, calls, grant, fmt)

    async def vary_image(self, request: VariationRequest, caller: Caller) -> ImageResult:
        info, model = await self._model(request.model, "image", caller)
        media_type = sniff_image(request.image)
        if media_type is None:
            raise InvalidRequest("the image must be a PNG, JPEG, WebP or GIF file", param="image")
        calls = plan_variation(model, request)
        fmt = request.response_format or _default_format(model)
        price = _image_price(info, model, calls)
        async with self._gateway.flat_call(caller, request.model, model, price) as grant:
            api_key = grant.api_key
            asset = await self._client.upload(request.image, media_type, api_key, request.filename)
            with_image = tuple({"imageUrl": asset.path, **p} for p in calls.prompt_objects)
            calls = ImageCalls(with_image, calls.keep)
            return await self._images("IMAGE_VARIATOR", model, calls, grant, fmt)

    async def transcribe(self, request: TranscriptionRequest, caller: Caller) -> Transcript:
        """Store the audio as an asset, then transcribe or translate it; both only once the
        request is known to be valid, so nothing is written upstream for a bad one."""
        info, model = await self._model(request.model, "speech_to_text", caller)
        extension = _audio_extension(request)
        prompt_object = transcription_prompt(model, request)
        filename = request.filename if _extension_of(request.filename) == extension else None
        duration = audio_duration(request.audio)
        # unreadable length: assume low-bitrate speech (16 kbit/s), so a long file is not
        # held as a minute
        billed = duration if duration is not None else len(request.audio) / 2000
        price = _priced(info, pricing.transcription_credits, billed)
        async with self._gateway.flat_call(caller, request.model, model, price) as grant:
            asset = await self._client.upload(
                request.audio, AUDIO_MEDIA_TYPES[extension], grant.api_key, filename
            )
            feature = "SPEECH_TO_TEXT" if request.task == "transcribe" else "AUDIO_TRANSLATOR"
            record = await self._client.run(
                feature, model, {"audioUrl": asset.path, **prompt_object}, grant.api_key
            )
            grant.upstream_answered(record.credit)
        return Transcript(
            task=request.task,
            text=transcript_text(record),
            language="english" if request.task == "translate" else request.language,
            duration=duration,
        )

    @asynccontextmanager
    async def speech(self, request: SpeechRequest, caller: Caller) -> AsyncIterator[SpeechAudio]:
        """Synthesise speech and open its download; iterate the chunks inside the block."""
        info, model = await self._model(request.model, "text_to_speech", caller)
        prompt_object, fmt = speech_prompt(model, request)
        price = _priced(info, pricing.speech_credits, len(request.text))
        async with self._gateway.flat_call(caller, request.model, model, price) as grant:
            record = await self._client.run("TEXT_TO_SPEECH", model, prompt_object, grant.api_key)
            grant.upstream_answered(record.credit)
            url = record.temporary_url or self._client.asset_url(record.results[0])
            async with self._client.open_download(url) as download:
                yield SpeechAudio(format=fmt, size=download.size, chunks=download.chunks)

    async def _model(
        self, name: str, kind: ModelKind, caller: Caller
    ) -> tuple[ModelInfo | None, str]:
        """The catalog entry and id for ``name``, which must be a ``kind`` model (see
        ``checked``); the caller is identified first, so a bad key is a 401 before all."""
        await self._gateway.identify(caller)
        info = await self._catalog.checked(name, kind)
        return info, info.id if info is not None else name

    async def _images(
        self,
        feature: str,
        model: str,
        calls: ImageCalls,
        grant: Grant,
        fmt: ImageResponseFormat,
    ) -> ImageResult:
        records = await _all(
            self._client.run(feature, model, p, grant.api_key) for p in calls.prompt_objects
        )
        for record in records:
            grant.upstream_answered(record.credit)
        urls = [self._client.asset_url(ref) for r in records for ref in r.results][: calls.keep]
        if fmt == "url":
            images = tuple(GeneratedImage(url=url) for url in urls)
        else:
            downloads = await _all(
                self._client.download(url, MAX_IMAGE_DOWNLOAD_BYTES) for url in urls
            )
            images = tuple(
                GeneratedImage(b64_json=base64.b64encode(data).decode()) for data in downloads
            )
        return ImageResult(created=int(time.time()), images=images)


def _priced(info: ModelInfo | None, rule: Callable[..., int], *args: Any) -> int | None:
    """Credits by the price rule; None when the catalog has no price (a managed key is
    then refused: it cannot be billed; other callers pay 1min.ai directly)."""
    if info is None or not info.credit_metadata:
        return None
    return rule(info, *args)


def _image_price(info: ModelInfo | None, model: str, calls: ImageCalls) -> int | None:
    """The price of every call the request makes, read from what each call will send."""
    if info is None or not info.credit_metadata:
        return None
    batch = image_family(model) == "midjourney"  # four images, one charge
    return sum(
        pricing.image_call_credits(info, prompt, 1 if batch else int(prompt.get("n", 1)))
        for prompt in calls.prompt_objects
    )


def _default_format(model: str) -> ImageResponseFormat:
    return "b64_json" if image_family(model) == "gpt-image" else "url"


def _extension_of(filename: str | None) -> str | None:
    stem, dot, extension = (filename or "").rpartition(".")
    return extension.lower() if dot and stem else None


def _audio_extension(request: TranscriptionRequest) -> str:
    """The audio's format from its bytes, else from a known file extension."""
    extension = sniff_audio(request.audio) or _extension_of(request.filename)
    if extension is None or extension not in AUDIO_MEDIA_TYPES:
        raise InvalidRequest(
            "unsupported audio format; send flac, m4a, mp3, mp4, mpeg, mpga, oga, ogg, wav or webm",
            param="file",
        )
    return extension


async def _all(calls: Iterable[Coroutine[Any, Any, T]]) -> list[T]:
    """Run the calls concurrently; the first failure cancels the others and is raised."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(call) for call in calls]
    except* RelayError as failures:
        raise failures.exceptions[0] from None
    return [task.result() for task in tasks]
