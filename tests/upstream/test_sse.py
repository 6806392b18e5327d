"""The staged SSE decoders: UTF-8, lines and events, each fed in arbitrary pieces."""

from __future__ import annotations

import re
from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from onemin_relay.upstream.sse import (
    LineDecoder,
    SSEDecoder,
    SSEEvent,
    SSEEventDecoder,
    Utf8Decoder,
)


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(min(c, len(data)) for c in cuts)})
    return [data[a:b] for a, b in pairwise(points)]


def _decode_events(chunks: list[bytes]) -> list[SSEEvent]:
    decoder = SSEDecoder()
    events = [event for chunk in chunks for event in decoder.decode(chunk)]
    return events + decoder.flush()


def _decode_lines(pieces: list[str]) -> list[str]:
    decoder = LineDecoder()
    lines = [line for piece in pieces for line in decoder.decode(piece)]
    return lines + decoder.flush()


# -- UTF-8 -----------------------------------------------------------------------------


def test_utf8_split_across_chunks() -> None:
    # httpx's test: "トラベル" cut inside its first and second characters.
    decoder = Utf8Decoder()
    pieces = [
        decoder.decode(b) for b in (b"\xe3\x83", b"\x88\xe3", b"\x83\xa9\xe3\x83\x99\xe3\x83\xab")
    ]
    assert "".join(pieces) + decoder.flush() == "トラベル"
    assert pieces[0] == "", "half a character must be held back, not replaced"


def test_utf8_truncated_character_replaced_at_flush() -> None:
    decoder = Utf8Decoder()
    assert decoder.decode(b"ok\xf0\x9f") == "ok"
    assert decoder.flush() == "\ufffd", "a character cut off by the end of input is replaced"


def test_utf8_invalid_bytes_replaced_not_raised() -> None:
    assert Utf8Decoder().decode(b"a\xffb") == "a\ufffdb"


# -- lines -----------------------------------------------------------------------------


def test_lines_split_on_lf_crlf_and_lone_cr() -> None:
    assert _decode_lines(["a\nb\r\nc\rd\n"]) == ["a", "b", "c", "d"]


def test_cr_lf_split_across_chunks() -> None:
    decoder = LineDecoder()
    assert decoder.decode("a\r") == [], "a trailing \\r waits: it may be half of \\r\\n"
    assert decoder.decode("\nb\n") == ["a", "b"], "\\r + \\n across chunks is one line end"


def test_lone_cr_at_chunk_end_ends_the_line() -> None:
    decoder = LineDecoder()
    assert decoder.decode("a\r") == []
    assert decoder.decode("b\n") == ["a", "b"]


def test_consecutive_cr_are_two_line_ends() -> None:
    assert _decode_lines(["a\r", "\r", "b\n"]) == ["a", "", "b"]


def test_partial_line_joined_across_many_chunks() -> None:
    assert _decode_lines(["da", "ta: ", "x", "yz\nnext"]) == ["data: xyz", "next"]


def test_flush_returns_unterminated_line_and_pending_cr() -> None:
    assert _decode_lines(["last"]) == ["last"]
    assert _decode_lines(["x\r"]) == ["x"]
    assert _decode_lines(["x\n"]) == ["x"], "no phantom empty line after a final newline"


def test_unicode_line_separators_are_not_line_ends() -> None:
    # JSON may carry U+2028 raw inside a string; str.splitlines() would cut the event apart.
    assert _decode_lines(['{"content":"a\u2028b\x85c"}\n']) == ['{"content":"a\u2028b\x85c"}']


@given(
    text=st.text(alphabet=st.sampled_from("ab\r\n\u2028é"), max_size=40),
    cuts=st.lists(st.integers(0, 40), max_size=8),
)
def test_lines_match_reference_split_for_any_chunking(text: str, cuts: list[int]) -> None:
    expected = re.split(r"\r\n|\r|\n", text)
    if expected[-1] == "":
        expected.pop()
    points = sorted({0, len(text), *(min(c, len(text)) for c in cuts)})
    pieces = [text[a:b] for a, b in pairwise(points)]
    assert _decode_lines(pieces) == expected


# -- events ----------------------------------------------------------------------------


def _events(*lines: str) -> list[SSEEvent]:
    decoder = SSEEventDecoder()
    return decoder.decode(list(lines)) + decoder.flush()


def test_event_name_and_data() -> None:
    assert _events("event: content", 'data: {"content":"P"}', "") == [
        SSEEvent("content", '{"content":"P"}')
    ]


def test_default_event_name_is_message() -> None:
    assert _events("data: [DONE]", "") == [SSEEvent("message", "[DONE]")]


def test_multi_line_data_joined_with_newline() -> None:
    assert _events("data: one", "data:two", "data", "") == [SSEEvent("message", "one\ntwo\n")]


def test_only_one_space_after_colon_stripped() -> None:
    assert _events("data:  two spaces", "") == [SSEEvent("message", " two spaces")]


def test_comments_id_retry_and_unknown_fields_ignored() -> None:
    lines = (": keep-alive", "id: 7", "retry: 1000", "foo: bar", "event: done", "data: x", "")
    assert _events(*lines) == [SSEEvent("done", "x")]


def test_blank_line_without_data_dispatches_nothing_and_resets_name() -> None:
    assert _events("event: ping", "", "data: x", "") == [SSEEvent("message", "x")], (
        "an event name with no data is dropped at the blank line, not carried over"
    )


def test_empty_data_field_still_dispatches() -> None:
    assert _events("event: done", "data:", "") == [SSEEvent("done", "")]


def test_pending_event_dispatched_at_flush() -> None:
    assert _events("event: done", "data: bye") == [SSEEvent("done", "bye")]


def test_name_without_data_not_dispatched_at_flush() -> None:
    assert _events("event: done") == []


# -- whole decoder ---------------------------------------------------------------------

RECORDED = (
    ": comment\r\n"
    "event: content\r\n"
    'data: {"content":"héllo 🌍"}\r\n'
    "\r\n"
    "event: content\r\n"
    "data: line one\r\n"
    "data: トラベル\r\n"
    "\r\n"
    "data: [DONE]\r\n"
    "\r\n"
).encode()


def test_crlf_stream_decoded() -> None:
    assert _decode_events([RECORDED]) == [
        SSEEvent("content", '{"content":"héllo 🌍"}'),
        SSEEvent("content", "line one\nトラベル"),
        SSEEvent("message", "[DONE]"),
    ]


def test_every_single_split_matches_whole_decode() -> None:
    whole = _decode_events([RECORDED])
    for cut in range(len(RECORDED) + 1):
        assert _decode_events(_split(RECORDED, [cut])) == whole, f"split at byte {cut}"


@given(st.lists(st.integers(0, len(RECORDED)), max_size=30))
def test_any_chunking_matches_whole_decode(cuts: list[int]) -> None:
    assert _decode_events(_split(RECORDED, cuts)) == _decode_events([RECORDED])


def test_byte_by_byte_matches_whole_decode() -> None:
    chunks = [RECORDED[i : i + 1] for i in range(len(RECORDED))]
    assert _decode_events(chunks) == _decode_events([RECORDED])
