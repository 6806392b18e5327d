"""JSON calls written among prose, for :mod:`onemin_relay.core.tools`.

Used when a reply has no marked call and is not one JSON value as a whole. A *candidate* is
a JSON object or array that stands on its own:

* it starts a line (after blanks), optionally after Mistral's ``[TOOL_CALLS]`` marker;
* or it follows a colon that ends a word on the same line: the label form
  ``Calling get_weather: {...}`` (the label stays in the prose);
* or it is the whole body of a code fence that opens a line, tagged ``json`` or untagged.

JSON in the middle of a sentence ("send a body such as {...} to the endpoint") is never a
candidate. Nor is JSON that prose introduces as an illustration: if the *lead-in* (the text
before the value on its own line or, when that is blank, the last non-blank line above it;
at most its last 200 characters)
has a word of :data:`_ILLUSTRATION` ("example", "format", "e.g.", "such as", "here is how",
...), the JSON is about JSON and stays text. ``tools.parse_reply`` then keeps only the
candidates that are strictly call-shaped, name offered tools and carry valid arguments.

:func:`json_hold` is the matching stream rule: where text that may start such a value begins.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import orjson

from onemin_relay.core.structured import _span_end

__all__ = ["FENCE_LINE", "Embedded", "find_embedded", "json_hold", "prose_around"]

_START = re.compile(
    r"(?P<fence>^[ \t]*```(?:json)?[ \t]*\r?\n)"
    r"|(?P<line>^[ \t]*(?:\[TOOL_CALLS\][ \t]*)?)(?=[{\[])"
    r"|(?<=[\w)]):(?P<label>[ \t]*)(?=[{\[])",
    re.MULTILINE,
)
_ILLUSTRATION = re.compile(
    r"\b(?:examples?|for instance|e\.g\.|such as|formats?|syntax|schemas?|samples?|templates?"
    r"|looks? like|like this|here is how|here's how|would look)(?!\w)",
    re.IGNORECASE,
)
# Stream side: a whole opener (hold from it to the end), and the tail of a delta that may
# still become one (hold it until the next delta decides).
_OPENER = re.compile(
    r"\n[ \t]*(?:\[TOOL_CALLS\]|\[\s*\{|\{|```(?:json)?[ \t]*\r?\n)|:[ \t]*(?:\{|\[\s*\{)"
)
_OPENER_IN_FENCE = re.compile(r"\n[ \t]*(?:\[TOOL_CALLS\]|\[\s*\{|\{)|:[ \t]*(?:\{|\[\s*\{)")
FENCE_LINE = re.compile(r"\n[ \t]*```")
_LINE_TAIL = re.compile(r"\[\s*|```(?:json)?[ \t]*\r?")
_COLON_TAIL = re.compile(r":[ \t]*(?:\[\s*)?\Z")
_TAIL_WINDOW = 64
_LEAD_IN_CHARS = 200  # of a long lead-in, only its end is read


class Embedded(NamedTuple):
    """A candidate: ``reply[start:end]`` is cut from the prose if it turns out to be a call."""

    start: int
    end: int
    value: Any


def find_embedded(reply: str, keep: Callable[[Any], bool]) -> list[Embedded]:
    """The candidates in ``reply`` whose value ``keep`` accepts, in order (see the module doc);
    linear in the reply."""
    found: list[Embedded] = []
    pos = 0
    while (match := _START.search(reply, pos)) is not None:
        if match.lastgroup == "fence":
            close = reply.find("```", match.end())
            if close < 0:
                break
            body, pos = reply[match.end() : close], close + 3
        else:
            end, outcome = _span_end(reply, match.end())
            if outcome == "unclosed":
                break
            body, pos = reply[match.end() : end], end
            if outcome != "balanced":
                continue
        start = match.end() if match.lastgroup == "label" else match.start()
        value = json_value(body)
        if value is not None and keep(value) and not _illustrated(reply, start):
            found.append(Embedded(start, pos, value))
    return found


def prose_around(reply: str, cuts: Sequence[Embedded]) -> str:
    """``reply`` without the ``cuts``: the pieces between them stripped, joined by a blank line."""
    pieces, pos = [], 0
    for cut in cuts:
        pieces.append(reply[pos : cut.start])
        pos = cut.end
    pieces.append(reply[pos:])
    return "\n\n".join(piece.strip() for piece in pieces if piece.strip())


def json_hold(pending: str, in_fence: bool = False) -> tuple[int, bool]:
    """Where in ``pending`` text that may open a candidate starts, and whether it surely does
    (then everything from there is held to the end); ``len(pending)`` when nowhere.

    A candidate after prose follows a newline or a colon; the splitter keeps a trailing
    newline or colon for the next delta, so an opener split between deltas is still seen.
    ``in_fence``: the text shown so far leaves a code fence open, so a fence line closes it.
    """
    if "\n" not in pending and ":" not in pending:
        return len(pending), False
    opener = (_OPENER_IN_FENCE if in_fence else _OPENER).search(pending)
    if opener is not None:
        return opener.start() + opener.group().startswith(":"), True
    newline = pending.rfind("\n")
    if newline >= 0:
        rest = pending[newline + 1 :].lstrip(" \t")
        if any(s.startswith(rest) for s in ("[TOOL_CALLS]", "```json")) or _LINE_TAIL.fullmatch(
            rest
        ):
            return newline, False
    colon = _COLON_TAIL.search(pending, max(0, len(pending) - _TAIL_WINDOW))
    return (colon.start(), False) if colon is not None else (len(pending), False)


def json_value(body: str) -> Any:
    """``body`` as a JSON object or array; None when it is neither."""
    body = body.strip()
    if not body.startswith(("{", "[")):
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def _illustrated(reply: str, start: int) -> bool:
    end = start
    while end > 0 and reply[end - 1].isspace():  # stops at the previous value's bracket
        end -= 1
    begin = reply.rfind("\n", max(0, end - _LEAD_IN_CHARS), end) + 1
    return _ILLUSTRATION.search(reply, max(begin, end - _LEAD_IN_CHARS), end) is not None
