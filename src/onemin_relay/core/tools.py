"""Tool calling emulated in the prompt, for an upstream whose chat call has no ``tools``.

The pipeline appends :func:`render_tools` to the prompt, runs :func:`parse_reply` on the
answer, makes one more call with :func:`repair_prompt` on :class:`ToolCallError`, feeds a
streamed answer through :class:`ToolStreamSplitter`, and refuses a call that
:func:`repeated_call` finds looping. Everything here is pure.

``parse_reply`` trusts, in this order: the contract (``<tool_calls>JSON</tool_calls>``); the
tag forms other models are trained on, and the history line ``[tool call <id>] NAME({...})``
(all found by :mod:`onemin_relay.core.tool_parsing`); a JSON value (bare or in one code fence)
that is the whole reply; JSON that stands on its own among prose (a line of its own, a
``label: {...}`` or a fenced block; see :mod:`onemin_relay.core.tool_embedded`). A marked
block is always a call attempt: an unknown tool or bad JSON in it is an error. A bare JSON
reply is a call only if it is call-shaped and names declared tools; otherwise it is an answer.
JSON among prose is a call only if it is call-shaped, names declared tools, has valid
arguments and is not introduced as an example; otherwise it stays text, with no error.
Arguments are checked with the JSON Schema validator of :mod:`onemin_relay.core.structured`
(same cache, same no-fetch ``$ref`` rule, same paths).
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Sequence
from typing import Any

import msgspec
import orjson

from onemin_relay.core import structured
from onemin_relay.core.errors import InvalidRequest
from onemin_relay.core.prompt import flatten
from onemin_relay.core.tool_embedded import Embedded, find_embedded, prose_around
from onemin_relay.core.tool_parsing import (
    Candidate,
    ToolStreamSplitter,
    entries_of,
    find_marked,
    whole_json,
)
from onemin_relay.core.types import (
    Message,
    ResponseFormat,
    TextPart,
    ToolCall,
    ToolChoice,
    ToolSpec,
    Usage,
)

__all__ = [
    "MAX_IDENTICAL_CALLS",
    "ParsedReply",
    "ToolCallError",
    "ToolStreamSplitter",
    "check_tools",
    "parse_reply",
    "render_tools",
    "repair_prompt",
    "repeated_call",
    "requires_call",
]

MAX_IDENTICAL_CALLS = 3
MAX_ERRORS = structured.MAX_ERRORS
_CALL_SHAPE = '<tool_calls>[{"name":"<tool>","arguments":{...}}]</tool_calls>'
_ANY_OBJECT = ResponseFormat("json_object")


class ParsedReply(msgspec.Struct, frozen=True):
    """The prose to show (may be "") and the calls, in order, with fresh ids."""

    text: str
    calls: tuple[ToolCall, ...] = ()


class ToolCallError(ValueError):
    """The model clearly tried to call a tool but got it wrong; ``errors`` say how."""

    def __init__(self, errors: list[str], reply: str) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors
        self.reply = reply
        self.usage: Usage | None = None  # what the attempts so far cost, once known


# -- the request side ------------------------------------------------------------------


def requires_call(choice: ToolChoice | None) -> bool:
    """Whether the model must call a tool now (``required`` or a named tool)."""
    return choice is not None and choice.mode in ("required", "named")


def check_tools(tools: Sequence[ToolSpec], choice: ToolChoice | None) -> None:
    """Raise ``InvalidRequest`` for an empty or duplicate name, a bad parameters schema, or a
    choice that names no declared tool. Call it before spending an upstream call."""
    seen: set[str] = set()
    for index, tool in enumerate(tools):
        if not tool.name or tool.name in seen:
            problem = "is empty" if not tool.name else f"{tool.name!r} is declared twice"
            raise InvalidRequest(f"tools[{index}]: the name {problem}", param="tools")
        seen.add(tool.name)
        _schema_checked(tool, index)
    if requires_call(choice) and not tools:
        raise InvalidRequest(
            "tool_choice requires a tool call but no tools are given", param="tool_choice"
        )
    if choice is not None and choice.mode == "named" and choice.name not in seen:
        raise InvalidRequest(
            f"tool_choice names an undeclared tool: {choice.name!r}", param="tool_choice"
        )


def render_tools(
    tools: Sequence[ToolSpec], choice: ToolChoice | None, parallel: bool = True
) -> str:
    """The tool contract the pipeline appends to the prompt; "" when no tool may be called."""
    mode = choice.mode if choice is not None else "auto"
    if not tools or mode == "none":
        return ""
    shown = [_named_tool(tools, choice)] if choice is not None and mode == "named" else tools
    lines = ["Tools:", *map(_tool_line, shown)]
    if parallel:
        how = f"To call tools, reply with only {_CALL_SHAPE}, one entry per call"
    else:
        how = f"To call a tool, reply with only {_CALL_SHAPE}, exactly one entry"
    lines.append(f"{how}; arguments must be valid against the tool's parameters.")
    if mode == "auto":
        lines.append("Call tools only if useful; otherwise answer in plain text.")
    elif mode == "required":
        lines.append(f"You must call {'at least one tool' if parallel else 'a tool'} now.")
    else:
        lines.append(f"You must call {shown[0].name} now.")
    return "\n".join(lines)


def _tool_line(tool: ToolSpec) -> str:
    line = f"- {tool.name}"
    if tool.description and tool.description.strip():
        line += f": {tool.description.strip()}"
    if tool.parameters:
        line += f"\n  parameters: {orjson.dumps(tool.parameters).decode()}"
    return line


def _named_tool(tools: Sequence[ToolSpec], choice: ToolChoice) -> ToolSpec:
    for tool in tools:
        if tool.name == choice.name:
            return tool
    raise InvalidRequest(
        f"tool_choice names an undeclared tool: {choice.name!r}", param="tool_choice"
    )


def repair_prompt(
    original_prompt: str,
    reply: str,
    errors: list[str],
    tools: Sequence[ToolSpec],
    choice: ToolChoice | None,
) -> str:
    """The retry prompt: the prompt as first sent (with the contract), the failed answer, its
    errors and a one-line ask, as assistant and system blocks escaped like the transcript."""
    shown = reply[: structured.MAX_REPAIR_REPLY_CHARS]
    if len(reply) > structured.MAX_REPAIR_REPLY_CHARS:
        shown += f"\n[... {len(reply) - structured.MAX_REPAIR_REPLY_CHARS} more characters cut]"
    names = ", ".join(t.name for t in tools)
    if choice is not None and choice.mode == "named":
        ask = f"Answer again with only {_CALL_SHAPE} calling {choice.name}."
    elif requires_call(choice):
        ask = f"Answer again with only {_CALL_SHAPE}. Tools: {names}."
    else:
        ask = f"Answer again with only {_CALL_SHAPE}, or in plain text. Tools: {names}."
    feedback = "\n".join(["That tool call is not valid:", *(f"- {e}" for e in errors), ask])
    turns = [Message("assistant", (TextPart(shown),)), Message("system", (TextPart(feedback),))]
    return f"{original_prompt}\n\n{flatten(turns).text}"


# -- the reply side --------------------------------------------------------------------


def parse_reply(
    reply: str,
    tools: Sequence[ToolSpec],
    choice: ToolChoice | None = None,
    *,
    parallel: bool = True,
) -> ParsedReply:
    """The prose and tool calls of a reply (see the module doc for what counts as a call).

    Raises :class:`ToolCallError` for a botched call, a missing call when ``choice`` requires
    one, a call to another tool than the named one, or several calls when not ``parallel``.
    """
    if not tools or (choice is not None and choice.mode == "none"):
        return ParsedReply(reply)
    marked = find_marked(reply)
    if marked is not None:
        errors = list(marked.errors)
        calls = _resolve(marked.candidates, tools, errors)
        text = marked.prose
    elif whole_json(reply) is not None:
        errors = []
        calls = _from_whole_json(reply, tools, choice, errors)
        text = "" if calls or errors else reply
    else:
        errors = []
        calls, text = _from_embedded(reply, tools)
    if not errors:
        errors = _choice_errors(calls, choice, parallel)
    if errors:
        shown = errors[:MAX_ERRORS] + (
            ["(more errors not shown)"] if len(errors) > MAX_ERRORS else []
        )
        raise ToolCallError(shown, reply)
    return ParsedReply(text, tuple(calls))


def _from_whole_json(
    reply: str, tools: Sequence[ToolSpec], choice: ToolChoice | None, errors: list[str]
) -> list[ToolCall]:
    value = whole_json(reply)
    if value is None:
        return []
    found = entries_of(value, strict=True)
    if found is not None and all(_lookup(c.name, tools) for c in found):
        return _resolve(found, tools, errors)
    if choice is not None and choice.mode == "named" and isinstance(value, dict):
        # Forced to call one tool, models often answer with just its arguments.
        return _resolve([Candidate(choice.name or "", value)], tools, errors)
    # Call-shaped JSON naming no declared tool is an answer, unless a call is required.
    return _resolve(found, tools, errors) if found and requires_call(choice) else []


def _from_embedded(reply: str, tools: Sequence[ToolSpec]) -> tuple[list[ToolCall], str]:
    """The calls among prose (never an error: what is no valid call stays text), and the
    prose around them."""
    calls: list[ToolCall] = []
    cuts: list[Embedded] = []

    def names_tools(value: Any) -> bool:
        found = entries_of(value, strict=True)
        return found is not None and all(_lookup(c.name, tools) for c in found)

    for span in find_embedded(reply, names_tools):
        found = entries_of(span.value, strict=True) or []
        errors: list[str] = []
        resolved = _resolve(found, tools, errors)
        if not errors:
            calls.extend(resolved)
            cuts.append(span)
    return (calls, prose_around(reply, cuts)) if calls else ([], reply)


def _resolve(
    found: Sequence[Candidate], tools: Sequence[ToolSpec], errors: list[str]
) -> list[ToolCall]:
    """ToolCalls for the candidates that name a tool and carry valid arguments; the rest
    add their reasons to ``errors``."""
    calls: list[ToolCall] = []
    for number, candidate in enumerate(found, 1):
        tool = _lookup(candidate.name, tools)
        if tool is None:
            declared = ", ".join(t.name for t in tools)
            errors.append(f"call {number}: unknown tool {candidate.name!r} (tools: {declared})")
            continue
        arguments, problems = _arguments(candidate, tool)
        if problems:
            errors.extend(f"call {number} ({tool.name}): {p}" for p in problems)
            continue
        arguments_json = orjson.dumps(arguments).decode()
        calls.append(ToolCall(f"call_{secrets.token_hex(12)}", tool.name, arguments_json))
    return calls


def _lookup(name: str, tools: Sequence[ToolSpec]) -> ToolSpec | None:
    """The tool with this exact name, else the only one equal to it ignoring case; GPT models
    may write ``functions.<name>`` (their own namespace), which is tried as ``<name>``."""
    for candidate in dict.fromkeys((name, name.removeprefix("functions."))):
        found = [t for t in tools if t.name == candidate] or [
            t for t in tools if t.name.casefold() == candidate.casefold()
        ]
        if found:
            return found[0] if len(found) == 1 else None
    return None


def _arguments(candidate: Candidate, tool: ToolSpec) -> tuple[Any, list[str]]:
    arguments = candidate.arguments
    if candidate.text_params:
        arguments = _typed_params(arguments, tool.parameters or {})
    elif isinstance(arguments, str):
        try:
            arguments = orjson.loads(arguments) if arguments.strip() else {}
        except orjson.JSONDecodeError:
            return None, ["the arguments are a string that is not JSON"]
    elif arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        return None, [f"the arguments must be a JSON object, not {_kind(arguments)}"]
    try:
        return arguments, structured.validate(arguments, _format(tool))
    except InvalidRequest as exc:
        raise _tools_error(tool, exc) from None


def _typed_params(raw: dict[str, str], schema: dict[str, Any]) -> dict[str, Any]:
    """XML parameter texts: as strings where the schema says string, else as JSON if they parse."""
    properties = schema.get("properties")
    typed: dict[str, Any] = {}
    for key, text in raw.items():
        spec = properties.get(key) if isinstance(properties, dict) else None
        if isinstance(spec, dict) and spec.get("type") == "string":
            typed[key] = text
            continue
        try:
            typed[key] = orjson.loads(text)
        except orjson.JSONDecodeError:
            typed[key] = text
    return typed


def _choice_errors(calls: list[ToolCall], choice: ToolChoice | None, parallel: bool) -> list[str]:
    if not calls and requires_call(choice):
        needed = f"a call to {choice.name}" if choice and choice.mode == "named" else "a tool call"
        return [f"{needed} was required, but the reply has none"]
    errors: list[str] = []
    if choice is not None and choice.mode == "named":
        errors += [
            f"only {choice.name} may be called now, not {c.name}"
            for c in calls
            if c.name != choice.name
        ]
    if not parallel and len(calls) > 1:
        errors.append(f"only one tool call is allowed per reply, got {len(calls)}")
    return errors


# -- the loop guard --------------------------------------------------------------------


def repeated_call(
    history: Sequence[Message], calls: Sequence[ToolCall], limit: int = MAX_IDENTICAL_CALLS
) -> ToolCall | None:
    """The first call already made ``limit`` times before (same name, same arguments up to
    key order and spacing) by the assistant in ``history``; None if there is none."""
    made = Counter(_call_key(c) for m in history if m.role == "assistant" for c in m.tool_calls)
    return next((c for c in calls if made[_call_key(c)] >= limit), None)


def _call_key(call: ToolCall) -> tuple[str, str]:
    try:
        canonical = orjson.dumps(orjson.loads(call.arguments), option=orjson.OPT_SORT_KEYS)
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):
        return call.name, call.arguments
    return call.name, canonical.decode()


# -- small helpers ---------------------------------------------------------------------


def _format(tool: ToolSpec) -> ResponseFormat:
    if not tool.parameters:
        return _ANY_OBJECT
    return ResponseFormat("json_schema", name=None, schema=tool.parameters)


def _schema_checked(tool: ToolSpec, index: int) -> None:
    try:
        structured.check_schema(_format(tool))
    except InvalidRequest as exc:
        raise _tools_error(tool, exc, index) from None


def _tools_error(tool: ToolSpec, exc: InvalidRequest, index: int | None = None) -> InvalidRequest:
    """structured's schema errors speak of response_format; here the schema is a tool's."""
    where = f"tools[{index}]" if index is not None else f"tool {tool.name!r}"
    reason = exc.message.removeprefix("response_format: ")
    return InvalidRequest(f"{where} parameters: {reason}", param="tools")


def _kind(value: Any) -> str:
    kinds = {
        list: "an array",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
    }
    return "null" if value is None else kinds.get(type(value), type(value).__name__)
