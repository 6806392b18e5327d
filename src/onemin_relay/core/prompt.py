r"""Flatten a conversation into the single prompt string 1min.ai takes per call.

1min.ai's chat call has one ``prompt`` string plus attachment lists and no field for history or
a system prompt, so the relay sends the conversation as a transcript. This is the text the
upstream model sees; the rules are:

1. **Single user message.** When exactly one message remains (after rule 6) and it is a user
   message, the prompt is its text verbatim: no label, no marker, no escaping, zero extra tokens.
2. **Transcript.** Otherwise each message becomes one block and blocks are joined by a blank
   line (``"\n\n"``). A block is ``"<Label>: <text>"``; when the message has no text but has
   other lines (rule 3, rule 4) it is ``"<Label>:"`` followed by those lines. Labels: ``System``
   (roles system and developer), ``User``, ``Assistant``, and ``Tool result (<ref>)`` for a tool
   message, where ``<ref>`` is its ``name``, else its ``tool_call_id`` (``)``, ``\n`` and ``\r``
   in it become ``_``); with neither, the label is ``Tool result``. The text of a message is its
   text parts joined by ``"\n"``. A message's ``name`` (other than a tool's) is not shown.
3. **Tool calls.** Each call of a message follows its text on its own line:
   ``[tool call <id>] <name>(<arguments as sent>)``.
4. **Attachments** go with the call (``FlatPrompt.images`` / ``FlatPrompt.files``, every part of
   every message, in order). In a transcript each one also adds a marker line at the end of its
   message's block: ``[image <n>]`` or ``[file <n>: <filename or media type>]``, where ``<n>``
   counts images (or files) across the conversation from 1, so ``[image n]`` is ``images[n-1]``.
5. **Escaping.** A line of a block's body (text, tool call and marker lines) that starts, after
   any number of backslashes, with a label and ``:`` gets one more leading backslash, so only
   real block headers start with a bare label. A line starts at the start of the body or after
   ``\n`` or ``\r``. :func:`parse_transcript` removes exactly one backslash from such lines.
6. **Skipping.** A message with no text, no attachment and no tool call is left out.
7. **No trailing cue.** Nothing is appended after the last block (no ``Assistant:`` cue and no
   "do not prefix your answer" instruction): it would cost tokens on every call, and the models
   answer a plain transcript well.

Example (system, user with an image, assistant with a tool call, tool result, user)::

    System: Be brief.

    User: What is this?
    [image 1]

    Assistant: Let me look it up.
    [tool call call_1] lookup({"q":"cat"})

    Tool result (call_1): {"breed":"tabby"}

    User: Thanks. I typed this line:
    \User: not a header
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import msgspec

from onemin_relay.core.types import FilePart, ImagePart, Message, Part, Role, TextPart

__all__ = ["FlatPrompt", "flatten", "parse_transcript"]

_LABELS: dict[Role, str] = {
    "system": "System",
    "developer": "System",
    "user": "User",
    "assistant": "Assistant",
}
_ROLES: dict[str, Role] = {"System": "system", "User": "user", "Assistant": "assistant"}
_LABEL = r"(?:System|User|Assistant|Tool result(?: \([^)\r\n]*\))?):"
_LABEL_AT = re.compile(r"\\*" + _LABEL)
# A line break followed by a (possibly escaped) label; starting with a literal class keeps
# the scan fast. The start of the text is checked separately.
_BREAK_BEFORE_LABEL = re.compile(r"([\r\n])(?=\\*" + _LABEL + ")")
_BREAK_BEFORE_ESCAPED = re.compile(r"([\r\n])\\(?=\\*" + _LABEL + ")")
_HEADER = re.compile(r"(?:(System|User|Assistant)|Tool result(?: \(([^)\r\n]*)\))?):")
_LABEL_WORDS = ("System", "User", "Assistant", "Tool result")
_REF_SAFE = str.maketrans({")": "_", "\n": "_", "\r": "_"})


class FlatPrompt(msgspec.Struct, frozen=True):
    """The prompt text and every attachment of the conversation, in order."""

    text: str
    images: tuple[ImagePart, ...] = ()
    files: tuple[FilePart, ...] = ()


def flatten(messages: Sequence[Message]) -> FlatPrompt:
    """Turn a conversation into one prompt string plus its attachments (see the module doc)."""
    kept = [m for m in messages if m.text or m.tool_calls or any(map(_is_attachment, m.parts))]
    images = tuple(p for m in kept for p in m.parts if isinstance(p, ImagePart))
    files = tuple(p for m in kept for p in m.parts if isinstance(p, FilePart))
    if len(kept) == 1 and kept[0].role == "user":
        return FlatPrompt(kept[0].text, images, files)
    return FlatPrompt(_transcript(kept), images, files)


def _is_attachment(part: Part) -> bool:
    return not isinstance(part, TextPart)


def _transcript(messages: Sequence[Message]) -> str:
    blocks: list[str] = []
    image_no = file_no = 0
    for message in messages:
        text = message.text
        lines = [text] if text else []
        lines.extend(f"[tool call {c.id}] {c.name}({c.arguments})" for c in message.tool_calls)
        for part in message.parts:
            if isinstance(part, ImagePart):
                image_no += 1
                lines.append(f"[image {image_no}]")
            elif isinstance(part, FilePart):
                file_no += 1
                lines.append(f"[file {file_no}: {_file_ref(part)}]")
        body = _escape("\n".join(lines))
        blocks.append(f"{_label(message)}: {body}" if text else f"{_label(message)}:\n{body}")
    return "\n\n".join(blocks)


def _label(message: Message) -> str:
    if message.role != "tool":
        return _LABELS[message.role]
    ref = message.name or message.tool_call_id
    return f"Tool result ({ref.translate(_REF_SAFE)})" if ref else "Tool result"


def _file_ref(part: FilePart) -> str:
    return " ".join((part.filename or part.media_type).splitlines())


def _escape(body: str) -> str:
    if not any(word in body for word in _LABEL_WORDS):
        return body
    body = _BREAK_BEFORE_LABEL.sub(r"\1\\", body)
    return "\\" + body if _LABEL_AT.match(body) else body


def _unescape(text: str) -> str:
    text = _BREAK_BEFORE_ESCAPED.sub(r"\1", text)
    return text[1:] if text.startswith("\\") and _LABEL_AT.match(text, 1) else text


def parse_transcript(text: str) -> tuple[Message, ...]:
    """Parse a rule-2 transcript back into messages (for tests and debugging).

    Normalised on the way: developer comes back as system; a message's text, tool call lines
    and attachment markers come back as one text part; a tool message's ``<ref>`` comes back as
    its ``tool_call_id``. Raises ``ValueError`` on text that :func:`flatten` cannot produce.
    """
    if not text:
        return ()
    blocks: list[tuple[re.Match[str], list[str]]] = []
    for line in text.split("\n"):
        header = _HEADER.match(line)
        if header is None:
            if not blocks:
                raise ValueError("a transcript starts with a label such as 'User:'")
            blocks[-1][1].append(line)
            continue
        if blocks and blocks[-1][1][-1:] != [""]:
            raise ValueError(f"no blank line before {header.group(0)!r}")
        if blocks:
            blocks[-1][1].pop()
        rest = line[header.end() :]
        blocks.append((header, [rest.removeprefix(" ")] if rest else []))
    return tuple(_message(header, lines) for header, lines in blocks)


def _message(header: re.Match[str], lines: list[str]) -> Message:
    label, ref = header.group(1, 2)
    parts = (TextPart(_unescape("\n".join(lines))),)
    if label is None:
        return Message(role="tool", parts=parts, tool_call_id=ref)
    return Message(role=_ROLES[label], parts=parts)
