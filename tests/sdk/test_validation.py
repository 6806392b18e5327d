"""Requests the official APIs refuse are refused here too, before anything reaches 1min.ai."""

from __future__ import annotations

import base64

import anthropic
import openai
import pytest
from google import genai
from google.genai import errors
from google.genai import types as gt

from tests.conftest import PNG_1X1, Stack

HTML = b"<!doctype html><html><body>not an image</body></html>"
HTML_AS_PNG = "data:image/png;base64," + base64.b64encode(HTML).decode()
CLAUDE = "claude-haiku-4-5-20251001"

# -- output token limits -------------------------------------------------------------------


@pytest.mark.parametrize("param", ["max_tokens", "max_completion_tokens"])
def test_openai_absurd_output_token_limit_is_400(
    client: openai.OpenAI, stack: Stack, api_key: str, param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "hi"}],
            **{param: 2_000_000},  # type: ignore[arg-type]
        )
    assert caught.value.body["param"] == param
    assert "1000000" in caught.value.body["message"]
    assert stack.upstream_requests(api_key) == []


def test_openai_large_but_sane_output_token_limit_is_accepted(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}], max_tokens=1_000_000
    )
    assert completion.choices[0].message.content


def test_anthropic_absurd_max_tokens_is_400(
    claude: anthropic.Anthropic, stack: Stack, api_key: str
) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        claude.messages.create(
            model=CLAUDE,
            max_tokens=5_000_000,
            messages=[{"role": "user", "content": "hi"}],
            timeout=30,  # an explicit timeout: the SDK would otherwise insist on streaming
        )
    assert caught.value.status_code == 400
    assert caught.value.body["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in caught.value.body["error"]["message"]
    assert stack.upstream_requests(api_key) == []


# -- Gemini generation config and roles ----------------------------------------------------


@pytest.mark.parametrize(
    ("config", "named"),
    [
        (gt.GenerateContentConfig(max_output_tokens=0), "maxOutputTokens"),
        (gt.GenerateContentConfig(max_output_tokens=-5), "maxOutputTokens"),
        (gt.GenerateContentConfig(candidate_count=2), "one candidate"),
    ],
)
def test_gemini_bad_generation_config_is_400(
    gemini: genai.Client, stack: Stack, api_key: str, config: gt.GenerateContentConfig, named: str
) -> None:
    with pytest.raises(errors.ClientError) as caught:
        gemini.models.generate_content(model="gemini-2.5-flash", contents="hi", config=config)
    assert caught.value.code == 400
    assert caught.value.status == "INVALID_ARGUMENT"
    assert named in caught.value.message
    assert stack.upstream_requests(api_key) == []


def test_gemini_one_candidate_is_accepted(gemini: genai.Client) -> None:
    response = gemini.models.generate_content(
        model="gemini-2.5-flash",
        contents="hi",
        config=gt.GenerateContentConfig(candidate_count=1, max_output_tokens=10),
    )
    assert response.text


@pytest.mark.parametrize("role", ["system", "assistant", "bot"])
def test_gemini_unknown_role_is_400(
    gemini: genai.Client, stack: Stack, api_key: str, role: str
) -> None:
    with pytest.raises(errors.ClientError) as caught:
        gemini.models.generate_content(
            model="gemini-2.5-flash",
            contents=[gt.Content(role=role, parts=[gt.Part(text="hi")])],
        )
    assert caught.value.code == 400
    assert caught.value.status == "INVALID_ARGUMENT"
    assert "role" in caught.value.message
    assert stack.upstream_requests(api_key) == []


# -- images whose bytes are not images -----------------------------------------------------


def test_openai_data_uri_holding_html_is_400(
    client: openai.OpenAI, stack: Stack, api_key: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="gpt-4o",
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "what is this?"},
                        {"type": "image_url", "image_url": {"url": HTML_AS_PNG}},
                    ],
                }
            ],
        )
    assert caught.value.body["param"] == "messages[0].content"
    assert "image/png" in caught.value.body["message"]
    assert stack.upstream_requests(api_key) == []


def test_anthropic_base64_image_holding_html_is_400(
    claude: anthropic.Anthropic, stack: Stack, api_key: str
) -> None:
    source = {"type": "base64", "media_type": "image/png", "data": base64.b64encode(HTML).decode()}
    with pytest.raises(anthropic.BadRequestError) as caught:
        claude.messages.create(
            model=CLAUDE,
            max_tokens=100,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "image", "source": source},  # type: ignore[typeddict-item]
                        {"type": "text", "text": "what is this?"},
                    ],
                }
            ],
        )
    assert caught.value.body["error"]["type"] == "invalid_request_error"
    assert "image" in caught.value.body["error"]["message"]
    assert stack.upstream_requests(api_key) == []


def test_gemini_inline_data_holding_html_is_400(
    gemini: genai.Client, stack: Stack, api_key: str
) -> None:
    with pytest.raises(errors.ClientError) as caught:
        gemini.models.generate_content(
            model="gemini-2.5-flash",
            contents=[gt.Part.from_bytes(data=HTML, mime_type="image/png"), "what is this?"],
        )
    assert caught.value.code == 400
    assert "image/png" in caught.value.message
    assert stack.upstream_requests(api_key) == []


def test_data_uri_with_a_wrong_image_label_is_still_accepted(client: openai.OpenAI) -> None:
    """A real image under another image type's label is an image: only non-images are refused."""
    uri = "data:image/jpeg;base64," + base64.b64encode(PNG_1X1).decode()
    completion = client.chat.completions.create(
        model="gpt-4o",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": uri}},
                ],
            }
        ],
    )
    assert completion.choices[0].message.content


# -- audio that is not audio ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data"), [("speech.wav", b""), ("speech.mp3", HTML), ("speech.wav", b"RIFF....")]
)
def test_empty_or_non_audio_file_is_400_before_upload(
    client: openai.OpenAI, stack: Stack, api_key: str, name: str, data: bytes
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.audio.transcriptions.create(file=(name, data, "audio/mpeg"), model="whisper-1")
    assert caught.value.body["param"] == "file"
    assert stack.upstream_requests(api_key) == []


def test_responses_input_image_holding_html_is_400(
    client: openai.OpenAI, stack: Stack, api_key: str
) -> None:
    content = [
        {"type": "input_text", "text": "what is this?"},
        {"type": "input_image", "image_url": HTML_AS_PNG},
    ]
    with pytest.raises(openai.BadRequestError) as raised:
        client.responses.create(model="gpt-4o-mini", input=[{"role": "user", "content": content}])
    assert "PNG, JPEG, WebP or GIF" in str(raised.value.message)
    assert stack.upstream_requests(api_key) == []
