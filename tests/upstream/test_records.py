"""The non-streamed chat envelope, finish-reason mapping and crawl-noise stripping."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from onemin_relay.core.errors import UpstreamError
from onemin_relay.core.types import Usage
from onemin_relay.upstream.records import (
    ChatRecord,
    map_finish_reason,
    parse_chat_response,
    scan_crawl_prefix,
    strip_crawl_prefix,
)
from tests.upstream.live import LIVE_METADATA


def _body(result: Any = ("Pong",), metadata: Any = LIVE_METADATA, **record: Any) -> bytes:
    ai_record: dict[str, Any] = {
        "uuid": "rec-1",
        "model": "gpt-4o-mini",
        "type": "UNIFY_CHAT_WITH_AI",
        "status": "SUCCESS",
        "metadata": metadata,
        "teamUser": {"creditLimit": 214748364, "usedCredit": 3086973},
        "aiRecordDetail": {"promptObject": {"prompt": "ping"}, "resultObject": result},
        "modelDetail": {"name": "gpt-4o-mini", "provider": "OPENAI"},
    }
    ai_record.update(record)
    return orjson.dumps({"aiRecord": ai_record})


def test_live_envelope_parsed() -> None:
    assert parse_chat_response(_body()) == ChatRecord(
        text="Pong", finish_reason="stop", usage=Usage(98, 3, credits=45), record_id="rec-1"
    )


def test_metadata_null_gives_no_usage() -> None:
    record = parse_chat_response(_body(metadata=None))
    assert record.usage is None, "no counts: the pipeline estimates"
    assert record.finish_reason == "stop"


def test_zero_usage_metadata_gives_no_usage() -> None:
    metadata = {**LIVE_METADATA, "inputToken": 0, "outputToken": 0}
    assert parse_chat_response(_body(metadata=metadata)).usage is None, (
        "all-zero counts were seen for a real exchange; they must be estimated, not reported"
    )


def test_missing_token_count_gives_no_usage() -> None:
    assert parse_chat_response(_body(metadata={"inputToken": 5})).usage is None


def test_float_token_counts_accepted() -> None:
    metadata = {"inputToken": 12.0, "outputToken": 3.0}
    assert parse_chat_response(_body(metadata=metadata)).usage == Usage(12, 3)


def test_odd_metadata_shape_costs_only_usage() -> None:
    record = parse_chat_response(_body(metadata={"inputToken": "many", "finishReason": 3}))
    assert (record.text, record.usage, record.finish_reason) == ("Pong", None, "stop")


def test_image_style_metadata_ignored() -> None:
    metadata = {"resultModeration": {"status": "unknown"}}
    assert parse_chat_response(_body(metadata=metadata)).usage is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("stop", "stop"),
        ("complete", "stop"),
        ("MAX_TOKENS", "length"),
        (" Length ", "length"),
        ("max_output_tokens", "length"),
        ("truncated", "length"),
        ("SAFETY", "content_filter"),
        ("recitation", "content_filter"),
        ("prohibited_content", "content_filter"),
        ("content_filter", "content_filter"),
        ("tool_use", "tool_calls"),
        ("function_call", "tool_calls"),
        ("tool_calls", "tool_calls"),
        ("", "stop"),
        (None, "stop"),
    ],
)
def test_map_finish_reason(raw: str | None, expected: str) -> None:
    assert map_finish_reason(raw) == expected


def test_finish_reason_variants_from_metadata() -> None:
    for raw, expected in (("complete", "stop"), ("MAX_TOKENS", "length")):
        metadata = {**LIVE_METADATA, "finishReason": raw}
        assert parse_chat_response(_body(metadata=metadata)).finish_reason == expected, raw
    metadata = {k: v for k, v in LIVE_METADATA.items() if k != "finishReason"}
    assert parse_chat_response(_body(metadata=metadata)).finish_reason == "stop", "absent"


def test_failed_record_raises() -> None:
    with pytest.raises(UpstreamError, match="reported the request as failed"):
        parse_chat_response(_body(result=[], status="FAILED"))


def test_missing_ai_record_raises() -> None:
    with pytest.raises(UpstreamError, match="no reply"):
        parse_chat_response(b'{"aiRecord": null}')
    with pytest.raises(UpstreamError, match="no reply"):
        parse_chat_response(b"{}")


def test_empty_result_list_raises() -> None:
    with pytest.raises(UpstreamError, match="no reply"):
        parse_chat_response(_body(result=[]))


def test_missing_record_detail_raises() -> None:
    with pytest.raises(UpstreamError, match="no reply"):
        parse_chat_response(_body(aiRecordDetail=None))


def test_empty_string_reply_is_legitimate() -> None:
    assert parse_chat_response(_body(result=[""])).text == ""


def test_result_object_as_plain_string() -> None:
    assert parse_chat_response(_body(result="Pong")).text == "Pong"


def test_only_first_result_entry_is_the_reply() -> None:
    assert parse_chat_response(_body(result=["first", "second"])).text == "first"


def test_invalid_json_raises_upstream_error() -> None:
    with pytest.raises(UpstreamError, match="unreadable"):
        parse_chat_response(b"<html>Bad gateway</html>")


def test_wrong_shape_raises_upstream_error() -> None:
    with pytest.raises(UpstreamError, match="unreadable"):
        parse_chat_response(b'{"aiRecord": {"aiRecordDetail": {"resultObject": 5}}}')


def test_crawl_lines_stripped_from_reply() -> None:
    text = "🌐 Crawling site https://example.com\n\nThe answer."
    assert parse_chat_response(_body(result=[text])).text == "The answer."


# -- crawl noise -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("🌐 Crawling site https://a.example\nHello", "Hello"),
        ("\n🌐 Crawling site https://a\n\n🌐 Crawling site https://b\r\n\n\nHi", "Hi"),
        ("ðŸŒ\x90 Crawling site https://a\nHi", "Hi"),
        ("ðŸŒ Crawling site https://a\nHi", "Hi"),
        ("  🌐 Crawling site https://a\nHi", "Hi"),
        ("🌐 Crawling site https://a\n", ""),
    ],
)
def test_crawl_lines_stripped(text: str, expected: str) -> None:
    assert strip_crawl_prefix(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Hello",
        "\n\nHello",
        "🌐 The web is big\n",
        "Hello\n🌐 Crawling site https://a\n",
        "🌐 Crawling site https://a",
        "",
    ],
)
def test_non_crawl_text_kept(text: str) -> None:
    assert strip_crawl_prefix(text) == text, (
        "only complete crawl lines at the very start are noise; leading blank lines alone stay"
    )


def test_scan_holds_a_possible_crawl_line_start() -> None:
    for head in ("🌐", "🌐 Craw", "ð", "ðŸŒ", "\n", "🌐 Crawling site https://a", "  "):
        assert scan_crawl_prefix(head, final=False) is None, repr(head)


def test_scan_decides_ordinary_text_at_once() -> None:
    assert scan_crawl_prefix("Hello", final=False) == 0
    assert scan_crawl_prefix("🌐 Hi", final=False) == 0
    assert scan_crawl_prefix("🌐 Crawling site x\nA", final=False) == len("🌐 Crawling site x\n")
