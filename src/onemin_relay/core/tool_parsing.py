"""Finding tool calls in reply text, whole or streamed (for :mod:`onemin_relay.core.tools`).

Nothing here knows the declared tools; :func:`find_marked`, :func:`whole_json` and
:func:`entries_of` return raw :class:`Candidate` calls that ``tools.parse_reply`` resolves
against the tools and validates. Marked forms (case-sensitive, as models write them):

* ``<tool_calls>JSON</tool_calls>`` — the contract; JSON is one call or an array of calls;
* ``<tool_call>JSON</tool_call>`` — Hermes/Qwen;
* ``<function=NAME>JSON</function>`` — Llama; the body may also be ``<parameter=k>v</parameter>``
  tags (Qwen3-Coder);
* ``<invoke name="NAME"><parameter name="k">v</parameter></invoke>`` — Claude, optionally
  inside ``<function_calls>``;
* ``[tool call <id>] NAME({...})`` — the history line of :mod:`onemin_relay.core.prompt`.

A ``<tool_calls>`` or ``<tool_call>`` directly around another tag form is a mere wrapper. A
block whose closing tag never comes runs to the end of the reply (the reply was cut off or the
model stopped there). Everything outside the blocks is prose. :class:`ToolStreamSplitter`
holds back a streamed reply from the first sign of these forms; the openers above are exactly
its ``MARKERS``, so what it lets through as text never parses as a call.
"""

from __future__ import annotations

import bisect
import re
from typing import Any, NamedTuple

import orjson

# Private, and reused on purpose: the string-aware, depth-bounded, non-recursive bracket scan
# that extract_json uses, so a nested or string-laden argument object is read the same way.
from onemin_relay.core.structured import _span_end
from onemin_relay.core.tool_embedded import FENCE_LINE, json_hold, json_value

__all__ = [
    "MARKERS",
    "Candidate",
    "Marked",
    "ToolStreamSplitter",
    "entries_of",
    "find_marked",
    "whole_json",
]

#: What :class:`~onemin_relay.core.tools.ToolStreamSplitter` holds back from a stream.
MARKERS = (
    "<tool_calls>",
    "<tool_call>",
    "<function=",
    "<function_calls>",
    "<invoke ",
    "[tool call ",
)

NAME_KEYS = ("name", "tool", "tool_name", "function")
ARGUMENT_KEYS = ("arguments", "parameters", "args", "input")
# A bare JSON reply is a call only if it has no keys beyond these (so an answer that happens
# to have a "name" field, or an echoed tool definition with "description", is not one).
_CALL_KEYS = frozenset((*NAME_KEYS, *ARGUMENT_KEYS, "id", "type"))
_WRAPPER_KEYS = frozenset(("function", "id", "type"))

_FORMS = re.compile(
    r"(?P<wrapper><tool_calls?>(?=\s*<(?:function=|invoke |tool_call>))"
    r"|</?function_calls>|</tool_calls?>)"
    r"|(?P<contract><tool_calls>)"
    r"|(?P<hermes><tool_call>)"
    r"|(?P<llama><function=(?P<llama_name>[^>\n]{1,200})>)"
    r"|(?P<claude><invoke name=\"(?P<claude_name>[^\"\n]{1,200})\"\s*>)"
    r"|(?P<history>\[tool call [^\]\n]{0,200}\] ?(?P<history_name>[\w.:-]{1,200})\()"
)  # bounded names and ids: an unbounded run would make a scan of many openers quadratic
_CLOSERS = {
    "contract": "</tool_calls>",
    "hermes": "</tool_call>",
    "llama": "</function>",
    "claude": "</invoke>",
}
_PARAMETER = re.compile(r"<parameter(?:=(?P<short>[^>\n]+)|\s+name=\"(?P<long>[^\"\n]*)\"\s*)>")
_INNER_FENCE = re.compile(r"```[\w+-]*[ \t]*\r?\n(.*?)\r?\n?[ \t]*```", re.DOTALL)
_WHOLE_FENCE = re.compile(r"```[\w+-]*[ \t]*\r?\n(.*?)\r?\n[ \t]*```", re.DOTALL)
_CUT = "\x00"  # stands for a removed call while the prose is tidied
# A code fence that held nothing but calls, e.g. ```xml <tool_call>...</tool_call> ```.
_EMPTIED_FENCE = re.compile(r"```[\w+-]*(?:\s*\x00)+\s*```")
_MARKER_START = re.compile(r"[<\[]")
_LONGEST_MARKER = max(map(len, MARKERS))
_JSON_START = re.compile(r"\s*(?:[{\[]|```)")
_SHAPE = 'a call must be an object with "name" and "arguments"'


class Candidate(NamedTuple):
    """A call as written: ``arguments`` is a JSON value, JSON text, or None when absent."""

    name: str
    arguments: Any = None
    #: ``arguments`` is a dict of the raw texts of XML ``<parameter>`` tags.
    text_params: bool = False


class Marked(NamedTuple):
    candidates: list[Candidate]
    errors: list[str]
    prose: str


class _Unreadable(ValueError):
    """A marked block that is clearly a call attempt but cannot be read."""


def find_marked(reply: str) -> Marked | None:
    """Every marked call in ``reply``, in order; None when there is none."""
    candidates: list[Candidate] = []
    errors: list[str] = []
    prose: list[str] = []
    pos = 0
    while (match := _FORMS.search(reply, pos)) is not None:
        prose.append(reply[pos : match.start()])
        pos = match.end()
        if match.lastgroup == "wrapper":
            continue
        body, end = _block(reply, match)
        if body is None:  # the tag is only mentioned, e.g. "models emit `<tool_call>` tags"
            prose.append(match.group())
            continue
        prose.append(_CUT)
        pos = end
        try:
            candidates.extend(_read(match, body))
        except _Unreadable as exc:
            errors.append(f"{_label(match)}: {exc}")
    if not candidates and not errors:
        return None
    prose.append(reply[pos:])
    return Marked(candidates, errors, _tidy("".join(prose)))


def whole_json(reply: str) -> Any:
    """The JSON value that is the whole reply, bare or in one code fence; else None.

    Mistral's ``[TOOL_CALLS]`` prefix is dropped; it starts with ``[``, so a stream holds it.
    """
    body = reply.strip().lstrip("\ufeff").strip().removeprefix("[TOOL_CALLS]").lstrip()
    fence = _WHOLE_FENCE.fullmatch(body)
    if fence is not None:
        body = fence.group(1).strip()
    return json_value(body)


def entries_of(value: Any, *, strict: bool) -> list[Candidate] | None:
    """The calls a JSON value describes: one call, ``{"tool_calls": [...]}`` or an array.

    None if any entry is not call-shaped. ``strict`` also refuses entries with keys a call
    does not have (for bare JSON replies, which may just be an answer).
    """
    if isinstance(value, dict) and isinstance(value.get("tool_calls"), list):
        value = value["tool_calls"]
    items = value if isinstance(value, list) else [value]
    found = [_entry(item, strict) for item in items]
    if not found or None in found:
        return None
    return [c for c in found if c is not None]


def _entry(item: Any, strict: bool) -> Candidate | None:
    if not isinstance(item, dict):
        return None
    inner = item.get("function")
    if isinstance(inner, dict):  # OpenAI: {"type": "function", "function": {...}}
        if strict and not item.keys() <= _WRAPPER_KEYS:
            return None
        item = inner
    name = next((item[k] for k in NAME_KEYS if isinstance(item.get(k), str)), None)
    if name is None or (strict and not item.keys() <= _CALL_KEYS):
        return None
    arguments = next((item[k] for k in ARGUMENT_KEYS if k in item), None)
    return Candidate(name, arguments)


def _block(reply: str, match: re.Match[str]) -> tuple[str | None, int]:
    """The body of the block ``match`` opens and where the block ends; the body is None when
    the text there cannot be a call (a JSON form not followed by JSON)."""
    kind, start = match.lastgroup or "", match.end()
    if kind == "history":
        return _history_block(reply, start)
    json_start = _JSON_START.match(reply, start)
    if kind in ("contract", "hermes") and json_start is None:
        return None, start
    close = reply.find(_CLOSERS[kind], start)
    if close >= 0:
        return reply[start:close].strip(), close + len(_CLOSERS[kind])
    if json_start is not None and json_start.group().endswith(("{", "[")):
        # An unclosed tag: the JSON value, and any text after it is prose.
        end, outcome = _span_end(reply, json_start.end() - 1)
        if outcome == "balanced":
            return reply[start:end].strip(), end
    return reply[start:].strip(), len(reply)


def _history_block(reply: str, start: int) -> tuple[str | None, int]:
    if reply.startswith(")", start):
        return "", start + 1
    if not reply.startswith("{", start):
        return None, start
    end, outcome = _span_end(reply, start)
    if outcome != "balanced":
        return reply[start:], len(reply)
    return reply[start:end], end + reply.startswith(")", end)


def _read(match: re.Match[str], body: str) -> list[Candidate]:
    kind = match.lastgroup
    if kind == "claude":
        return [Candidate(match["claude_name"], _parameters(body), text_params=True)]
    if kind == "history":
        return [Candidate(match["history_name"], _load(body) if body else None)]
    if kind == "llama" and body and not body.startswith("{"):
        params = _parameters(body)
        if not params:
            raise _Unreadable("the body is neither a JSON object nor <parameter> tags")
        return [Candidate(match["llama_name"], params, text_params=True)]
    if kind == "llama":
        return [Candidate(match["llama_name"], _load(body) if body else None)]
    found = entries_of(_load(body), strict=False)
    if found is None:
        raise _Unreadable(f"{_SHAPE}, or an array of such objects")
    return found


def _parameters(body: str) -> dict[str, str]:
    """``<parameter=k>v</parameter>`` and ``<parameter name="k">v</parameter>`` texts by name."""
    params: dict[str, str] = {}
    for piece in body.split("</parameter>")[:-1]:  # split, not a lazy regex: linear time
        opener = _PARAMETER.match(piece, max(piece.rfind("<parameter"), 0))
        if opener is not None:
            params[opener["short"] or opener["long"]] = piece[opener.end() :].strip("\r\n")
    return params


def _load(body: str) -> Any:
    fence = _INNER_FENCE.fullmatch(body)
    if fence is not None:
        body = fence.group(1).strip()
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise _Unreadable(f"the JSON does not parse ({exc})") from None


def _label(match: re.Match[str]) -> str:
    text = match.group()
    return f"{text}...)" if match.lastgroup == "history" else text


def _tidy(prose: str) -> str:
    """Prose around removed calls: emptied fences dropped, one blank line where calls were."""

    fences = [m.start() for m in re.finditer("```", prose)]

    def drop(fence: re.Match[str]) -> str:
        opens_a_block = bisect.bisect_left(fences, fence.start()) % 2 == 0
        return _CUT if opens_a_block else fence.group()

    prose = _EMPTIED_FENCE.sub(drop, prose)
    return "\n\n".join(piece.strip() for piece in prose.split(_CUT) if piece.strip())


# -- streaming -------------------------------------------------------------------------


class ToolStreamSplitter:
    """Splits a streamed reply into text to show now and text held back as a possible call.

    The rule, which lets plain text stream at once and never shows a call as text:

    * a reply whose first non-blank character is ``{`` or ``[``, or that opens with a code
      fence, is held to the end: it may be a bare or fenced JSON call;
    * anywhere else, text is held from a ``<`` or ``[`` that may begin one of
      ``MARKERS`` (``<tool_calls>``, ``<tool_call>``, ``<function=``,
      ``<function_calls>``, ``<invoke ``, ``[tool call ``) while the held text is still a
      prefix of one, and released as soon as it cannot be; from a whole marker on, everything
      is held to the end. A marker is never split between emitted and held text;
    * after prose, text is held to the end from where a JSON call may stand on its own (see
      :mod:`onemin_relay.core.tool_embedded`): a line opening with ``{``, ``[{``,
      ``[TOOL_CALLS]`` or a ``json``/untagged code fence, or ``{`` or ``[{`` after a colon.
      A trailing newline or colon waits for the next delta, which decides.

    :meth:`feed` looks only at the new text plus at most one partial marker or opener, so its
    cost per delta does not grow with the reply. The pipeline emits what ``feed`` returns and,
    at the end, parses ``emitted + finish()`` (which is the whole reply) with ``tools.parse_reply``.
    """

    def __init__(self) -> None:
        self._started = False  # the first non-blank character has been seen
        self._partial = ""  # leading blanks, a possible fence, or a possible marker
        self._held: list[str] = []  # everything from a marker (or a leading JSON) on
        self._fences = 0  # code fence lines shown so far: odd while a fence is open

    @property
    def holding(self) -> bool:
        """Whether text is being held back because it may start a tool call."""
        return bool(self._held or self._partial.strip())

    def feed(self, text: str) -> str:
        """Add a delta; return the text that is safe to show now (maybe "")."""
        if self._held:
            self._held.append(text)
            return ""
        pending, self._partial = self._partial + text, ""
        if self._started:
            return self._scan(pending)
        body = pending.lstrip().lstrip("\ufeff").lstrip()
        if "```".startswith(body):  # only blanks so far, or a fence may be starting
            self._partial = pending
            return ""
        self._started = True
        if body.startswith(("{", "[", "```")):
            self._held.append(pending)
            return ""
        return self._scan(pending)

    def finish(self) -> str:
        """Everything held back; the splitter is then empty."""
        rest = self._partial + "".join(self._held)
        self._partial, self._held = "", []
        return rest

    def _scan(self, pending: str) -> str:
        marker = _marker_hold(pending)
        json = json_hold(pending, self._fences % 2 == 1)
        # the earlier hold wins; at the same place, a whole one
        cut, whole = marker if (marker[0], not marker[1]) <= (json[0], not json[1]) else json
        if whole:
            self._held.append(pending[cut:])
        else:
            self._partial = pending[cut:]
        if "```" in pending:
            self._fences += len(FENCE_LINE.findall(pending, 0, cut))
        return pending[:cut]


def _marker_hold(pending: str) -> tuple[int, bool]:
    """Where a marker (whole: True) or a possible start of one at the end (False) begins."""
    pos = 0
    while (found := _MARKER_START.search(pending, pos)) is not None:
        start = found.start()
        tail = pending[start : start + _LONGEST_MARKER]
        if tail.startswith(MARKERS):
            return start, True
        at_end = start + len(tail) == len(pending)
        if at_end and any(marker.startswith(tail) for marker in MARKERS):
            return start, False
        pos = start + 1
    return len(pending), False
