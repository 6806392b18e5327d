"""Anthropic Messages through the real relay and emulator, driven by the official SDK."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request

import anthropic
import pytest

from tests.conftest import PNG_1X1, Stack

# An Anthropic id that 1min.ai lists in its Bedrock form (us.anthropic.…-v1:0).
MODEL = "claude-haiku-4-5-20251001"
UPSTREAM_ID = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
HELLO = [{"role": "user", "content": "hello"}]


def test_create_message(claude: anthropic.Anthropic, stack: Stack, api_key: str) -> None:
    message = claude.messages.create(
        model=MODEL,
        max_tokens=100,
        system="Be brief.",
        messages=[{"role": "user", "content": "What is 2+2?"}],
        stop_sequences=["END"],
        metadata={"user_id": "u1"},
        extra_body={"temperature": 0.1, "top_p": 0.9, "top_k": 5},
    )
    assert message.id.startswith("msg_")
    assert message.type == "message"
    assert message.role == "assistant"
    assert message.content[0].type == "text"
    assert message.content[0].text == "Echo: What is 2+2?"
    assert message.stop_reason == "end_turn"
    assert message.model == MODEL
    (sent,) = stack.chat_requests(api_key)
    assert sent["body"]["model"] == UPSTREAM_ID
    assert sent["body"]["promptObject"]["prompt"] == "System: Be brief.\n\nUser: What is 2+2?"


def test_system_as_text_blocks(claude: anthropic.Anthropic, stack: Stack, api_key: str) -> None:
    claude.messages.create(
        model=MODEL,
        max_tokens=10,
        system=[{"type": "text", "text": "Rule one."}, {"type": "text", "text": "Rule two."}],
        messages=HELLO,
    )
    (sent,) = stack.chat_requests(api_key)
    assert sent["body"]["promptObject"]["prompt"].startswith("System: Rule one.\nRule two.")


def test_bearer_auth_and_root_base_url(stack: Stack, api_key: str) -> None:
    with anthropic.Anthropic(base_url=stack.relay_url, auth_token=api_key, max_retries=0) as c:
        message = c.messages.create(model=MODEL, max_tokens=10, messages=HELLO)
        assert message.content[0].text == "Echo: hello"
        models = c.models.list()
    assert any(m.id == "claude-sonnet-4-5-20250929" for m in models.data)


def test_stream_event_sequence_and_final_message(
    claude: anthropic.Anthropic, stack: Stack, api_key: str
) -> None:
    with claude.messages.stream(
        model=MODEL,
        max_tokens=100,
        messages=[{"role": "user", "content": "stream me please"}],
    ) as stream:
        events = list(stream)
        final = stream.get_final_message()
    kinds = [event.type for event in events]
    assert kinds[0] == "message_start"
    assert events[0].message.usage.input_tokens > 0, "message_start carries a local estimate"
    assert kinds[1] == "content_block_start"
    assert "ping" not in kinds or kinds.index("ping") < kinds.index("content_block_delta")
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert final.content[0].text == "Echo: stream me please"
    assert final.stop_reason == "end_turn"
    metadata = stack.direct_chat(api_key, UPSTREAM_ID, "stream me please")
    assert final.usage.input_tokens == metadata["aiRecord"]["metadata"]["inputToken"]
    assert final.usage.output_tokens == metadata["aiRecord"]["metadata"]["outputToken"]


def test_stream_text_stream(claude: anthropic.Anthropic) -> None:
    with claude.messages.stream(model=MODEL, max_tokens=100, messages=HELLO) as stream:
        assert "".join(stream.text_stream) == "Echo: hello"


def test_stream_error_mid_stream_is_an_error_event(
    claude: anthropic.Anthropic, stack: Stack, api_key: str
) -> None:
    stack.set_faults(api_key, error_after_chunks=2, error_message="model fell over")
    with (
        pytest.raises(anthropic.APIStatusError) as caught,
        claude.messages.stream(
            model=MODEL,
            max_tokens=100,
            messages=[{"role": "user", "content": "one two three four"}],
        ) as stream,
    ):
        for _ in stream:
            pass
    assert "model fell over" in str(caught.value)


async def test_async_create_and_stream(async_claude: anthropic.AsyncAnthropic) -> None:
    message = await async_claude.messages.create(model=MODEL, max_tokens=10, messages=HELLO)
    assert message.content[0].text == "Echo: hello"
    async with async_claude.messages.stream(model=MODEL, max_tokens=10, messages=HELLO) as stream:
        text = "".join([piece async for piece in stream.text_stream])
    assert text == "Echo: hello"


def test_count_tokens(claude: anthropic.Anthropic) -> None:
    short = claude.messages.count_tokens(model=MODEL, messages=HELLO)
    longer = claude.messages.count_tokens(
        model=MODEL,
        system="You are a careful assistant.",
        messages=[{"role": "user", "content": "hello " * 50}],
    )
    assert 0 < short.input_tokens < longer.input_tokens


def test_count_tokens_unknown_model_is_not_found(claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError):
        claude.messages.count_tokens(model="claude-nope", messages=HELLO)


def test_image_blocks_base64_and_url(
    claude: anthropic.Anthropic, stack: Stack, api_key: str
) -> None:
    data = base64.b64encode(PNG_1X1).decode()
    message = claude.messages.create(
        model=MODEL,
        max_tokens=10,
        messages=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": data},
                    },
                    {
                        "type": "image",
                        "source": {"type": "url", "url": f"{stack.images_url}/cat.png"},
                    },
                    {"type": "text", "text": "compare"},
                ],
            }
        ],
    )
    assert message.content[0].text == "Echo: compare [images: 2]"


def test_pdf_document_block_uploaded_as_file(
    claude: anthropic.Anthropic, stack: Stack, api_key: str
) -> None:
    pdf = base64.b64encode(b"%PDF-1.4 tiny").decode()
    message = claude.messages.create(
        model=MODEL,
        max_tokens=10,
        messages=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "document",
                        "source": {"type": "base64", "media_type": "application/pdf", "data": pdf},
                    },
                    {"type": "text", "text": "summarise"},
                ],
            }
        ],
    )
    assert message.content[0].text == "Echo: summarise [files: 1]"


def test_tool_history_is_flattened(claude: anthropic.Anthropic, stack: Stack, api_key: str) -> None:
    claude.messages.create(
        model=MODEL,
        max_tokens=10,
        messages=[
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "tu_1", "name": "weather", "input": {"city": "Oslo"}}
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "tu_1", "content": "rain"},
                    {"type": "text", "text": "so?"},
                ],
            },
        ],
    )
    prompt = stack.chat_requests(api_key)[0]["body"]["promptObject"]["prompt"]
    assert '[tool call tu_1] weather({"city":"Oslo"})' in prompt
    assert "Tool result (tu_1): rain" in prompt
    assert prompt.endswith("User: so?")


def test_models_list_in_anthropic_format(claude: anthropic.Anthropic) -> None:
    page = claude.models.list()
    ids = [m.id for m in page.data]
    assert "claude-sonnet-4-5-20250929" in ids
    assert "dall-e-3" not in ids, "only chat models"
    assert page.data[0].type == "model"
    assert claude.models.retrieve("gpt-4o").display_name


# -- errors -------------------------------------------------------------------------------


def test_missing_max_tokens_is_invalid_request(claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        claude.post("/v1/messages", cast_to=object, body={"model": MODEL, "messages": HELLO})
    assert caught.value.body["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in caught.value.message


def test_unknown_model_is_not_found_error(claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        claude.messages.create(model="claude-nope", max_tokens=10, messages=HELLO)
    assert caught.value.body["error"]["type"] == "not_found_error"


def test_missing_key_is_authentication_error(stack: Stack) -> None:
    body = json.dumps({"model": MODEL, "max_tokens": 10, "messages": HELLO}).encode()
    request = urllib.request.Request(f"{stack.relay_url}/anthropic/v1/messages", data=body)
    request.add_header("anthropic-version", "2023-06-01")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)
    assert caught.value.code == 401
    payload = json.loads(caught.value.read())
    assert payload == {
        "type": "error",
        "error": {"type": "authentication_error", "message": payload["error"]["message"]},
    }


@pytest.mark.parametrize(
    ("faults", "error", "kind"),
    [
        ({"status": 401}, anthropic.AuthenticationError, "authentication_error"),
        ({"status": 403}, anthropic.PermissionDeniedError, "permission_error"),
        ({"status": 429, "retry_after": 30}, anthropic.RateLimitError, "rate_limit_error"),
        ({"status": 500}, anthropic.InternalServerError, "api_error"),
        ({"status": 503}, anthropic.InternalServerError, "overloaded_error"),
    ],
)
def test_upstream_errors_in_anthropic_envelope(
    claude: anthropic.Anthropic, stack: Stack, api_key: str, faults: dict, error: type, kind: str
) -> None:
    stack.set_faults(api_key, **faults)
    with pytest.raises(error) as caught:
        claude.messages.create(model=MODEL, max_tokens=10, messages=HELLO)
    assert caught.value.body["type"] == "error"
    assert caught.value.body["error"]["type"] == kind


def test_unknown_block_type_is_invalid_request(claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError):
        claude.messages.create(
            model=MODEL,
            max_tokens=10,
            messages=[{"role": "user", "content": [{"type": "hologram", "data": "x"}]}],
        )
