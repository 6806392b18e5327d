"""OpenAI chat completions through the real relay and emulator, driven by the official SDK."""

from __future__ import annotations

import openai
import pytest
import tiktoken

from tests.conftest import Stack


def o200k(text: str) -> int:
    return len(tiktoken.get_encoding("o200k_base").encode_ordinary(text))


# -- non-streaming -----------------------------------------------------------------------


def test_single_user_message_reaches_upstream_verbatim(
    client: openai.OpenAI, stack: Stack, api_key: str
) -> None:
    completion = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi there"}]
    )
    assert completion.choices[0].message.content == "Echo: hi there"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.id.startswith("chatcmpl-")
    assert completion.model == "gpt-4o-mini"
    (sent,) = stack.chat_requests(api_key)
    assert sent["api_key"] == api_key, "the client's key must be forwarded as API-KEY"
    assert sent["body"]["type"] == "UNIFY_CHAT_WITH_AI"
    assert sent["body"]["promptObject"]["prompt"] == "hi there", "no wrapper text for one message"


def test_usage_comes_from_upstream_metadata(
    client: openai.OpenAI, stack: Stack, api_key: str
) -> None:
    completion = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "count me please"}]
    )
    metadata = stack.direct_chat(api_key, "gpt-4o-mini", "count me please")["aiRecord"]["metadata"]
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == metadata["inputToken"]
    assert completion.usage.completion_tokens == metadata["outputToken"]
    assert completion.usage.total_tokens == metadata["inputToken"] + metadata["outputToken"]


def test_usage_counted_locally_when_upstream_reports_zero(
    client: openai.OpenAI, stack: Stack, api_key: str
) -> None:
    stack.set_faults(api_key, zero_usage=True)
    completion = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi there"}]
    )
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == o200k("hi there")
    assert completion.usage.completion_tokens == o200k("Echo: hi there")


def test_history_and_system_prompt_flattened(
    client: openai.OpenAI, stack: Stack, api_key: str
) -> None:
    completion = client.chat.completions.create(
        model="claude-sonnet-4-5-20250929",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is 2+2?"},
            {"role": "assistant", "content": "4"},
            {"role": "user", "content": "And 3+3?"},
        ],
        temperature=0.2,
        top_p=0.9,
        max_tokens=50,
        stop=["\n\n"],
        seed=7,
    )
    assert completion.choices[0].message.content == "Echo: And 3+3?"
    (sent,) = stack.chat_requests(api_key)
    assert sent["body"]["promptObject"]["prompt"] == (
        "System: Be brief.\n\nUser: What is 2+2?\n\nAssistant: 4\n\nUser: And 3+3?"
    )


def test_finish_reason_mapped_from_provider_wording(
    client: openai.OpenAI, stack: Stack, api_key: str
) -> None:
    stack.set_faults(api_key, finish_reason="MAX_TOKENS")
    completion = client.chat.completions.create(
        model="gemini-2.5-flash", messages=[{"role": "user", "content": "long story"}]
    )
    assert completion.choices[0].finish_reason == "length"


def test_online_suffix_turns_on_web_search(
    client: openai.OpenAI, stack: Stack, api_key: str
) -> None:
    completion = client.chat.completions.create(
        model="gpt-4o:online", messages=[{"role": "user", "content": "news today"}]
    )
    assert completion.choices[0].message.content == "Echo: news today [web search]"
    (sent,) = stack.chat_requests(api_key)
    assert sent["body"]["model"] == "gpt-4o"
    assert sent["body"]["promptObject"]["settings"]["webSearchSettings"]["webSearch"] is True


def test_model_id_with_colon_is_not_a_suffix(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="us.anthropic.claude-haiku-4-5-20251001-v1:0",
        messages=[{"role": "user", "content": "hello"}],
    )
    assert completion.choices[0].message.content == "Echo: hello"


async def test_async_client_non_streaming(async_client: openai.AsyncOpenAI) -> None:
    completion = await async_client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "async hello"}]
    )
    assert completion.choices[0].message.content == "Echo: async hello"


# -- streaming ---------------------------------------------------------------------------


def test_stream_chunks_share_one_id_and_start_with_role(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "stream this please"}],
            stream=True,
        )
    )
    assert len({c.id for c in chunks}) == 1, "every chunk of one completion shares its id"
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: stream this please"
    assert len(chunks) > 4, "the reply must arrive in several deltas, not one blob"
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_stream_include_usage_sends_final_usage_chunk(
    client: openai.OpenAI, stack: Stack, api_key: str
) -> None:
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "usage please"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    metadata = stack.direct_chat(api_key, "gpt-4o-mini", "usage please")["aiRecord"]["metadata"]
    assert last.usage.prompt_tokens == metadata["inputToken"]
    assert last.usage.completion_tokens == metadata["outputToken"]


async def test_async_stream(async_client: openai.AsyncOpenAI) -> None:
    stream = await async_client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "async stream"}], stream=True
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "Echo: async stream"


def test_utf8_split_across_chunks(client: openai.OpenAI, stack: Stack, api_key: str) -> None:
    stack.set_faults(api_key, chunk_bytes=3, split_utf8=True)
    prompt = "héllo 🌍 トラベル — naïve"
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}], stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == f"Echo: {prompt}", "multi-byte characters split by the network must survive"


def test_duplicate_final_full_text_not_repeated(
    client: openai.OpenAI, stack: Stack, api_key: str
) -> None:
    stack.set_faults(api_key, duplicate_final=True)
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "say it once"}], stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "Echo: say it once"


def test_crawl_lines_stripped(client: openai.OpenAI, stack: Stack, api_key: str) -> None:
    stack.set_faults(api_key, crawl_lines=2)
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "read the page"}], stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "Echo: read the page"
    completion = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "read the page"}]
    )
    assert completion.choices[0].message.content == "Echo: read the page"


def test_stream_without_done_still_completes(
    client: openai.OpenAI, stack: Stack, api_key: str
) -> None:
    stack.set_faults(api_key, no_done=True)
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "no done"}], stream=True
        )
    )
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_event_error_mid_stream_raises_not_empty_success(
    client: openai.OpenAI, stack: Stack, api_key: str
) -> None:
    stack.set_faults(api_key, error_after_chunks=2, error_message="provider exploded")
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "this will fail midway"}],
        stream=True,
    )
    received: list[str] = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            if chunk.choices:
                received.append(chunk.choices[0].delta.content or "")
    assert "provider exploded" in str(caught.value.message)
    assert "".join(received).startswith("Echo:"), "content before the error reaches the client"


def test_event_error_before_content_raises(
    client: openai.OpenAI, stack: Stack, api_key: str
) -> None:
    stack.set_faults(api_key, error_after_chunks=0)
    with pytest.raises(openai.APIError):
        list(
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}], stream=True
            )
        )


def test_connection_reset_mid_stream_raises(
    client: openai.OpenAI, stack: Stack, api_key: str
) -> None:
    stack.set_faults(api_key, reset_after_chunks=2)
    with pytest.raises(openai.APIError):
        list(
            client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "one two three four five"}],
                stream=True,
            )
        )


def test_stalled_upstream_times_out_with_error(
    client: openai.OpenAI, stack: Stack, api_key: str
) -> None:
    stack.set_faults(api_key, stall_after_chunks=2)
    with pytest.raises(openai.APIError) as caught:
        list(
            client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "one two three four"}],
                stream=True,
            )
        )
    assert "in time" in str(caught.value.message)


def test_youtube_link_reaches_upstream_in_the_prompt(
    client: openai.OpenAI, stack: Stack, api_key: str
) -> None:
    """1min.ai fetches a video's transcript from a YouTube URL in the prompt (up to three)."""
    ask = "Summarise https://www.youtube.com/watch?v=dQw4w9WgXcQ please"
    completion = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": ask}],
    )
    assert completion.choices[0].message.content.endswith("[youtube: 1]")
    (sent,) = stack.chat_requests(api_key)
    assert "https://www.youtube.com/watch?v=dQw4w9WgXcQ" in sent["body"]["promptObject"]["prompt"]
