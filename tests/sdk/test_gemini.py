"""The Gemini API through the real relay and emulator, driven by the official google-genai SDK."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from google import genai
from google.genai import errors
from google.genai import types as gt

from tests.conftest import PNG_1X1, Stack


def test_generate_content(gemini: genai.Client, stack: Stack, api_key: str) -> None:
    response = gemini.models.generate_content(
        model="gemini-2.5-flash",
        contents="Tell me a joke",
        config=gt.GenerateContentConfig(
            system_instruction="You are funny.",
            temperature=0.3,
            max_output_tokens=100,
            safety_settings=[
                gt.SafetySetting(
                    category=gt.HarmCategory.HARM_CATEGORY_HARASSMENT,
                    threshold=gt.HarmBlockThreshold.BLOCK_NONE,
                )
            ],
        ),
    )
    assert response.text == "Echo: Tell me a joke"
    assert response.candidates[0].finish_reason == gt.FinishReason.STOP
    usage = response.usage_metadata
    assert usage.prompt_token_count and usage.candidates_token_count
    assert usage.total_token_count == usage.prompt_token_count + usage.candidates_token_count
    (sent,) = stack.chat_requests(api_key)
    assert sent["body"]["model"] == "gemini-2.5-flash"
    assert (
        sent["body"]["promptObject"]["prompt"] == "System: You are funny.\n\nUser: Tell me a joke"
    )


def test_multi_turn_roles(gemini: genai.Client, stack: Stack, api_key: str) -> None:
    gemini.models.generate_content(
        model="models/gemini-2.5-flash",
        contents=[
            gt.Content(role="user", parts=[gt.Part(text="Hi")]),
            gt.Content(role="model", parts=[gt.Part(text="Hello!")]),
            gt.Content(role="user", parts=[gt.Part(text="Bye")]),
        ],
    )
    (sent,) = stack.chat_requests(api_key)
    assert sent["body"]["promptObject"]["prompt"] == "User: Hi\n\nAssistant: Hello!\n\nUser: Bye"


def test_stream_sse(gemini: genai.Client, stack: Stack, api_key: str) -> None:
    chunks = list(
        gemini.models.generate_content_stream(model="gemini-2.5-flash", contents="stream it now")
    )
    assert "".join(c.text or "" for c in chunks) == "Echo: stream it now"
    assert len(chunks) > 2
    assert chunks[-1].candidates[0].finish_reason == gt.FinishReason.STOP
    assert chunks[-1].usage_metadata.candidates_token_count
    assert stack.chat_requests(api_key)[0]["query"] == {"isStreaming": "true"}


async def test_async_generate_and_stream(gemini: genai.Client) -> None:
    async with gemini.aio as client:
        response = await client.models.generate_content(model="gemini-2.5-flash", contents="hey")
        assert response.text == "Echo: hey"
        stream = await client.models.generate_content_stream(
            model="gemini-2.5-flash", contents="hey you"
        )
        text = "".join([c.text or "" async for c in stream])
    assert text == "Echo: hey you"


def test_stream_error_mid_stream_raises(gemini: genai.Client, stack: Stack, api_key: str) -> None:
    stack.set_faults(api_key, error_after_chunks=2, error_message="gemini broke")
    with pytest.raises(errors.APIError) as caught:
        for _ in gemini.models.generate_content_stream(
            model="gemini-2.5-flash", contents="one two three four"
        ):
            pass
    assert "gemini broke" in str(caught.value)


def test_json_array_stream_without_alt_sse(stack: Stack, api_key: str) -> None:
    path = "gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    url = f"{stack.relay_url}/{path}?key={api_key}"
    body = json.dumps({"contents": [{"role": "user", "parts": [{"text": "array me"}]}]}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.headers["Content-Type"].startswith("application/json")
        chunks = json.loads(response.read())
    text = "".join(c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks)
    assert text == "Echo: array me"
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"


def test_image_inline_data(gemini: genai.Client) -> None:
    response = gemini.models.generate_content(
        model="gemini-2.5-flash",
        contents=[gt.Part.from_bytes(data=PNG_1X1, mime_type="image/png"), "what is this?"],
    )
    assert response.text == "Echo: what is this? [images: 1]"


def test_count_tokens(gemini: genai.Client) -> None:
    short = gemini.models.count_tokens(model="gemini-2.5-flash", contents="hello")
    longer = gemini.models.count_tokens(model="gemini-2.5-flash", contents="hello " * 40)
    assert 0 < short.total_tokens < longer.total_tokens


def test_models_list_and_get(gemini: genai.Client) -> None:
    names = [m.name for m in gemini.models.list()]
    assert "models/gemini-2.5-flash" in names
    assert "models/dall-e-3" not in names, "only chat models"
    model = gemini.models.get(model="gemini-2.5-flash")
    assert model.name == "models/gemini-2.5-flash"
    assert model.input_token_limit


def test_v1_paths_are_served(stack: Stack, api_key: str) -> None:
    options = gt.HttpOptions(base_url=f"{stack.relay_url}/gemini", api_version="v1")
    with genai.Client(api_key=api_key, http_options=options) as client:
        response = client.models.generate_content(model="gemini-2.5-flash", contents="v1 please")
    assert response.text == "Echo: v1 please"


def test_unknown_model_is_not_found(gemini: genai.Client) -> None:
    with pytest.raises(errors.ClientError) as caught:
        gemini.models.generate_content(model="gemini-0.1-nope", contents="x")
    assert caught.value.code == 404
    assert caught.value.status == "NOT_FOUND"


def test_missing_key_is_unauthenticated(stack: Stack) -> None:
    body = {"contents": [{"parts": [{"text": "x"}]}]}
    status, answer = post_gemini(stack, "models/gemini-2.5-flash:generateContent", body)
    assert status == 401
    assert answer["error"]["status"] == "UNAUTHENTICATED"


def test_rejected_key_is_unauthenticated(gemini: genai.Client, stack: Stack, api_key: str) -> None:
    stack.set_faults(api_key, status=401)
    with pytest.raises(errors.ClientError) as caught:
        gemini.models.generate_content(model="gemini-2.5-flash", contents="x")
    assert caught.value.status == "UNAUTHENTICATED"
    assert api_key not in str(caught.value)


def test_rate_limit_is_resource_exhausted(gemini: genai.Client, stack: Stack, api_key: str) -> None:
    stack.set_faults(api_key, status=429, retry_after=30)
    with pytest.raises(errors.ClientError) as caught:
        gemini.models.generate_content(model="gemini-2.5-flash", contents="x")
    assert caught.value.code == 429
    assert caught.value.status == "RESOURCE_EXHAUSTED"


def post_gemini(stack: Stack, path: str, body: object, api_key: str = "") -> tuple[int, dict]:
    url = f"{stack.relay_url}/gemini/v1beta/{path}" + (f"?key={api_key}" if api_key else "")
    data = json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_empty_contents_is_invalid_argument(stack: Stack, api_key: str) -> None:
    status, body = post_gemini(
        stack, "models/gemini-2.5-flash:generateContent", {"contents": []}, api_key
    )
    assert status == 400
    assert body["error"]["status"] == "INVALID_ARGUMENT"


def test_snake_and_camel_case_fields_both_accepted(stack: Stack, api_key: str) -> None:
    body = {
        "system_instruction": {"parts": [{"text": "Be kind."}]},
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "generationConfig": {"maxOutputTokens": 5},
    }
    status, answer = post_gemini(stack, "models/gemini-2.5-flash:generateContent", body, api_key)
    assert status == 200, answer
    (sent,) = stack.chat_requests(api_key)
    assert sent["body"]["promptObject"]["prompt"] == "System: Be kind.\n\nUser: hi"
