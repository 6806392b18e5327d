"""Routing through the official SDKs: pinned ids, 404 suggestions, aliases on every surface."""

from __future__ import annotations

import anthropic
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors

from tests.conftest import Stack


def upstream_models(stack: Stack, api_key: str) -> list[str]:
    return [r["body"]["model"] for r in stack.chat_requests(api_key)]


# -- provider-pinned ids and undated names ----------------------------------------------------


def test_pinned_ids_reach_that_providers_model_over_openai(
    stack: Stack, client: openai.OpenAI, api_key: str
) -> None:
    for asked in ("openai/gpt-4o-mini", "deepseek/deepseek-chat", "xai/grok-4"):
        reply = client.chat.completions.create(
            model=asked, messages=[{"role": "user", "content": "hi"}]
        )
        assert reply.choices[0].message.content == "Echo: hi"
    assert upstream_models(stack, api_key) == ["gpt-4o-mini", "deepseek-chat", "grok-4"]


def test_pinned_undated_name_over_anthropic(
    stack: Stack, claude: anthropic.Anthropic, api_key: str
) -> None:
    reply = claude.messages.create(
        model="anthropic/claude-sonnet-4-5",
        max_tokens=50,
        messages=[{"role": "user", "content": "hi"}],
    )
    assert reply.content[0].type == "text" and reply.content[0].text == "Echo: hi"
    assert upstream_models(stack, api_key) == ["claude-sonnet-4-5-20250929"]


def test_pinned_ids_in_the_gemini_url(stack: Stack, gemini: genai.Client, api_key: str) -> None:
    for asked in ("google/gemini-2.5-flash", "gemini/gemini-2.5-pro"):
        reply = gemini.models.generate_content(model=asked, contents="hi")
        assert reply.text == "Echo: hi"
    assert upstream_models(stack, api_key) == ["gemini-2.5-flash", "gemini-2.5-pro"]


def test_pinned_id_over_responses(stack: Stack, client: openai.OpenAI, api_key: str) -> None:
    reply = client.responses.create(model="mistral/open-mistral-nemo", input="hi")
    assert reply.output_text == "Echo: hi"
    assert upstream_models(stack, api_key) == ["open-mistral-nemo"]


def test_another_providers_model_is_never_chosen(
    stack: Stack, client: openai.OpenAI, claude: anthropic.Anthropic, api_key: str
) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(
            model="openai/claude-sonnet-4-5", messages=[{"role": "user", "content": "hi"}]
        )
    assert "does not exist" in caught.value.message
    with pytest.raises(anthropic.NotFoundError):
        claude.messages.create(
            model="anthropic/gpt-4o", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
        )
    assert upstream_models(stack, api_key) == [], "nothing may reach 1min.ai"


# -- 404 with the closest ids -----------------------------------------------------------------


def test_unknown_model_404_suggests_the_closest_on_every_surface(
    client: openai.OpenAI, claude: anthropic.Anthropic, gemini: genai.Client
) -> None:
    with pytest.raises(openai.NotFoundError) as openai_error:
        client.chat.completions.create(
            model="gpt-4o-mni", messages=[{"role": "user", "content": "hi"}]
        )
    assert "gpt-4o-mini" in openai_error.value.message
    body = openai_error.value.body
    assert isinstance(body, dict) and "gpt-4o-mini" in body["suggestions"], body
    with pytest.raises(anthropic.NotFoundError) as claude_error:
        claude.messages.create(
            model="claude-sonet-4-5", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
        )
    assert "claude-sonnet-4-5-20250929" in claude_error.value.message
    with pytest.raises(genai_errors.ClientError) as gemini_error:
        gemini.models.generate_content(model="gemini-2.5-flsh", contents="hi")
    assert gemini_error.value.code == 404
    assert "gemini-2.5-flash" in str(gemini_error.value.message)


# -- aliases ----------------------------------------------------------------------------------


def test_alias_over_openai_chat_names_the_model_used(
    stack: Stack, client: openai.OpenAI, api_key: str
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="onemin/balanced", messages=[{"role": "user", "content": "hi"}]
    )
    reply = raw.parse()
    route = raw.headers["x-onemin-route"]
    assert reply.model == "gpt-4o", "with no evidence the incumbent answers"
    assert "route=onemin/balanced" in route and "model=gpt-4o" in route, route
    assert "reason=incumbent" in route and "evidence=0" in route, route
    assert api_key not in route
    assert upstream_models(stack, api_key) == ["gpt-4o"]


def test_alias_over_an_openai_stream(stack: Stack, client: openai.OpenAI, api_key: str) -> None:
    with client.chat.completions.with_streaming_response.create(
        model="onemin/cost-saver", messages=[{"role": "user", "content": "hi"}], stream=True
    ) as raw:
        assert "route=onemin/cost-saver" in raw.headers["x-onemin-route"]
        chunks = list(raw.parse())
    assert {c.model for c in chunks} == {"gpt-4o"}
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Echo: hi"


def test_alias_over_anthropic(stack: Stack, claude: anthropic.Anthropic, api_key: str) -> None:
    raw = claude.messages.with_raw_response.create(
        model="onemin/auto", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
    )
    assert raw.parse().model == "gpt-4o"
    assert "route=onemin/auto" in raw.headers["x-onemin-route"]


def test_alias_in_the_gemini_url(stack: Stack, gemini: genai.Client, api_key: str) -> None:
    reply = gemini.models.generate_content(model="onemin-auto", contents="hi")
    assert reply.text == "Echo: hi" and reply.model_version == "gpt-4o"
    assert upstream_models(stack, api_key) == ["gpt-4o"]


def test_alias_over_responses(stack: Stack, client: openai.OpenAI, api_key: str) -> None:
    reply = client.responses.create(model="onemin/balanced", input="hi")
    assert reply.output_text == "Echo: hi" and reply.model == "gpt-4o"


def test_a_plain_model_carries_no_route_header(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    assert "x-onemin-route" not in raw.headers
    assert raw.parse().model == "gpt-4o-mini"
