"""ChatStreamParser against recorded streams and every quirk 1min.ai is known for."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import orjson
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from onemin_relay.core.errors import UpstreamStreamError
from onemin_relay.core.types import Finish, StreamEvent, TextDelta, Usage
from onemin_relay.upstream.stream import ChatStreamParser
from tests.upstream.live import LIVE_METADATA

SSE = "text/event-stream; charset=utf-8"
CRAWL = "🌐 Crawling site https://example.com/page\n"


# -- building and running streams ------------------------------------------------------


def block(event: str, data: str | dict[str, Any], newline: str = "\n") -> str:
    payload = data if isinstance(data, str) else orjson.dumps(data).decode()
    return f"event: {event}{newline}data: {payload}{newline}{newline}"


def content(text: str) -> str:
    return block("content", {"content": text})


def result(text: str | None, metadata: Any = LIVE_METADATA, status: str = "SUCCESS") -> str:
    record: dict[str, Any] = {"uuid": "rec-1", "status": status, "metadata": metadata}
    if text is not None:
        record["aiRecordDetail"] = {"resultObject": [text]}
    return block("result", {"aiRecord": record})


DONE = block("done", {"message": "Stream completed"})


def stream(*pieces: str, tail: bool = True) -> bytes:
    """Content events for ``pieces``, then (with ``tail``) result and done."""
    body = "".join(content(p) for p in pieces)
    if tail:
        body += result("".join(pieces)) + DONE
    return body.encode()


def run(chunks: list[bytes], content_type: str | None = SSE) -> list[StreamEvent]:
    parser = ChatStreamParser(content_type)
    events = [event for chunk in chunks for event in parser.feed(chunk)]
    return events + parser.finish()


def parse(body: bytes, content_type: str | None = SSE) -> list[StreamEvent]:
    return run([body], content_type)


def text_of(events: list[StreamEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def finish_of(events: list[StreamEvent]) -> Finish:
    assert isinstance(events[-1], Finish), "a completed stream ends with exactly one Finish"
    assert sum(isinstance(e, Finish) for e in events) == 1
    return events[-1]


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(min(c, len(data)) for c in cuts)})
    return [data[a:b] for a, b in pairwise(points)]


# A healthy stream in the live shape (API doc §4.2): compact JSON, an empty first delta,
# the record in `result`, then `done`; multi-byte text so splits land inside characters.
HEALTHY = (
    content("")
    + content("P")
    + content("ong")
    + content(" héllo 🌍 トラベル")
    + result("Pong héllo 🌍 トラベル")
    + DONE
).encode()

RECORDED: dict[str, tuple[bytes, str | None]] = {
    "healthy": (HEALTHY, SSE),
    "healthy-sniffed": (HEALTHY, None),
    "crlf": (HEALTHY.replace(b"\n", b"\r\n"), SSE),
    "lone-cr": (HEALTHY.replace(b"\n", b"\r"), None),
    "crawl-and-duplicate": (
        (
            content("🌐 Crawl")
            + content("ing site https://a.example\n")
            + content("")
            + content("\nÀ bientôt 🌍")
            + content("À bientôt 🌍")
            + result(CRAWL + "À bientôt 🌍")
            + DONE
        ).encode(),
        SSE,
    ),
    "legacy-raw": ("Légacy 🌍 トラベル reply\n".encode(), None),
}


# -- the healthy stream ----------------------------------------------------------------


def test_healthy_stream_live_shape() -> None:
    events = parse(HEALTHY)
    assert events == [
        TextDelta("P"),
        TextDelta("ong"),
        TextDelta(" héllo 🌍 トラベル"),
        Finish("stop", Usage(98, 3, credits=45)),
    ]


def test_empty_first_delta_skipped() -> None:
    assert all(isinstance(e, Finish) or e.text for e in parse(HEALTHY)), "no empty TextDelta"


def test_finish_returned_as_soon_as_done_arrives() -> None:
    parser = ChatStreamParser(SSE)
    events = parser.feed(HEALTHY + content("late").encode())
    assert isinstance(events[-1], Finish), "feed() must not wait for the connection to close"
    assert parser.feed(content("later").encode()) == [], "input after done is ignored"
    assert parser.finish() == []


def test_utf8_split_across_chunks() -> None:
    cut = HEALTHY.index("🌍".encode()) + 2
    assert text_of(run([HEALTHY[:cut], HEALTHY[cut:]])) == "Pong héllo 🌍 トラベル"


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_every_byte_split_matches_whole_parse(name: str) -> None:
    body, content_type = RECORDED[name]
    whole = parse(body, content_type)
    for cut in range(len(body) + 1):
        events = run(split(body, [cut]), content_type)
        assert text_of(events) == text_of(whole), f"{name}: text differs when split at {cut}"
        assert finish_of(events) == finish_of(whole), f"{name}: Finish differs at {cut}"
        assert all(isinstance(e, Finish) or e.text for e in events), "empty TextDelta emitted"


@given(name=st.sampled_from(sorted(RECORDED)), cuts=st.lists(st.integers(0, 2000), max_size=40))
def test_any_chunking_matches_whole_parse(name: str, cuts: list[int]) -> None:
    body, content_type = RECORDED[name]
    whole = parse(body, content_type)
    events = run(split(body, cuts), content_type)
    assert (text_of(events), finish_of(events)) == (text_of(whole), finish_of(whole))


def test_recorded_streams_oracle_values() -> None:
    assert text_of(parse(*RECORDED["crawl-and-duplicate"])) == "À bientôt 🌍"
    assert parse(*RECORDED["legacy-raw"]) == [
        TextDelta("Légacy 🌍 トラベル reply\n"),
        Finish("stop"),
    ]


# -- errors in the stream --------------------------------------------------------------


def test_event_error_before_any_content_raises() -> None:
    body = block("error", {"error": "Model this-model-does-not-exist is not supported"})
    with pytest.raises(UpstreamStreamError, match="Model this-model-does-not-exist is not"):
        parse(body.encode())


def test_event_error_after_content_raises() -> None:
    parser = ChatStreamParser(SSE)
    assert parser.feed(stream("Partial", tail=False)) == [TextDelta("Partial")]
    with pytest.raises(UpstreamStreamError, match=r"1min\.ai reported an error: overloaded"):
        parser.feed(block("error", {"error": "overloaded"}).encode())


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ('{"error":"plain string"}', "plain string"),
        ('{"error":{"code":"X","message":"nested message"}}', "nested message"),
        ('{"message":"top-level message"}', "top-level message"),
        ("not json at all", "not json at all"),
        ('{"error": 5}', '{"error": 5}'),
        ("", "no details given"),
    ],
)
def test_error_event_message_shapes(data: str, message: str) -> None:
    with pytest.raises(UpstreamStreamError) as caught:
        parse(block("error", data).encode())
    assert caught.value.message == f"1min.ai reported an error: {message}"


def test_failed_record_in_result_raises() -> None:
    body = content("Hi") + result(None, status="FAILED") + DONE
    with pytest.raises(UpstreamStreamError, match="reported the request as failed"):
        parse(body.encode())


def test_stream_without_done_after_result_completes() -> None:
    body = (content("Hi") + result("Hi")).encode()
    assert parse(body) == [TextDelta("Hi"), Finish("stop", Usage(98, 3, credits=45))], (
        "the record is the last thing that matters; a missing done is not a failure"
    )


def test_stream_without_result_or_done_raises() -> None:
    with pytest.raises(UpstreamStreamError, match="ended before completing"):
        parse(stream("Hi", tail=False))


def test_stream_with_done_but_no_result_completes() -> None:
    assert parse((content("Hi") + DONE).encode()) == [TextDelta("Hi"), Finish("stop")]


@pytest.mark.parametrize("content_type", [SSE, None])
def test_empty_body_raises(content_type: str | None) -> None:
    with pytest.raises(UpstreamStreamError, match="ended before completing"):
        parse(b"", content_type)
    with pytest.raises(UpstreamStreamError, match="ended before completing"):
        parse(b"\n\n", content_type)


def test_unreadable_content_event_raises() -> None:
    # Dropping it would silently cut a piece out of the reply.
    with pytest.raises(UpstreamStreamError, match="unreadable content event"):
        parse(block("content", "Hello there").encode())


def test_unreadable_result_costs_only_metadata() -> None:
    body = content("Hi") + block("result", "{truncated") + DONE
    assert parse(body.encode()) == [TextDelta("Hi"), Finish("stop")]


# -- result metadata -------------------------------------------------------------------


def test_zero_usage_metadata_gives_no_usage() -> None:
    metadata = {**LIVE_METADATA, "inputToken": 0, "outputToken": 0}
    body = content("Hi") + result("Hi", metadata) + DONE
    assert finish_of(parse(body.encode())).usage is None, "all-zero counts must be estimated"


def test_metadata_null_gives_no_usage() -> None:
    body = content("Hi") + result("Hi", None) + DONE
    assert finish_of(parse(body.encode())) == Finish("stop", None)


@pytest.mark.parametrize(
    ("raw", "reason"), [("complete", "stop"), ("MAX_TOKENS", "length"), (None, "stop")]
)
def test_finish_reason_variants(raw: str | None, reason: str) -> None:
    metadata = {k: v for k, v in LIVE_METADATA.items() if k != "finishReason"}
    if raw is not None:
        metadata["finishReason"] = raw
    body = content("Hi") + result("Hi", metadata) + DONE
    assert finish_of(parse(body.encode())).reason == reason


# -- framing ---------------------------------------------------------------------------


def test_done_line_literal_ends_stream() -> None:
    body = content("Hi") + "data: [DONE]\n\n" + content("ignored")
    assert parse(body.encode()) == [TextDelta("Hi"), Finish("stop")]


def test_comments_and_unknown_events_ignored() -> None:
    body = ": keep-alive\n\n" + content("Hi") + block("ping", "{}") + ": x\n" + DONE
    assert parse(body.encode()) == [TextDelta("Hi"), Finish("stop")]


def test_multi_line_data_joined() -> None:
    body = 'event: content\ndata: {"content":\ndata: "Hi"}\n\n' + DONE
    assert text_of(parse(body.encode())) == "Hi", "two data lines are one JSON document"


def test_crlf_stream() -> None:
    body = (content("a") + content("b") + result("ab") + DONE).replace("\n", "\r\n")
    assert parse(body.encode()) == [
        TextDelta("a"),
        TextDelta("b"),
        Finish("stop", Usage(98, 3, credits=45)),
    ]


def test_cr_lf_split_across_chunks() -> None:
    body = (content("a") + DONE).replace("\n", "\r\n").encode()
    cut = body.index(b"\r\n") + 1
    assert run([body[:cut], body[cut:]]) == [TextDelta("a"), Finish("stop")]


# -- crawl noise at the start ----------------------------------------------------------


def test_crawl_lines_stripped_across_events() -> None:
    parser = ChatStreamParser(SSE)
    for piece in ("🌐", " Crawl", "ing site https://a.example", "\n", "", "\n", "ðŸŒ\x90 Craw"):
        assert parser.feed(content(piece).encode()) == [], f"{piece!r} may still be noise"
    assert parser.feed(content("ling site https://b\n").encode()) == []
    assert parser.feed(content("\nAnswer").encode()) == [TextDelta("Answer")]
    assert parser.feed(content(" more").encode()) == [TextDelta(" more")]


def test_first_ordinary_chunk_emitted_at_once() -> None:
    parser = ChatStreamParser(SSE)
    assert parser.feed(content("Hello").encode()) == [TextDelta("Hello")], "no delay"


def test_globe_emoji_that_is_not_a_crawl_line_kept() -> None:
    parser = ChatStreamParser(SSE)
    assert parser.feed(content("🌐").encode()) == []
    assert parser.feed(content(" Web facts").encode()) == [TextDelta("🌐 Web facts")]


def test_leading_blank_lines_kept_without_crawl_line() -> None:
    assert text_of(parse(stream("\n", "\nHi"))) == "\n\nHi"


def test_crawl_line_after_real_text_kept() -> None:
    assert text_of(parse(stream("Hi\n", CRAWL))) == "Hi\n" + CRAWL, "only the start is stripped"


def test_reply_that_is_only_crawl_noise_is_empty() -> None:
    events = parse((content(CRAWL) + content("\n") + result(CRAWL) + DONE).encode())
    assert events == [Finish("stop", Usage(98, 3, credits=45))]


def test_undecided_start_released_at_result() -> None:
    assert parse(stream("🌐")) == [TextDelta("🌐"), Finish("stop", Usage(98, 3, credits=45))], (
        "text held as possible noise is released once the reply is known to be over"
    )


# -- the disputed duplicate final chunk ------------------------------------------------


def test_duplicate_final_full_text_dropped() -> None:
    body = stream("P", "ong", tail=False) + (content("Pong") + result("Pong") + DONE).encode()
    assert text_of(parse(body)) == "Pong", "the full-text repeat confirmed by result is noise"


def test_duplicate_final_full_text_dropped_without_result() -> None:
    body = stream("P", "ong", tail=False) + (content("Pong") + DONE).encode()
    assert text_of(parse(body)) == "Pong"


def test_duplicate_dropped_when_result_has_no_text() -> None:
    body = stream("P", "ong", tail=False) + (content("Pong") + result(None) + DONE).encode()
    assert text_of(parse(body)) == "Pong"


def test_repeated_legitimate_chunk_kept() -> None:
    assert text_of(parse(stream("ok", "ok", " fine"))) == "okok fine", (
        "a repeat followed by more content was part of the reply"
    )


def test_repeated_final_chunk_confirmed_by_result_kept() -> None:
    assert text_of(parse(stream("ok", "ok"))) == "okok", "result says the repeat is real"


def test_duplicate_including_crawl_prefix_dropped() -> None:
    body = content(CRAWL) + content("Pong") + content(CRAWL + "Pong") + result(CRAWL + "Pong")
    assert text_of(parse((body + DONE).encode())) == "Pong"


@given(st.lists(st.text(alphabet="ab \n", min_size=1, max_size=4), min_size=1, max_size=8))
def test_deltas_confirmed_by_result_always_kept(pieces: list[str]) -> None:
    assert text_of(parse(stream(*pieces))) == "".join(pieces), (
        "when result holds the concatenation, no delta may be dropped"
    )


@given(st.lists(st.text(alphabet="ab \n", min_size=1, max_size=4), min_size=1, max_size=8))
def test_full_text_repeat_always_dropped(pieces: list[str]) -> None:
    full = "".join(pieces)
    # An all-blank start is never emitted before the end (it may precede crawl lines), so
    # there is nothing yet for a repeat to be compared with.
    assume(full.strip())
    body = stream(*pieces, tail=False) + (content(full) + result(full) + DONE).encode()
    assert text_of(parse(body)) == full


# -- legacy raw-text streams -----------------------------------------------------------


def test_legacy_raw_text_stream() -> None:
    events = run([b"Hello ", "w\xf6rld 🌍".encode()[:-2], "🌍".encode()[-2:]], None)
    assert text_of(events) == "Hello w\xf6rld 🌍"
    assert events[-1] == Finish("stop"), "a raw stream ends at connection close"


def test_legacy_sniffing_with_split_first_chunk() -> None:
    assert run([b"eve", b"rything is fine"], None) == [
        TextDelta("everything is fine"),
        Finish("stop"),
    ]
    sse_split = run([b"eve", (content("Hi") + DONE).encode()[3:]], None)
    assert sse_split == [TextDelta("Hi"), Finish("stop")], "a split 'event:' is still SSE"


def test_legacy_short_reply_that_looks_like_a_field_start() -> None:
    assert run([b"\n", b"id"], None) == [TextDelta("\nid"), Finish("stop")]


def test_sse_sniffed_after_leading_blank_lines() -> None:
    body = b"\n\r\n" + (content("Hi") + DONE).encode()
    assert parse(body, None) == [TextDelta("Hi"), Finish("stop")]


def test_event_stream_content_type_skips_sniffing() -> None:
    with pytest.raises(UpstreamStreamError, match="ended before completing"):
        parse(b"plain text\n", SSE)
