"""The emulator's credit prices and per-key credit accounts."""

from __future__ import annotations

import math
import wave
from collections.abc import Awaitable, Callable
from decimal import Decimal
from io import BytesIO
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from onemin_relay.emulator import create_app
from onemin_relay.emulator.audio import MP3_FRAME, audio_seconds
from onemin_relay.emulator.billing import table_price
from tests.emulator.test_emulator import chat_body, parse_sse
from tests.emulator.test_features import feature, upload

Client = TestClient[web.Request, web.Application]

KEY = "features-key"  # the key the shared ``feature`` helper sends
AUTH = {"API-KEY": KEY}
CHAT = "/api/chat-with-ai"
STREAM = "/api/chat-with-ai?isStreaming=true"
ACCOUNT = f"/_emulator/account/{KEY}"
OUT_OF_CREDITS = {
    "errorCode": "INSUFFICIENT_CREDITS",
    "message": "You do not have enough credits to perform this action",
}
PRICES = {
    "gpt-4o-mini": (Decimal("0.15"), Decimal("0.6")),
    "o3-mini": (Decimal("1.1"), Decimal("4.4")),
}


@pytest.fixture
async def client(aiohttp_client: Callable[..., Awaitable[Client]]) -> Client:
    return await aiohttp_client(create_app())


def expected_credits(model: str, meta: dict[str, Any]) -> tuple[int, int]:
    price_in, price_out = PRICES[model]
    return (
        math.ceil(meta["inputToken"] * price_in * 3),
        math.ceil(meta["outputToken"] * price_out * 3),
    )


def wav(seconds: int, rate: int = 1000) -> bytes:
    buffer = BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(bytes(2 * rate * seconds))
    return buffer.getvalue()


async def account(client: Client) -> Any:
    response = await client.get(ACCOUNT)
    assert response.status == 200
    return await response.json()


async def chat_credit(client: Client, model: str = "gpt-4o-mini") -> int:
    response = await client.post(CHAT, json=chat_body("hi there", model), headers=AUTH)
    assert response.status == 200, await response.text()
    return int((await response.json())["aiRecord"]["metadata"]["credit"])


# -- prices ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("model", "credits"), [("gpt-4o-mini", (5, 8)), ("o3-mini", (30, 53))])
async def test_chat_credits_follow_the_model_prices(
    client: Client, model: str, credits: tuple[int, int]
) -> None:
    response = await client.post(CHAT, json=chat_body("hi there", model), headers=AUTH)
    meta = (await response.json())["aiRecord"]["metadata"]
    assert (meta["inputToken"], meta["outputToken"]) == (9, 4)
    assert (meta["inputCredit"], meta["outputCredit"]) == expected_credits(model, meta) == credits
    assert meta["credit"] == sum(credits)


@pytest.mark.parametrize("model", ["gpt-4o-mini", "o3-mini"])
async def test_streamed_chat_credits_follow_the_model_prices(client: Client, model: str) -> None:
    prompt = "a somewhat longer question about the price of tokens " * 5
    response = await client.post(STREAM, json=chat_body(prompt, model), headers=AUTH)
    assert response.status == 200
    (record,) = [
        data["aiRecord"] for name, data in parse_sse(await response.read()) if name == "result"
    ]
    meta = record["metadata"]
    input_credit, output_credit = expected_credits(model, meta)
    assert (meta["inputCredit"], meta["outputCredit"]) == (input_credit, output_credit)
    assert meta["credit"] == input_credit + output_credit
    assert (await account(client))["used_credit"] == meta["credit"]


@pytest.mark.parametrize(
    ("model", "prompt", "credit"),
    [
        ("dall-e-3", {"quality": "hd", "size": "1024x1792", "n": 1}, 160000),
        ("dall-e-3", {}, 40000),  # standard 1024x1024, OpenAI's defaults
        ("dall-e-3", {"quality": "ultra"}, 160000),  # no matching key: the largest
        ("dall-e-2", {"size": "512x512", "n": 3}, 3 * 14000),
        ("gpt-image-1", {"quality": "high", "n": 2}, 2 * 167000),
        ("black-forest-labs/flux-1.1-pro", {}, 40000),
        ("midjourney", {}, 10000),  # four images, one charge
        ("midjourney", {"mode": "relax"}, 5000),
    ],
)
async def test_image_credits(
    client: Client, model: str, prompt: dict[str, Any], credit: int
) -> None:
    status, body = await feature(client, "IMAGE_GENERATOR", model, prompt="a fox", **prompt)
    assert status == 200, body
    assert body["aiRecord"]["metadata"] == {
        "resultModeration": {"status": "unknown"},
        "credit": credit,
    }


async def test_variation_credits(client: Client) -> None:
    path = await upload(client, "fox.png", bytes.fromhex("89504e470d0a1a0a"), "image/png")
    _, body = await feature(client, "IMAGE_VARIATOR", "dall-e-2", imageUrl=path, n=2)
    assert body["aiRecord"]["metadata"]["credit"] == 2 * 16000, "size defaults to 1024x1024"
    _, body = await feature(client, "IMAGE_VARIATOR", "midjourney", imageUrl=path)
    assert body["aiRecord"]["metadata"]["credit"] == 10000


@pytest.mark.parametrize(
    ("audio", "name", "credit"),
    [
        (wav(1), "short.wav", 100),  # at least one minute
        (wav(60), "minute.wav", 100),
        (wav(61), "longer.wav", 200),
        (MP3_FRAME * 3, "tiny.mp3", 100),
        (b"not audio at all", "mystery.ogg", 100),  # unknown length: one minute
    ],
)
async def test_transcription_credits_per_started_minute(
    client: Client, audio: bytes, name: str, credit: int
) -> None:
    path = await upload(client, name, audio, "audio/wav")
    for feature_type in ("SPEECH_TO_TEXT", "AUDIO_TRANSLATOR"):
        status, body = await feature(
            client, feature_type, "whisper-1", audioUrl=path, response_format="text"
        )
        assert status == 200, body
        assert body["aiRecord"]["metadata"] == {"credit": credit}


def test_audio_length_is_read_from_wav_and_mp3_headers() -> None:
    assert audio_seconds(wav(61)) == 61
    assert audio_seconds(MP3_FRAME * 1000) == pytest.approx(417 * 1000 * 8 / 128000)
    id3 = b"ID3\x04\x00\x00\x00\x00\x00\x05" + bytes(5)
    assert audio_seconds(id3 + MP3_FRAME) == pytest.approx(417 * 8 / 128000)
    assert audio_seconds(b"\xff\xfb\x00\x00" + bytes(100)) is None, "free bitrate: unknown"
    assert audio_seconds(b"") is None


@pytest.mark.parametrize(("text", "credit"), [("hi", 15), ("x" * 100, 15), ("x" * 250, 45)])
async def test_speech_credits_per_started_hundred_characters(
    client: Client, text: str, credit: int
) -> None:
    status, body = await feature(client, "TEXT_TO_SPEECH", "tts-1", text=text, voice="alloy")
    assert status == 200, body
    assert body["aiRecord"]["metadata"] == {"credit": credit}


def test_table_price_walks_the_levels() -> None:
    table = {"standard": {"1024x1024": 40000}, "hd": {"1024x1024": 80000, "1792x1024": 9}}
    assert table_price(table, ("hd", "1024x1024")) == 80000
    assert table_price(table, ("hd", "512x512")) == 80000, "largest of the hd level"
    assert table_price(table, ("draft",)) == 80000, "largest of the whole table"
    assert table_price({"ALL": 30}) == 30
    assert table_price({}) == 0


# -- accounts -------------------------------------------------------------------------------


async def test_account_defaults_to_unlimited_and_counts_every_call(client: Client) -> None:
    assert await account(client) == {"credit_limit": None, "used_credit": 0}
    first = await chat_credit(client)
    status, _ = await feature(client, "TEXT_TO_SPEECH", "tts-1", text="hi", voice="alloy")
    assert status == 200
    assert await account(client) == {"credit_limit": None, "used_credit": first + 15}
    other = await client.get("/_emulator/account/someone-else")
    assert await other.json() == {"credit_limit": None, "used_credit": 0}, "accounts are per key"


async def test_out_of_credits_is_a_402_before_anything_is_done(client: Client) -> None:
    response = await client.put(ACCOUNT, json={"credit_limit": 20})
    assert await response.json() == {"credit_limit": 20, "used_credit": 0}
    spent = await chat_credit(client)  # 13: still under the limit
    assert await account(client) == {"credit_limit": 20, "used_credit": spent}
    spent += await chat_credit(client, "o3-mini")  # starts with credits left: served in full
    assert await account(client) == {"credit_limit": 20, "used_credit": spent}
    assert spent > 20
    body = {"type": "TEXT_TO_SPEECH", "model": "tts-1", "promptObject": {"text": "hi"}}
    for path, payload in [(CHAT, chat_body()), (STREAM, chat_body()), ("/api/features", body)]:
        response = await client.post(path, json=payload, headers=AUTH)
        assert response.status == 402, path
        assert response.content_type == "application/json", "not an SSE stream"
        assert await response.json() == OUT_OF_CREDITS
    recorded = await (await client.get("/_emulator/requests", params={"api_key": KEY})).json()
    assert [(r["path"], r["status"]) for r in recorded[-3:]] == [
        (CHAT, 402),
        (CHAT, 402),
        ("/api/features", 402),
    ]
    assert recorded[-2]["query"] == {"isStreaming": "true"}
    assert (await account(client))["used_credit"] == spent, "refused calls cost nothing"
    conversation = {"title": "t", "type": "UNIFY_CHAT_WITH_AI", "model": "gpt-4o-mini"}
    response = await client.post("/api/conversations", json=conversation, headers=AUTH)
    assert response.status == 200, "only chat and feature calls are billed"


async def test_raising_or_clearing_the_limit_lets_calls_through(client: Client) -> None:
    await client.put(ACCOUNT, json={"credit_limit": 0})
    assert (await client.post(CHAT, json=chat_body(), headers=AUTH)).status == 402
    response = await client.put(ACCOUNT, json={"credit_limit": None})
    assert await response.json() == {"credit_limit": None, "used_credit": 0}
    spent = await chat_credit(client)
    await client.put(ACCOUNT, json={"credit_limit": spent})
    assert (await client.post(CHAT, json=chat_body(), headers=AUTH)).status == 402
    assert (await client.delete(ACCOUNT)).status == 204
    assert await account(client) == {"credit_limit": None, "used_credit": 0}
    assert await chat_credit(client) == spent


async def test_failed_records_charge_nothing(client: Client) -> None:
    await client.put(f"/_emulator/faults/{KEY}", json={"record_failed": True})
    await client.post(CHAT, json=chat_body(), headers=AUTH)
    await feature(client, "TEXT_TO_SPEECH", "tts-1", text="hi", voice="alloy")
    assert (await account(client))["used_credit"] == 0


@pytest.mark.parametrize(
    "body", [{"credit_limit": -1}, {"limit": 5}, {"credit_limit": "5"}, {"credit_limit": 1.5}]
)
async def test_bad_account_bodies_are_refused(client: Client, body: dict[str, Any]) -> None:
    response = await client.put(ACCOUNT, json=body)
    assert response.status == 400
    assert "error" in await response.json()
    assert await account(client) == {"credit_limit": None, "used_credit": 0}
