"""One chat request through policy and upstream, whatever protocol it arrived in.

    handle → _prepare (policy, model, prompt, attachments) → upstream call → usage

Surfaces call ``Pipeline.chat`` for a whole result or ``Pipeline.stream`` for events; both
return core types only.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import msgspec

from onemin_relay.answers import Answer, Answerer, Plan, estimate_usage
from onemin_relay.core.errors import (
    InvalidRequest,
    ModelNotFound,
    UnsupportedModel,
)
from onemin_relay.core.prompt import FlatPrompt, flatten
from onemin_relay.core.structured import check_schema, instructions
from onemin_relay.core.tokens import count_tokens_async
from onemin_relay.core.tools import check_tools, render_tools
from onemin_relay.core.types import (
    Caller,
    ChatRequest,
    ChatResult,
    FilePart,
    Finish,
    ImagePart,
    ModelInfo,
    StreamEvent,
    TextDelta,
    ToolCallEvent,
    ToolSpec,
)
from onemin_relay.gateway import upstream_key
from onemin_relay.media import ImageFetcher, Media, decode_data_uri
from onemin_relay.settings import Settings
from onemin_relay.upstream import Asset, ChatCall, ModelCatalog, OneMinClient

ONLINE_SUFFIX = ":online"
# A 1024×1024 image at OpenAI's high detail; used where no upstream figure exists.
ATTACHMENT_TOKEN_ESTIMATE = 765


class ChatStream(msgspec.Struct):
    """An open stream: identity known up front, events to iterate (the last is a Finish)."""

    id: str
    model: str
    created: int
    events: AsyncIterator[StreamEvent]
    call: ChatCall  # what went upstream, for a local input-token estimate

    async def estimate_input_tokens(self) -> int:
        """Input tokens of the prompt actually sent, before 1min.ai reports its own count."""
        attachments = len(self.call.images) + len(self.call.files)
        return await estimate_input_tokens(self.call.prompt, self.call.model, attachments)


async def estimate_input_tokens(prompt: str, model: str, attachments: int) -> int:
    """The prompt's tokens plus an estimate per attachment (1min.ai does not say what it
    bills for an image or a file)."""
    return await count_tokens_async(prompt, model) + ATTACHMENT_TOKEN_ESTIMATE * attachments


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
        self._answers = Answerer(client, settings)
        self._asset_prefix = settings.asset_base + "/"

    async def chat(self, request: ChatRequest, caller: Caller) -> ChatResult:
        plan = await self._prepare(request, caller)
        answer = await self._answers.complete(plan)
        return ChatResult(
            id=uuid.uuid4().hex,
            model=request.model,
            text=answer.text,
            finish_reason=answer.reason,
            usage=answer.usage,
            created=int(time.time()),
            tool_calls=answer.calls,
        )

    @asynccontextmanager
    async def stream(self, request: ChatRequest, caller: Caller) -> AsyncIterator[ChatStream]:
        """Stream a reply. A reply bound to a JSON format is validated (and repaired) before
        anything is sent, then streamed whole: a client never receives JSON that fails.
        With tools, text streams as it comes and possible calls are held (``answers.py``)."""
        plan = await self._prepare(request, caller)
        stream_id, created = uuid.uuid4().hex, int(time.time())
        if plan.response_format is not None:
            answer = await self._answers.complete(plan)
            yield ChatStream(stream_id, request.model, created, _replay(answer), plan.call)
            return
        async with self._client.stream_chat(plan.call, plan.api_key) as upstream:
            events = _with_usage(upstream, plan.call)
            if plan.tools:
                events = self._answers.stream(plan, events)
            yield ChatStream(stream_id, request.model, created, events, plan.call)

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
        """Input tokens the request would cost, without uploading or calling anything."""
        upstream_key(caller, self._settings.api_key)
        name, _ = split_online_suffix(request.model)
        info = await self._model_info(name)
        flat = flatten(request.messages)
        model = info.id if info is not None else name
        return await estimate_input_tokens(flat.text, model, len(flat.images) + len(flat.files))

    # -- preparation -----------------------------------------------------------------

    async def _prepare(self, request: ChatRequest, caller: Caller) -> Plan:
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
        if fmt is not None:
            check_schema(fmt)
        tools = _offered_tools(request)
        contract = render_tools(tools, request.tool_choice, request.parallel_tool_calls)
        extras = [text for text in (contract, instructions(fmt) if fmt else "") if text]
        prompt = "\n\n".join([flat.text, *extras]) if flat.text else "\n\n".join(extras)
        images, files = await self._attach(flat, api_key)
        call = ChatCall(
            model=model,
            prompt=prompt,
            images=images,
            files=files,
            web_search=web_search or request.web_search,
        )
        return Plan(
            call=call,
            api_key=api_key,
            response_format=fmt,
            tools=tools,
            tool_choice=request.tool_choice,
            parallel_tool_calls=request.parallel_tool_calls,
            history=request.messages,
        )

    async def _model_info(self, model: str) -> ModelInfo | None:
        """The catalog entry for a chat model; None when the catalog cannot be read."""
        return await self._catalog.checked(model, "chat")

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


def _offered_tools(request: ChatRequest) -> tuple[ToolSpec, ...]:
    """The tools the model may call (checked before anything is billed): none when the
    client said ``tool_choice: none``."""
    choice = request.tool_choice
    if request.tools or choice is not None:
        check_tools(request.tools, choice)
    if choice is not None and choice.mode == "none":
        return ()
    return request.tools


async def _replay(answer: Answer) -> AsyncIterator[StreamEvent]:
    if answer.text:
        yield TextDelta(answer.text)
    for index, call in enumerate(answer.calls):
        yield ToolCallEvent(index, call)
    yield Finish(answer.reason, answer.usage)


async def _with_usage(
    events: AsyncIterator[StreamEvent], call: ChatCall
) -> AsyncIterator[StreamEvent]:
    """Pass events through; fill the Finish's usage from a local count when 1min.ai gave none."""
    pieces: list[str] = []
    async for event in events:
        if isinstance(event, TextDelta):
            pieces.append(event.text)
        elif isinstance(event, Finish) and event.usage is None:
            event = Finish(event.reason, await estimate_usage(call, "".join(pieces)))
        yield event
