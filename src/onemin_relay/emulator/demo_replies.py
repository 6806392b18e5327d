"""Replies that read like a model's, for demo mode (``EmulatorConfig(replies="model")``).

The emulator reads the prompt as a model would, with a small parser of its own (it imports
nothing from the relay):

* a tool list (a ``Tools:`` block of ``- name: description`` lines, each optionally followed
  by ``  parameters: {JSON Schema}``, closed by a "To call…" line) → a call to the tool that
  best fits the last user message (or the one it is told it must call), with arguments valid
  for its schema, written in one of the shapes models use: a fenced JSON block, alone or
  after a short sentence, a bare JSON line after a sentence, or the ``<tool_calls>`` form;
* tool results after the last user message (``Tool result (…):`` blocks) → a sentence that
  reports them, instead of calling again;
* a request for JSON valid against a schema (``Respond with JSON only: … JSON Schema …:``
  followed by the schema) → an instance of it; for any JSON object → a small object;
* anything else → a short answer that does not repeat the prompt.

Which call shape is used depends on the prompt only, so a given prompt always gets the same
reply.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Mapping
from typing import Any

import msgspec

from onemin_relay.emulator.replies import Seen
from onemin_relay.emulator.schema_instance import instance

_TOOLS_HEADER = re.compile(r"(?:^|\n\n)Tools:\n")
_TOOL_LINE = re.compile(r"- ([^\s:]+)(?::[ ]?(.*))?")
_PARAMETERS = "  parameters: "
_MUST_CALL = re.compile(r"^You must call (\S+) now\.$", re.MULTILINE)
_JSON_SCHEMA = re.compile(r"Respond with JSON only:[^\n]*JSON Schema[^\n]*:\n")
_JSON_OBJECT = "Respond with one JSON object only"
_BLOCK = re.compile(r"(?:^|\n\n)(System|User|Assistant|Tool result(?: \(([^)\n]*)\))?):[ \n]?")
_CALL_LINE = re.compile(r"^\[tool call ([^\]]+)\] ([^\s(]+)\(", re.MULTILINE)
_GREETING = re.compile(r"^\W*(hi|hello|hey|good (morning|afternoon|evening))\b", re.IGNORECASE)
_COUNT_TO = re.compile(r"\bcount to (\d{1,2})\b", re.IGNORECASE)
_WORD = re.compile(r"[a-z0-9]+")
_NAME = re.compile(r"(?<![.!?]\s)(?<!^)(?<![.!?])\b([A-Z][\w'-]*(?: [A-Z][\w'-]*)*)")
_PLACE_FIELDS = ("city", "location", "place", "destination", "where")
_QUERY_FIELDS = ("query", "q", "question", "search", "search_query")
MAX_RESULT_CHARS = 300
MAX_QUERY_CHARS = 200


class Tool(msgspec.Struct, frozen=True):
    name: str
    description: str = ""
    parameters: dict[str, Any] | None = None


class Block(msgspec.Struct, frozen=True):
    """One transcript block: its label (``User``, ``Tool result`` …), its ref, its text."""

    label: str
    text: str
    ref: str | None = None


def model_reply(prompt: str, model: str, seen: Seen) -> str:
    """What ``model`` would answer to ``prompt``; a plain answer also says what else it was
    given (``seen``: images, files, a web search)."""
    conversation, tools, must_call = read_tools(prompt)
    schema_start = _JSON_SCHEMA.search(prompt)
    conversation = _before_json_rules(conversation)
    blocks = read_blocks(conversation)
    results = _results_since_last_user(blocks)
    if tools and not results:
        question = _last_user_text(blocks, conversation)
        return call_reply(_pick(tools, must_call, question), prompt, words_from(question))
    if schema_start is not None:
        schema = _schema_at(prompt, schema_start.end())
        return json.dumps(instance(schema), ensure_ascii=False)
    if _JSON_OBJECT in prompt:
        return json.dumps({"answer": _plain(blocks, conversation, model)})
    if results:
        return _report(results, blocks)
    return _plain(blocks, conversation, model) + _notes(seen)


def read_tools(prompt: str) -> tuple[str, list[Tool], str | None]:
    """The conversation before the tool list, the tools, and the tool it must call (if any)."""
    headers = list(_TOOLS_HEADER.finditer(prompt))
    if not headers:
        return prompt, [], None
    start = headers[-1]
    tools: list[Tool] = []
    lines = prompt[start.end() :].split("\n")
    for index, line in enumerate(lines):
        last = tools[-1] if tools else None
        if line.startswith("To call ") or (last is None and not line.startswith("- ")):
            must = _MUST_CALL.search("\n".join(lines[index:]))
            return prompt[: start.start()], tools, must[1] if must else None
        if (found := _TOOL_LINE.fullmatch(line)) is not None:
            tools.append(Tool(found[1], found[2] or ""))
        elif last is not None and line.startswith(_PARAMETERS):
            tools[-1] = Tool(last.name, last.description, _json_object(line))
        elif last is not None:  # a description of several lines
            tools[-1] = Tool(last.name, f"{last.description}\n{line}", last.parameters)
    return prompt[: start.start()], tools, None


def read_blocks(conversation: str) -> list[Block]:
    """The transcript's blocks; a prompt that is no transcript is one ``User`` block."""
    heads = list(_BLOCK.finditer(conversation))
    if not heads or heads[0].start() != 0:
        return [Block("User", conversation.strip())]
    ends = [head.start() for head in heads[1:]] + [len(conversation)]
    return [
        Block(head[1].split(" (")[0], conversation[head.end() : end].strip(), head[2])
        for head, end in zip(heads, ends, strict=True)
    ]


def call_reply(tool: Tool, prompt: str, words: Mapping[str, str] | None = None) -> str:
    """A call to ``tool`` with schema-valid arguments (``words``: what to write in string
    fields of those names), in a shape picked by the prompt."""
    arguments = instance(tool.parameters, words) if tool.parameters else {}
    call = json.dumps({"name": tool.name, "arguments": arguments}, ensure_ascii=False)
    fenced = f"```json\n{call}\n```"
    shapes = (
        fenced,
        f"I'll use {tool.name} for this.\n\n{fenced}",
        f"Let me call {tool.name}.\n{call}",
        f"<tool_calls>[{call}]</tool_calls>",
    )
    return shapes[zlib.crc32(prompt.encode()) % len(shapes)]


def _before_json_rules(conversation: str) -> str:
    for marker in (_JSON_SCHEMA.search(conversation), re.search(_JSON_OBJECT, conversation)):
        if marker is not None:
            return conversation[: marker.start()]
    return conversation


def _json_object(line: str) -> dict[str, Any] | None:
    try:
        value = json.loads(line.removeprefix(_PARAMETERS))
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _schema_at(prompt: str, start: int) -> Any:
    try:
        return json.JSONDecoder().raw_decode(prompt, start)[0]
    except ValueError:
        return {"type": "object"}


def _results_since_last_user(blocks: list[Block]) -> list[Block]:
    users = [i for i, block in enumerate(blocks) if block.label == "User"]
    after = blocks[users[-1] + 1 :] if users else blocks
    return [block for block in after if block.label == "Tool result"]


def _last_user_text(blocks: list[Block], conversation: str) -> str:
    users = [block.text for block in blocks if block.label == "User"]
    return users[-1] if users else conversation


def words_from(question: str) -> dict[str, str]:
    """What a model would fill in from the question: the place it names (the last run of
    capitalised words not opening a sentence) and the question itself as a search query."""
    words = dict.fromkeys(_QUERY_FIELDS, " ".join(question.split())[:MAX_QUERY_CHARS])
    places = [m[1] for m in _NAME.finditer(question) if m[1] not in ("I", "I'm")]
    if places:
        words.update(dict.fromkeys(_PLACE_FIELDS, places[-1]))
    return words


def _pick(tools: list[Tool], must_call: str | None, question: str) -> Tool:
    """The named tool, else the one whose name and description share most words with the
    question (the first on a tie)."""
    for tool in tools:
        if tool.name == must_call:
            return tool
    asked = set(_WORD.findall(question.lower()))

    def overlap(tool: Tool) -> int:
        words = _WORD.findall(f"{tool.name} {tool.description}".lower().replace("_", " "))
        return len(asked.intersection(words))

    return max(tools, key=overlap)


def _report(results: list[Block], blocks: list[Block]) -> str:
    """A sentence per tool result, naming the tool that produced it where the transcript
    says so (results refer to their call by id, or name the tool)."""
    names = {}
    for block in blocks:
        names.update(dict(_CALL_LINE.findall(block.text)))
    lines = []
    for result in results:
        name = names.get(result.ref or "", result.ref or "the tool")
        text = result.text[:MAX_RESULT_CHARS] + ("…" if len(result.text) > MAX_RESULT_CHARS else "")
        lines.append(f"Here is what {name} returned: {text}")
    return "\n".join(lines)


def _plain(blocks: list[Block], conversation: str, model: str) -> str:
    question = _last_user_text(blocks, conversation)
    if not question or _GREETING.match(question):
        return "Hello! How can I help you today?"
    count = _COUNT_TO.search(question)
    if count is not None and int(count[1]) > 0:
        return ", ".join(str(n) for n in range(1, int(count[1]) + 1)) + "."
    words = len(question.split())
    return (
        f"This is a demo answer: the built-in 1min.ai emulator stands in for {model}, so no "
        f"model read your {words}-word message. Run the relay with a 1min.ai key for real "
        "answers."
    )


def _notes(seen: Seen) -> str:
    noted = [
        f"{seen.images} image{'s' if seen.images > 1 else ''}" if seen.images else "",
        f"{seen.files} file{'s' if seen.files > 1 else ''}" if seen.files else "",
    ]
    shown = " and ".join(n for n in noted if n)
    return (f" (I see {shown}.)" if shown else "") + (" (web search on)" if seen.web_search else "")
