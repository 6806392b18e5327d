"""One chat request through policy and upstream, whatever protocol it arrived in.

    handle → _prepare (policy, model, prompt, attachments) → upstream call → usage

Surfaces call ``Pipeline.chat`` for a whole result or ``Pipeline.stream`` for events; both
return core types only.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import msgspec

from onemin_relay.core.errors import (
    InvalidRequest,
    ModelNotFound,
    RelayError,
    StructuredOutputFailed,
    UnsupportedModel,
)
from onemin_relay.core.prompt import FlatPrompt, flatten
from onemin_relay.core.structured import (
    StructuredOutputError,
    check_schema,
    instructions,
    parse_reply,
    repair_prompt,
)
from onemin_relay.core.tokens import count_tokens_async
from onemin_relay.core.types import (
    Caller,
    ChatRequest,
    ChatResult,
    FilePart,
    Finish,
    FinishReason,
    ImagePart,
    ModelInfo,
    ResponseFormat,
    StreamEvent,
    TextDelta,
    Usage,
)
from onemin_relay.gateway import upstream_key
from onemin_relay.media import ImageFetcher, Media, decode_data_uri
from onemin_relay.settings import Settings
from onemin_relay.upstream import Asset, ChatCall, ChatRecord, ModelCatalog, OneMinClient

log = logging.getLogger(__name__)

ONLINE_SUFFIX = ":online"
# A 1024×1024 image at OpenAI's high detail; used where no upstream figure exists.
ATTACHMENT_TOKEN_ESTIMATE = 765


class ChatStream(msgspec.Struct):
    """An open stream: identity known up front, events to iterate (the last is a Finish)."""

    id: str
    model: str
    created: int
    events: AsyncIterator[StreamEvent]


class _Prepared(msgspec.Struct, frozen=True):
    call: ChatCall
    api_key: str
    response_format: ResponseFormat | None = None


class Pipeline:
    def __init__(
        self,
        client: OneMinClient,
        catalog: ModelCatalog,
        fetcher: ImageFetcher,
        settings: Settings,
    ) -> None:
        self._client = client
        self._catalog = catalog
        self._fetcher = fetcher
        self._settings = settings
        self._asset_prefix = settings.asset_base + "/"

    async def chat(self, request: ChatRequest, caller: Caller) -> ChatResult:
        prepared = await self._prepare(request, caller)
        text, reason, usage = await self._complete(prepared)
        return ChatResult(
            id=uuid.uuid4().hex,
            model=request.model,
            text=text,
            finish_reason=reason,
            usage=usage,
            created=int(time.time()),
        )

    @asynccontextmanager
    async def stream(self, request: ChatRequest, caller: Caller) -> AsyncIterator[ChatStream]:
        """Stream a reply. A reply bound to a JSON format is validated (and repaired) before
        anything is sent, then streamed whole: a client never receives JSON that fails."""
        prepared = await self._prepare(request, caller)
        if prepared.response_format is not None:
            text, reason, usage = await self._complete(prepared)
            yield ChatStream(
                id=uuid.uuid4().hex,
                model=request.model,
                created=int(time.time()),
                events=_replay(text, reason, usage),
            )
            return
        async with self._client.stream_chat(prepared.call, prepared.api_key) as events:
            yield ChatStream(
                id=uuid.uuid4().hex,
                model=request.model,
                created=int(time.time()),
                events=_with_usage(events, prepared.call),
            )

    async def models(self) -> tuple[list[ModelInfo], int]:
        """Every usable model and when the list was fetched (epoch seconds)."""
        catalog = await self._catalog.get()
        return catalog.models, int(catalog.fetched_at)

    async def model(self, model_id: str) -> tuple[ModelInfo, int]:
        """One catalog entry by its exact id, and when the catalog was fetched."""
        catalog = await self._catalog.get()
        info = catalog.get(model_id)
        if info is None:
            raise ModelNotFound(f"the model {model_id!r} does not exist", param="model")
        return info, int(catalog.fetched_at)

    async def count_tokens(self, request: ChatRequest, caller: Caller) -> int:
        """Input tokens the request would cost: the flattened prompt, plus an estimate per
        attachment (1min.ai does not say what it bills for an image or a file)."""
        upstream_key(caller, self._settings.api_key)
        name, _ = split_online_suffix(request.model)
        info = await self._model_info(name)
        flat = flatten(request.messages)
        model = info.id if info is not None else name
        text_tokens = await count_tokens_async(flat.text, model)
        return text_tokens + ATTACHMENT_TOKEN_ESTIMATE * (len(flat.images) + len(flat.files))

    # -- calling ---------------------------------------------------------------------

    async def _complete(self, prepared: _Prepared) -> tuple[str, FinishReason, Usage]:
        record = await self._client.chat(prepared.call, prepared.api_key)
        usage = record.usage or await _estimate_usage(prepared.call, record.text)
        if prepared.response_format is None:
            return record.text, record.finish_reason, usage
        return await self._conform(prepared, prepared.response_format, record, usage)

    async def _conform(
        self, prepared: _Prepared, fmt: ResponseFormat, record: ChatRecord, usage: Usage
    ) -> tuple[str, FinishReason, Usage]:
        """Validate a JSON answer; on failure ask again, showing the model its errors.

        Every call is billed by 1min.ai, so the usage reported covers all of them.
        """
        attempts = self._settings.structured_retries + 1
        for attempt in range(1, attempts + 1):
            try:
                # in a thread: a client's schema ``pattern`` may backtrack for long
                text = await asyncio.to_thread(parse_reply, record.text, fmt)
                return text, record.finish_reason, usage
            except StructuredOutputError as exc:
                failure = exc
            if attempt == attempts:
                break
            prompt = repair_prompt(prepared.call.prompt, failure.reply, failure.errors, fmt)
            call = msgspec.structs.replace(prepared.call, prompt=prompt)
            record = await self._client.chat(call, prepared.api_key)
            usage = _add(usage, record.usage or await _estimate_usage(call, record.text))
        raise StructuredOutputFailed(
            f"the model's answer did not match the requested format after {attempts} "
            f"attempt(s): {'; '.join(failure.errors)}",
            param="response_format",
        )

    # -- preparation -----------------------------------------------------------------

    async def _prepare(self, request: ChatRequest, caller: Caller) -> _Prepared:
        api_key = upstream_key(caller, self._settings.api_key)
        name, web_search = split_online_suffix(request.model)
        flat = flatten(request.messages)
        if not flat.text.strip() and not flat.images and not flat.files:
            raise InvalidRequest("the conversation has no content", param="messages")
        info = await self._model_info(name)
        model = info.id if info is not None else name
        if flat.images and info is not None and not info.vision:
            raise UnsupportedModel(f"model {model!r} does not accept images", param="model")
        fmt = request.response_format
        if fmt is not None and fmt.kind == "text":
            fmt = None
        prompt = flat.text
        if fmt is not None:
            check_schema(fmt)
            prompt = f"{prompt}\n\n{instructions(fmt)}" if prompt else instructions(fmt)
        images, files = await self._attach(flat, api_key)
        call = ChatCall(
            model=model,
            prompt=prompt,
            images=images,
            files=files,
            web_search=web_search or request.web_search,
        )
        return _Prepared(call=call, api_key=api_key, response_format=fmt)

    async def _model_info(self, model: str) -> ModelInfo | None:
        """The catalog entry for a chat model; None when the catalog cannot be read.

        An unreachable catalog must not take chat down: the upstream still rejects an
        unknown model, and that answer is mapped to the same 404.
        """
        try:
            catalog = await self._catalog.get()
        except RelayError as exc:
            log.warning("model catalog unavailable, not validating %r: %s", model, exc)
            return None
        info = catalog.resolve(model)
        if info is None:
            raise ModelNotFound(f"the model {model!r} does not exist", param="model")
        if info.kind != "chat":
            raise UnsupportedModel(
                f"{model!r} is a {info.kind.replace('_', '-')} model, not a chat model",
                param="model",
            )
        return info

    async def _attach(
        self, flat: FlatPrompt, api_key: str
    ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        limit = self._settings.max_images_per_request
        if len(flat.images) > limit:
            raise InvalidRequest(f"at most {limit} images per request", param="messages")
        images = await asyncio.gather(*(self._image_path(p, api_key) for p in flat.images))
        files = await asyncio.gather(*(self._file_uuid(p, api_key) for p in flat.files))
        return tuple(images), tuple(files)

    async def _image_path(self, part: ImagePart, api_key: str) -> str:
        url = part.url
        if url.startswith(self._asset_prefix):
            return url[len(self._asset_prefix) :]
        if url.startswith("data:"):
            media = decode_data_uri(url, self._settings.image_fetch_max_bytes)
            if not media.media_type.startswith("image/"):
                raise InvalidRequest("an image_url data: URI must hold an image", param="image_url")
        elif url.startswith(("https://", "http://")):
            media = await self._fetcher.fetch(url)
        else:
            raise InvalidRequest("image URLs must be https: or data: URIs", param="image_url")
        return (await self._upload(media, api_key)).path

    async def _file_uuid(self, part: FilePart, api_key: str) -> str:
        asset = await self._upload(Media(part.data, part.media_type), api_key, part.filename)
        if asset.uuid is None:
            raise InvalidRequest("1min.ai did not return an id for the uploaded file")
        return asset.uuid

    async def _upload(self, media: Media, api_key: str, filename: str | None = None) -> Asset:
        return await self._client.upload_asset(media.data, media.media_type, api_key, filename)


def split_online_suffix(model: str) -> tuple[str, bool]:
    """``gpt-4o:online`` → (``gpt-4o``, web search on). Other ``:`` suffixes are model ids."""
    if model.endswith(ONLINE_SUFFIX):
        return model[: -len(ONLINE_SUFFIX)], True
    return model, False


async def _estimate_usage(call: ChatCall, reply: str) -> Usage:
    prompt_tokens = await count_tokens_async(call.prompt, call.model)
    reply_tokens = await count_tokens_async(reply, call.model)
    return Usage(prompt_tokens, reply_tokens, estimated=True)


def _add(first: Usage, second: Usage) -> Usage:
    return Usage(
        first.input_tokens + second.input_tokens,
        first.output_tokens + second.output_tokens,
        estimated=first.estimated or second.estimated,
    )


async def _replay(text: str, reason: FinishReason, usage: Usage) -> AsyncIterator[StreamEvent]:
    yield TextDelta(text)
    yield Finish(reason, usage)


async def _with_usage(
    events: AsyncIterator[StreamEvent], call: ChatCall
) -> AsyncIterator[StreamEvent]:
    """Pass events through; fill the Finish's usage from a local count when 1min.ai gave none."""
    pieces: list[str] = []
    async for event in events:
        if isinstance(event, TextDelta):
            pieces.append(event.text)
        elif isinstance(event, Finish) and event.usage is None:
            event = Finish(event.reason, await _estimate_usage(call, "".join(pieces)))
        yield event
