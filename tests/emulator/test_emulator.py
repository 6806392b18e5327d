"""The 1min.ai emulator, driven over loopback HTTP like the real service would be."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from onemin_relay.emulator import EmulatorConfig, Faults, create_app
from onemin_relay.emulator.bodies import field_path
from onemin_relay.emulator.replies import GREETING, Seen, reply_text, split_pieces
from onemin_relay.emulator.stream import write_pieces

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]

KEY = "test-key"
AUTH = {"API-KEY": KEY}
CHAT = "/api/chat-with-ai"
STREAM = "/api/chat-with-ai?isStreaming=true"
PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452")


@pytest.fixture
def make_client(aiohttp_client: Any) -> MakeClient:
    async def make(config: EmulatorConfig | None = None) -> Client:
        client: Client = await aiohttp_client(create_app(config))
        return client

    return make


@pytest.fixture
async def client(make_client: MakeClient) -> Client:
    return await make_client()


def chat_body(prompt: Any = "hi there", model: str = "gpt-4o-mini", **extra: Any) -> dict:
    return {
        "type": "UNIFY_CHAT_WITH_AI",
        "model": model,
        "promptObject": {"prompt": prompt, **extra},
    }


def parse_sse(raw: bytes) -> list[tuple[str, Any]]:
    """(event, decoded data) per frame; asserts the one-``data:``-line framing."""
    events = []
    for block in raw.decode().split("\n\n"):
        if not block:
            continue
        name, data = block.split("\n")
        assert name.startswith("event: ") and data.startswith("data: "), block
        events.append((name.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    assert raw.endswith(b"\n\n"), "every frame ends with a blank line"
    return events


def contents(events: list[tuple[str, Any]]) -> list[str]:
    return [data["content"] for name, data in events if name == "content"]


async def set_faults(client: Client, key: str = KEY, **knobs: Any) -> None:
    resp = await client.put(f"/_emulator/faults/{key}", json=knobs)
    assert resp.status == 200, await resp.text()


async def recorded(client: Client, key: str = KEY) -> list[dict[str, Any]]:
    resp = await client.get("/_emulator/requests", params={"api_key": key})
    return await resp.json()


async def stream_events(client: Client, body: dict | None = None) -> list[tuple[str, Any]]:
    resp = await client.post(STREAM, json=body or chat_body(), headers=AUTH)
    assert resp.status == 200
    return parse_sse(await resp.read())


async def upload(
    client: Client, name: str, data: bytes, content_type: str, field: str = "asset"
) -> aiohttp.ClientResponse:
    form = aiohttp.FormData()
    form.add_field(field, data, filename=name, content_type=content_type)
    return await client.post("/api/assets", data=form, headers=AUTH)


async def wait_for(check: Callable[[], Awaitable[bool]], what: str) -> None:
    for _ in range(100):
        if await check():
            return
        await asyncio.sleep(0.02)
    pytest.fail(f"timed out waiting until {what}")


# -- chat-with-ai: healthy answers -------------------------------------------------------


async def test_chat_answers_with_the_ai_record_envelope(client: Client) -> None:
    resp = await client.post(
        CHAT, json=chat_body("System: be brief\n\nUser: hi there"), headers=AUTH
    )
    assert resp.status == 200
    record = (await resp.json())["aiRecord"]
    assert record["status"] == "SUCCESS"
    assert record["type"] == "UNIFY_CHAT_WITH_AI"
    assert record["model"] == "gpt-4o-mini"
    assert record["modelDetail"] == {"name": "gpt-4o-mini", "provider": "OPENAI"}
    detail = record["aiRecordDetail"]
    assert detail["resultObject"] == ["Echo: hi there"]
    assert detail["promptObject"]["linkContentList"] == []
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["createdAt"])
    meta = record["metadata"]
    assert meta["finishReason"] == "stop"
    assert meta["inputToken"] == meta["promptToken"] + 7, "server context makes input > prompt"
    assert meta["totalToken"] == meta["inputToken"] + meta["outputToken"]
    assert meta["credit"] == meta["inputCredit"] + meta["outputCredit"]
    assert isinstance(meta["executionTime"], float)


async def test_empty_prompt_gets_a_greeting(client: Client) -> None:
    resp = await client.post(CHAT, json=chat_body(""), headers=AUTH)
    assert (await resp.json())["aiRecord"]["aiRecordDetail"]["resultObject"] == [GREETING]


async def test_unknown_keys_are_ignored(client: Client) -> None:
    body = chat_body("hello", temperature=0.2) | {"tools": [], "brandVoiceId": "x", "metadata": {}}
    resp = await client.post(CHAT, json=body, headers=AUTH)
    assert resp.status == 200


@pytest.mark.parametrize(
    "model", ["us.anthropic.claude-haiku-4-5-20251001-v1:0", "meta-llama/llama-4-maverick"]
)
async def test_model_ids_with_colon_and_slash(client: Client, model: str) -> None:
    resp = await client.post(CHAT, json=chat_body("hello", model=model), headers=AUTH)
    assert (await resp.json())["aiRecord"]["model"] == model


async def test_stream_event_sequence(client: Client) -> None:
    resp = await client.post(STREAM, json=chat_body("one two three"), headers=AUTH)
    assert resp.headers["Content-Type"] == "text/event-stream"
    assert resp.headers["Cache-Control"] == "no-cache"
    raw = await resp.read()
    assert raw.startswith(b'event: content\ndata: {"content":""}\n\n'), "compact JSON"
    events = parse_sse(raw)
    assert [name for name, _ in events] == ["content"] * 5 + ["result", "done"]
    assert contents(events) == ["", "Echo: ", "one ", "two ", "three"]
    record = events[-2][1]["aiRecord"]
    assert record["aiRecordDetail"]["resultObject"] == ["Echo: one two three"]
    assert events[-1][1] == {"message": "Stream completed"}


async def test_web_search_and_attachments_show_in_the_reply(client: Client) -> None:
    image = await (await upload(client, "cat.png", PNG, "image/png")).json()
    document = await (await upload(client, "notes.txt", b"text", "text/plain")).json()
    attachments = {
        "images": [image["fileContent"]["path"], "https://example.com/a.png", "images/bogus.png"],
        "files": [document["fileContent"]["uuid"], document["fileContent"]["path"], "nope"],
    }
    settings = {"webSearchSettings": {"webSearch": True, "numOfSite": 1, "maxWord": 500}}
    body = chat_body("look", attachments=attachments, settings=settings)
    resp = await client.post(CHAT, json=body, headers=AUTH)
    reply = (await resp.json())["aiRecord"]["aiRecordDetail"]["resultObject"][0]
    assert reply == "Echo: look [images: 2] [files: 1] [web search]"


# -- chat-with-ai: errors ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("envelope", "expected"),
    [
        ("flat", {"errorCode": "UNAUTHORIZED", "message": "Invalid or missing API key"}),
        (
            "documented",
            {
                "success": False,
                "error": {"code": "UNAUTHORIZED", "message": "Invalid or missing API key"},
            },
        ),
    ],
)
@pytest.mark.parametrize("headers", [{}, {"API-KEY": "wrong"}, {"API-KEY": ""}])
async def test_missing_or_unknown_key_is_401(
    make_client: MakeClient, envelope: str, expected: dict, headers: dict[str, str]
) -> None:
    client = await make_client(EmulatorConfig(api_keys=frozenset({KEY}), error_envelope=envelope))
    resp = await client.post(CHAT, json=chat_body(), headers=headers)
    assert resp.status == 401
    assert await resp.json() == expected


async def test_envelope_knob_overrides_the_config(client: Client) -> None:
    await set_faults(client, error_envelope="documented")
    resp = await client.post(CHAT, json=chat_body(5), headers=AUTH)
    assert resp.status == 422
    assert (await resp.json())["error"]["details"] == [
        {"field": "prompt", "message": "Expected `str`, got `int` - at `$.promptObject.prompt`"}
    ]


@pytest.mark.parametrize("prompt_object", [{"prompt": 5}, {"prompt": None}, {}])
async def test_non_string_prompt_is_422(client: Client, prompt_object: dict) -> None:
    body = {"type": "UNIFY_CHAT_WITH_AI", "model": "gpt-4o-mini", "promptObject": prompt_object}
    resp = await client.post(CHAT, json=body, headers=AUTH)
    assert resp.status == 422
    error = await resp.json()
    assert error["errorCode"] == "PROMPT_OBJECT_VALIDATION_FAILED"
    details = json.loads(error["details"])
    assert details[0]["field"] == "prompt", "flat envelope carries details as a JSON string"


async def test_messages_array_instead_of_prompt_object_is_422(client: Client) -> None:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    resp = await client.post(CHAT, json=body, headers=AUTH)
    assert resp.status == 422


async def test_missing_model_or_bad_json_is_400(client: Client) -> None:
    resp = await client.post(CHAT, json={"promptObject": {"prompt": "x"}}, headers=AUTH)
    assert (resp.status, (await resp.json())["errorCode"]) == (400, "INVALID_REQUEST")
    resp = await client.post(CHAT, data=b"{nope", headers=AUTH)
    assert resp.status == 400


@pytest.mark.parametrize("model", ["no-such-model", "claude-3-5-sonnet-20240620", "dall-e-3"])
async def test_unknown_disabled_or_non_chat_model_is_400(client: Client, model: str) -> None:
    resp = await client.post(CHAT, json=chat_body(model=model), headers=AUTH)
    assert resp.status == 400
    assert await resp.json() == {
        "errorCode": "UNSUPPORTED_MODEL",
        "message": f"Model {model} is not supported",
    }


async def test_unknown_model_streaming_is_200_with_error_event(client: Client) -> None:
    events = await stream_events(client, chat_body(model="black-forest-labs/flux-schnell"))
    assert events == [("error", {"error": "Model black-forest-labs/flux-schnell is not supported"})]


# -- conversations -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [{"title": "t", "model": "gpt-4o"}, {"type": "UNIFY_CHAT_WITH_AI", "model": "gpt-4o"}, {}],
)
async def test_conversation_needs_type_title_model(client: Client, body: dict) -> None:
    resp = await client.post("/api/conversations", json=body, headers=AUTH)
    assert resp.status == 400
    assert (await resp.json())["errorCode"] == "REQUEST_BODY_VALIDATION_FAILED"


async def test_conversation_history_is_added_to_chat(client: Client) -> None:
    body = {"type": "UNIFY_CHAT_WITH_AI", "title": "Chat", "model": "gpt-4o-mini"}
    resp = await client.post("/api/conversations", json=body, headers=AUTH)
    conversation = (await resp.json())["conversation"]
    assert conversation["status"] == "ACTIVE" and conversation["title"] == "Chat"
    replies, tokens = [], []
    for prompt in ("first", "second"):
        chat = chat_body(prompt, conversationId=conversation["uuid"])
        record = (await (await client.post(CHAT, json=chat, headers=AUTH)).json())["aiRecord"]
        assert record["conversationId"] == conversation["uuid"]
        replies.append(record["aiRecordDetail"]["resultObject"][0])
        tokens.append(record["metadata"]["inputToken"] - record["metadata"]["promptToken"])
    assert replies == ["Echo: first", "Echo: second [history: 1]"]
    assert tokens[1] > tokens[0], "stored history counts as server-added input"


# -- features ----------------------------------------------------------------------------


@pytest.mark.parametrize("feature", ["CHAT_WITH_AI", "CHAT_WITH_IMAGE", "CHAT_WITH_PDF"])
async def test_legacy_chat_on_features_is_rejected(client: Client, feature: str) -> None:
    body = chat_body() | {"type": feature}
    resp = await client.post("/api/features?isStreaming=true", json=body, headers=AUTH)
    assert resp.status == 400
    error = await resp.json()
    assert error["errorCode"] == "UNSUPPORTED_FEATURE"
    assert "chat-with-ai" in error["message"]


async def test_unknown_feature_is_400(client: Client) -> None:
    resp = await client.post("/api/features", json={"type": "TELEPORTER"}, headers=AUTH)
    assert resp.status == 400
    assert (await resp.json())["errorCode"] == "UNSUPPORTED_FEATURE"


async def test_legacy_mode_streams_raw_text(make_client: MakeClient) -> None:
    client = await make_client(EmulatorConfig(legacy_features_chat=True))
    body = {"type": "CHAT_WITH_AI", "model": "gpt-4o", "promptObject": {"prompt": "old way"}}
    resp = await client.post("/api/features?isStreaming=true", json=body, headers=AUTH)
    assert resp.headers["Content-Type"].startswith("text/plain")
    assert await resp.text() == "Echo: old way"
    resp = await client.post("/api/features?isStreaming=false", json=body, headers=AUTH)
    record = (await resp.json())["aiRecord"]
    assert record["type"] == "CHAT_WITH_AI"
    assert record["aiRecordDetail"]["resultObject"] == ["Echo: old way"]


# -- models ------------------------------------------------------------------------------


async def test_models_without_feature_is_empty(client: Client) -> None:
    assert await (await client.get("/models")).json() == {"models": [], "total": 0}


async def test_chat_models_catalog(client: Client) -> None:
    listing = await (await client.get("/models", params={"feature": "UNIFY_CHAT_WITH_AI"})).json()
    models = {m["modelId"]: m for m in listing["models"]}
    assert listing["total"] == len(models) >= 12
    assert {"us.anthropic.claude-haiku-4-5-20251001-v1:0", "meta-llama/llama-4-maverick"} <= set(
        models
    )
    assert models["claude-3-5-sonnet-20240620"]["status"] == "DISABLED"
    assert models["gpt-4o"]["modality"] == {"INPUT": ["text", "image"], "OUTPUT": ["text"]}
    assert models["deepseek-chat"]["modality"]["INPUT"] == ["text"]
    keys = {"uuid", "modelId", "name", "group", "provider", "status", "deprecationDate"}
    assert keys | {"features", "modality", "creditMetadata"} <= set(models["gpt-4o"])
    assert set(models["gpt-4o"]["creditMetadata"]) >= {"INPUT", "OUTPUT", "CONTEXT"}
    assert models["gpt-4o"]["provider"] == "openai"


async def test_other_feature_catalogs(client: Client) -> None:
    async def listing(feature: str) -> dict[str, dict]:
        body = await (await client.get("/models", params={"feature": feature})).json()
        return {m["modelId"]: m for m in body["models"]}

    images = await listing("IMAGE_GENERATOR")
    assert images["black-forest-labs/flux-schnell"]["status"] == "DISABLED"
    assert images["dall-e-3"]["modality"] is None
    assert {"gpt-image-1-mini", "midjourney", "black-forest-labs/flux-1.1-pro"} <= set(images)
    speech = await listing("SPEECH_TO_TEXT")
    assert speech["latest_long"]["provider"] is None
    assert set(await listing("TEXT_TO_SPEECH")) == {"tts-1", "tts-1-hd", "elevenlabs-tts"}


# -- assets ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content_type", "folder"),
    [("photo.png", "image/png", "images"), ("a.mp3", "audio/mpeg", "audios"),
     ("doc.pdf", "application/pdf", "files")],
)  # fmt: skip
async def test_upload_and_serve_asset(
    client: Client, name: str, content_type: str, folder: str
) -> None:
    resp = await upload(client, name, PNG, content_type)
    assert resp.status == 200
    body = await resp.json()
    asset, file_content = body["asset"], body["fileContent"]
    key = asset["key"]
    assert re.fullmatch(rf"{folder}/\d{{4}}(_\d\d){{5}}_\d{{3}}_{re.escape(name)}", key), key
    assert file_content["path"] == key
    assert file_content["type"] == name.rsplit(".", 1)[1]
    assert file_content["name"] == key.split("/", 1)[1]
    assert (asset["mimetype"], asset["size"], asset["bucket"]) == (
        content_type,
        len(PNG),
        "asset.1min.ai",
    )
    assert asset["location"] == f"{client.make_url('/')}{key}"
    served = await client.get(f"/{key}")
    assert served.headers["Content-Type"] == content_type
    assert await served.read() == PNG


async def test_asset_base_url_is_configurable(make_client: MakeClient) -> None:
    client = await make_client(EmulatorConfig(asset_base_url="https://asset.example/"))
    body = await (await upload(client, "p.png", PNG, "image/png")).json()
    assert body["asset"]["location"] == f"https://asset.example/{body['asset']['key']}"


async def test_upload_without_extension_is_400(client: Client) -> None:
    resp = await upload(client, "relay-1234", PNG, "image/png")
    assert resp.status == 400
    assert (await resp.json())["message"] == "file type isn't supported"


async def test_upload_without_asset_part_is_400(client: Client) -> None:
    resp = await upload(client, "p.png", PNG, "image/png", field="file")
    assert resp.status == 400


async def test_upload_over_the_limit_is_413(make_client: MakeClient) -> None:
    client = await make_client(EmulatorConfig(max_asset_bytes=1024))
    resp = await upload(client, "big.png", b"x" * 4096, "image/png")
    assert resp.status == 413
    (entry,) = await recorded(client)
    assert entry["body"] == {"filename": "big.png", "mimetype": "image/png", "size": None}


async def test_upload_needs_a_key_and_unknown_assets_are_404(client: Client) -> None:
    resp = await client.post("/api/assets", data=aiohttp.FormData({"asset": "x"}))
    assert resp.status == 401
    assert (await client.get("/images/nothing.png")).status == 404


# -- fault knobs -------------------------------------------------------------------------


async def test_latency(client: Client) -> None:
    await set_faults(client, latency_ms=80)
    started = time.monotonic()
    assert (await client.post(CHAT, json=chat_body(), headers=AUTH)).status == 200
    assert time.monotonic() - started >= 0.08


async def test_chunk_delay(client: Client) -> None:
    await set_faults(client, chunk_delay_ms=20)
    started = time.monotonic()
    events = await stream_events(client, chat_body("a b"))
    assert time.monotonic() - started >= 0.02 * (len(events) - 1)


async def test_chunk_bytes_cuts_writes(client: Client) -> None:
    await set_faults(client, chunk_bytes=7)
    events = await stream_events(client)
    assert contents(events) == ["", "Echo: ", "hi ", "there"]
    (entry,) = await recorded(client)
    assert max(entry["writes"]) == 7 and len(entry["writes"]) > 20


async def test_split_utf8_cuts_inside_characters(client: Client) -> None:
    await set_faults(client, split_utf8=True)
    prompt = "héllo 🌍 トラベル"
    resp = await client.post(STREAM, json=chat_body(prompt), headers=AUTH)
    raw = b"".join([chunk async for chunk in resp.content.iter_any()])
    assert "".join(contents(parse_sse(raw))) == f"Echo: {prompt}"
    (entry,) = await recorded(client)
    offsets = [0, *itertools.accumulate(entry["writes"])]
    pieces = [raw[start:end] for start, end in itertools.pairwise(offsets)]
    assert b"".join(pieces) == raw

    def invalid(piece: bytes) -> bool:
        try:
            piece.decode()
        except UnicodeDecodeError:
            return True
        return False

    assert sum(map(invalid, pieces)) >= 5, "every multi-byte character was written in halves"


async def test_duplicate_final(client: Client) -> None:
    await set_faults(client, duplicate_final=True)
    deltas = contents(await stream_events(client))
    assert deltas == ["", "Echo: ", "hi ", "there", "Echo: hi there"]


async def test_crawl_lines(client: Client) -> None:
    await set_faults(client, crawl_lines=2)
    deltas = contents(await stream_events(client))
    crawl = [f"🌐 Crawling site https://example.com/page-{n}\n" for n in (1, 2)]
    assert deltas == ["", *crawl, "", "Echo: ", "hi ", "there"]
    record = (await (await client.post(CHAT, json=chat_body(), headers=AUTH)).json())["aiRecord"]
    assert record["aiRecordDetail"]["resultObject"] == ["".join(crawl) + "Echo: hi there"]


@pytest.mark.parametrize(
    ("after", "expected"), [(0, []), (2, ["", "Echo: "]), (99, ["", "Echo: ", "hi ", "there"])]
)
async def test_error_after_chunks(client: Client, after: int, expected: list[str]) -> None:
    await set_faults(client, error_after_chunks=after, error_message="boom")
    events = await stream_events(client)
    assert contents(events) == expected
    assert events[-1] == ("error", {"error": "boom"}), "no result or done after the error"


async def test_error_message_default(client: Client) -> None:
    await set_faults(client, error_after_chunks=1)
    events = await stream_events(client)
    assert events[-1] == ("error", {"error": Faults().error_message})


@pytest.mark.parametrize(
    ("knobs", "names"),
    [({"no_done": True}, ["result"]), ({"no_result": True}, ["done"]),
     ({"no_done": True, "no_result": True}, ["content"])],
)  # fmt: skip
async def test_missing_result_or_done(client: Client, knobs: dict, names: list[str]) -> None:
    await set_faults(client, **knobs)
    events = await stream_events(client)
    assert [name for name, _ in events][-1:] == names


async def test_usage_knobs(client: Client) -> None:
    async def metadata(**knobs: Any) -> Any:
        await set_faults(client, **knobs)
        resp = await client.post(CHAT, json=chat_body(), headers=AUTH)
        return (await resp.json())["aiRecord"]["metadata"]

    zero = await metadata(zero_usage=True)
    assert {zero[k] for k in ("inputToken", "outputToken", "totalToken", "promptToken")} == {0}
    assert await metadata(no_metadata=True) is None
    assert (await metadata(finish_reason="complete"))["finishReason"] == "complete"
    assert "finishReason" not in await metadata(omit_finish_reason=True)


async def test_record_failed(client: Client) -> None:
    await set_faults(client, record_failed=True)
    resp = await client.post(CHAT, json=chat_body(), headers=AUTH)
    assert resp.status == 200
    record = (await resp.json())["aiRecord"]
    assert (record["status"], record["aiRecordDetail"]["resultObject"]) == ("FAILED", [])
    events = await stream_events(client)
    assert contents(events) == [""]
    assert events[-2][1]["aiRecord"]["status"] == "FAILED"


async def test_reply_knob(client: Client) -> None:
    await set_faults(client, reply="Fixed answer — ok")
    deltas = contents(await stream_events(client))
    assert "".join(deltas) == "Fixed answer — ok"


@pytest.mark.parametrize("envelope", ["flat", "documented"])
async def test_forced_429_with_retry_after(client: Client, envelope: str) -> None:
    await set_faults(client, status=429, retry_after=2, error_envelope=envelope)
    resp = await client.post(STREAM, json=chat_body(), headers=AUTH)
    assert resp.status == 429
    assert resp.headers["Retry-After"] == "2"
    body = await resp.json()
    code = body["errorCode"] if envelope == "flat" else body["error"]["code"]
    assert code == "RATE_LIMITED"


async def test_forced_server_errors(client: Client) -> None:
    await set_faults(client, status=500)
    resp = await client.post(CHAT, json=chat_body(), headers=AUTH)
    assert (resp.status, (await resp.json())["errorCode"]) == (500, "INTERNAL_SERVER_ERROR")
    await set_faults(client, status=502, status_body_text=True)
    resp = await client.post(CHAT, json=chat_body(), headers=AUTH)
    assert resp.status == 502
    assert resp.content_type == "text/plain"
    assert await resp.text() == "502 Bad Gateway"


async def test_status_times_then_healthy(client: Client) -> None:
    await set_faults(client, status=503, status_times=2)
    statuses = [(await client.post(CHAT, json=chat_body(), headers=AUTH)).status for _ in range(3)]
    assert statuses == [503, 503, 200]
    await set_faults(client, status=503, status_times=1)
    assert (await client.post(CHAT, json=chat_body(), headers=AUTH)).status == 503, "PUT resets"


async def test_wildcard_knobs_apply_to_keys_without_their_own(client: Client) -> None:
    await set_faults(client, "*", status=503)
    await set_faults(client, "own-key", reply="mine")
    other = await client.post(CHAT, json=chat_body(), headers={"API-KEY": "other"})
    assert other.status == 503
    own = await client.post(CHAT, json=chat_body(), headers={"API-KEY": "own-key"})
    assert (await own.json())["aiRecord"]["aiRecordDetail"]["resultObject"] == ["mine"]
    assert (await client.get("/models?feature=SPEECH_TO_TEXT")).status == 200, "not on /models"


async def test_stall_hangs_until_the_client_gives_up(client: Client) -> None:
    await set_faults(client, stall_after_chunks=2)
    timeout = aiohttp.ClientTimeout(sock_read=0.2)
    received = b""
    resp = await client.post(STREAM, json=chat_body(), headers=AUTH, timeout=timeout)
    with pytest.raises(asyncio.TimeoutError):
        async for chunk in resp.content.iter_any():
            received += chunk
    resp.close()
    assert contents(parse_sse(received)) == ["", "Echo: "]

    async def disconnected() -> bool:
        (entry,) = await recorded(client)
        return bool(entry["client_disconnected"])

    await wait_for(disconnected, "the stalled stream notices the hang-up")


async def test_reset_aborts_the_connection(client: Client) -> None:
    await set_faults(client, reset_after_chunks=1)
    resp = await client.post(STREAM, json=chat_body(), headers=AUTH)
    with pytest.raises(aiohttp.ClientPayloadError):
        await resp.read()
    (entry,) = await recorded(client)
    assert (entry["completed"], entry["client_disconnected"]) == (False, False)


@pytest.mark.parametrize("knobs", [{"latency": 1}, {"status": 299}, {"chunk_bytes": -1}])
async def test_bad_knobs_are_rejected(client: Client, knobs: dict) -> None:
    resp = await client.put(f"/_emulator/faults/{KEY}", json=knobs)
    assert resp.status == 400


# -- control endpoints and recording -----------------------------------------------------


async def test_requests_are_recorded_per_key(client: Client) -> None:
    await client.post(CHAT, json=chat_body("first"), headers=AUTH)
    await client.post(STREAM, json=chat_body("second"), headers={"API-KEY": "other"})
    await client.get("/models")
    (mine,) = await recorded(client)
    assert mine["body"]["promptObject"]["prompt"] == "first"
    assert (mine["path"], mine["query"], mine["status"]) == (CHAT, {}, 200)
    assert (mine["stream"], mine["completed"], mine["client_disconnected"]) == (False, True, False)
    assert mine["finished_at"] >= mine["started_at"]
    (other,) = await recorded(client, "other")
    assert (other["query"], other["stream"], other["completed"]) == (
        {"isStreaming": "true"},
        True,
        True,
    )
    everything = await (await client.get("/_emulator/requests")).json()
    assert [entry["path"] for entry in everything] == [CHAT, CHAT, "/models"]
    assert (await client.delete("/_emulator/requests")).status == 204
    assert await (await client.get("/_emulator/requests")).json() == []


async def test_deleting_faults_restores_health(client: Client) -> None:
    await set_faults(client, status=500)
    assert (await client.delete(f"/_emulator/faults/{KEY}")).status == 204
    assert (await client.post(CHAT, json=chat_body(), headers=AUTH)).status == 200


async def test_request_log_is_bounded(make_client: MakeClient) -> None:
    client = await make_client(EmulatorConfig(max_recorded_requests=3))
    for _ in range(5):
        await client.get("/models")
    assert len(await (await client.get("/_emulator/requests")).json()) == 3


async def test_client_disconnect_mid_stream_is_recorded(client: Client) -> None:
    await set_faults(client, chunk_delay_ms=30)
    resp = await client.post(STREAM, json=chat_body("a b c d e f g h i j"), headers=AUTH)
    await resp.content.readuntil(b"\n\n")
    resp.close()

    async def disconnected() -> bool:
        (entry,) = await recorded(client)
        return bool(entry["client_disconnected"]) and not entry["completed"]

    await wait_for(disconnected, "the emulator records the hang-up")


async def test_disconnect_during_latency_is_recorded(client: Client) -> None:
    await set_faults(client, latency_ms=5000)
    with pytest.raises(asyncio.TimeoutError):
        await client.post(CHAT, json=chat_body(), headers=AUTH, timeout=aiohttp.ClientTimeout(0.1))

    async def disconnected() -> bool:
        entries = await recorded(client)
        return bool(entries) and entries[0]["client_disconnected"]

    await wait_for(disconnected, "the sleeping handler notices the hang-up")


# -- pure helpers ------------------------------------------------------------------------


def test_reply_text_rules() -> None:
    assert reply_text("System: be brief\n\nUser: hi there  \n\n", Seen()) == "Echo: hi there"
    assert reply_text(" \n ", Seen(images=1)) == f"{GREETING} [images: 1]"
    assert reply_text("x", Seen(), "override") == "override"


def test_split_pieces_rebuild_the_text() -> None:
    text = "  lead\nline two  end "
    assert "".join(split_pieces(text)) == text
    assert split_pieces("a b") == ["a ", "b"]


def test_write_pieces_cut_after_lead_bytes() -> None:
    data = "aé🌍".encode()
    assert write_pieces(data, 0, True) == [b"a\xc3", b"\xa9\xf0", b"\x9f\x8c\x8d"]
    assert write_pieces(b"abcdefg", 3, False) == [b"abc", b"def", b"g"]
    assert write_pieces(data, 0, False) == [data]


@pytest.mark.parametrize(
    ("message", "path"),
    [
        ("Expected `str`, got `int` - at `$.promptObject.prompt`", "promptObject.prompt"),
        ("Object missing required field `prompt` - at `$.promptObject`", "promptObject.prompt"),
        ("Object missing required field `model`", "model"),
        ("Expected `str`, got `int` - at `$.promptObject.images[0]`", "promptObject.images[0]"),
    ],
)
def test_field_path(message: str, path: str) -> None:
    assert field_path(message) == path


async def test_scripted_replies_advance_per_call_and_last_repeats(aiohttp_client) -> None:
    client = await aiohttp_client(create_app())
    await client.put("/_emulator/faults/k", json={"replies": ["first", "second"]})
    texts = []
    for _ in range(3):
        response = await client.post(
            "/api/chat-with-ai",
            json={"type": "UNIFY_CHAT_WITH_AI", "model": "gpt-4o", "promptObject": {"prompt": "x"}},
            headers={"API-KEY": "k"},
        )
        texts.append((await response.json())["aiRecord"]["aiRecordDetail"]["resultObject"][0])
    assert texts == ["first", "second", "second"]
