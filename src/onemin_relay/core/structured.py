"""Structured output (JSON mode, JSON Schema) for an upstream that can only be asked in words.

1min.ai has no ``response_format``: the relay adds :func:`instructions` to the prompt, pulls the
JSON out of the reply (:func:`extract_json`), checks it (:func:`validate`) and, when it fails,
asks again with :func:`repair_prompt`. :func:`parse_reply` is extract + validate + normalise.
The pipeline does the calls; everything here is pure.

Limits (schemas and replies are public input):

* a schema nests at most ``MAX_SCHEMA_DEPTH`` (64) objects/arrays deep (checking it then takes
  jsonschema at most ~520 of Python's 1000 frames) and its compact JSON is at most
  ``MAX_SCHEMA_BYTES`` (64 KiB; it is sent, and billed, with every call);
* ``$ref`` is resolved only inside the schema (and the JSON Schema meta-schemas): jsonschema's
  default registry would fetch remote references with ``urlopen``, which is I/O and an SSRF hole;
* a reply value nests at most ``MAX_VALUE_DEPTH`` (128) levels: deeper values are a validation
  error, because jsonschema recurses in Python and orjson serialises at most 254 levels;
* :func:`extract_json` resumes each bracket scan where the previous one ended, so it reads
  every character at most once; it tries at most ``MAX_CANDIDATES`` (256) fenced blocks and
  256 bracketed spans, and gives up on brackets nested deeper than ``MAX_VALUE_DEPTH``;
* integers beyond 64 bits come back as floats (orjson), as they would in a JavaScript client.

``strict`` (OpenAI) promises that the answer matches the schema; OpenAI also demands strict
schemas (``additionalProperties: false``, every property required). The relay validates every
schema-bound answer whatever ``strict`` says, and validates the schema as given, without
rewriting it; ``strict`` is kept for the pipeline's choice of what to do when retries run out.
``format`` is an annotation (the 2020-12 default): shown to the model, not checked.
The schema goes into the prompt in the client's key order, not sorted: OpenAI models write
properties in schema order, and clients rely on it (e.g. "reasoning" before "answer").
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Any, Literal

import jsonschema
import jsonschema.exceptions
import jsonschema.protocols
import jsonschema_specifications
import orjson
import referencing
import referencing.exceptions
import referencing.jsonschema
from jsonschema.validators import validator_for

from onemin_relay.core.errors import InvalidRequest
from onemin_relay.core.prompt import flatten
from onemin_relay.core.types import Message, ResponseFormat, TextPart, Usage

__all__ = [
    "MAX_CANDIDATES",
    "MAX_ERRORS",
    "MAX_REPAIR_REPLY_CHARS",
    "MAX_SCHEMA_BYTES",
    "MAX_SCHEMA_DEPTH",
    "MAX_VALUE_DEPTH",
    "ResponseFormat",
    "StructuredOutputError",
    "check_schema",
    "extract_json",
    "instructions",
    "parse_reply",
    "repair_prompt",
    "validate",
]

MAX_SCHEMA_DEPTH = 64
MAX_SCHEMA_BYTES = 64 * 1024
MAX_VALUE_DEPTH = 128
MAX_CANDIDATES = 256
MAX_ERRORS = 5
MAX_ERROR_CHARS = 200
MAX_REPAIR_REPLY_CHARS = 4000
CACHE_MAX_ENTRIES = 256
CACHE_MAX_CHARS = 2 * 1024 * 1024

_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_FENCE = re.compile(r"^[ \t]*```", re.MULTILINE)
_OPENER = re.compile(r"[\[{]")
_TOKEN = re.compile(r'[\[\]{}"]')
# The rest of a JSON string after its opening quote; possessive, so it never backtracks.
_STRING_TAIL = re.compile(r'[^"\\]*+(?:\\.[^"\\]*+)*+"', re.DOTALL)
_OPENER_OF = {"}": "{", "]": "["}
_NO_RETRIEVAL = referencing.Registry()
_NO_CODE = "no prose, no code fences."
_DEFAULT_DIALECT = jsonschema.Draft202012Validator.META_SCHEMA["$id"]
_KINDS = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean"}


class StructuredOutputError(ValueError):
    """The reply holds no JSON, or JSON that fails the format; ``errors`` say why."""

    def __init__(self, errors: list[str], reply: str) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors
        self.reply = reply
        self.usage: Usage | None = None  # what the attempts so far cost, once known


# -- the request side ------------------------------------------------------------------


def check_schema(fmt: ResponseFormat) -> None:
    """Raise ``InvalidRequest`` (param ``response_format``) for a bad name or schema."""
    if fmt.name is not None and not _NAME.fullmatch(fmt.name):
        raise _invalid("the name must be 1-64 characters of a-z, A-Z, 0-9, '_' or '-'")
    if fmt.kind == "json_schema":
        _compiled(fmt)


def instructions(fmt: ResponseFormat) -> str:
    """The block the pipeline appends to the prompt ("" for plain text); deterministic."""
    if fmt.kind == "text":
        return ""
    if fmt.kind == "json_object":
        return f"Respond with one JSON object only: {_NO_CODE}"
    label = f' "{fmt.name}"' if fmt.name else ""
    if fmt.description:
        label += f" ({fmt.description})"
    return (
        f"Respond with JSON only: {_NO_CODE} It must be valid against the JSON Schema{label}:\n"
        f"{_schema_text(fmt)}"
    )


def repair_prompt(original_prompt: str, reply: str, errors: list[str], fmt: ResponseFormat) -> str:
    """The retry prompt: the prompt as first sent, the failed answer, its errors, a short ask.

    The answer and the feedback are added as an assistant block and a system block in the
    transcript format of :mod:`onemin_relay.core.prompt` (so they are escaped the same way).
    An answer longer than ``MAX_REPAIR_REPLY_CHARS`` is cut, with a note saying how much.
    """
    shown = reply[:MAX_REPAIR_REPLY_CHARS]
    if len(reply) > MAX_REPAIR_REPLY_CHARS:
        shown += f"\n[... {len(reply) - MAX_REPAIR_REPLY_CHARS} more characters cut]"
    target = (
        "one JSON object" if fmt.kind == "json_object" else "JSON that is valid against the schema"
    )
    feedback = "\n".join(
        [
            "That answer is not valid:",
            *(f"- {e}" for e in errors),
            f"Answer again with only {target}: {_NO_CODE}",
        ]
    )
    turns = [Message("assistant", (TextPart(shown),)), Message("system", (TextPart(feedback),))]
    return f"{original_prompt}\n\n{flatten(turns).text}"


# -- the reply side --------------------------------------------------------------------


def parse_reply(text: str, fmt: ResponseFormat) -> str:
    """Extract and validate the reply's JSON and return it compact; plain text passes as is."""
    if fmt.kind == "text":
        return text
    value = extract_json(text)
    errors = validate(value, fmt)
    if errors:
        raise StructuredOutputError(errors, text)
    return orjson.dumps(value).decode()


def extract_json(text: str) -> Any:
    """The JSON value in a model reply, tried in this order (the first that parses wins):

    the whole reply (after a BOM and whitespace); each fenced block (a line starting with
    three backticks, up to the next such line); each top-level ``{...}`` or ``[...]`` of the
    reply, found by a bracket scan that skips JSON strings. A span whose brackets do not pair
    up is skipped; an unclosed one ends the search (the reply was probably cut off), because
    a complete inner object of a truncated answer is not the answer.
    """
    body = text.strip().lstrip("\ufeff")
    for candidate in _whole_and_fenced(body):
        try:
            return orjson.loads(candidate)
        except orjson.JSONDecodeError:
            continue
    return _first_bracketed(text)


def validate(value: Any, fmt: ResponseFormat) -> list[str]:
    """Why ``value`` fails ``fmt``: at most ``MAX_ERRORS`` messages, each led by its JSON path.

    Raises ``InvalidRequest`` if the schema itself is bad (including a ``$ref`` that turns out
    to be unresolvable only while validating).
    """
    if fmt.kind == "text":
        return []
    if _nests_deeper(value, MAX_VALUE_DEPTH):
        return [f"$: the value nests deeper than {MAX_VALUE_DEPTH} levels"]
    if fmt.kind == "json_object":
        kind = "null" if value is None else _KINDS.get(type(value), type(value).__name__)
        return [] if isinstance(value, dict) else [f"$: expected a JSON object, got {kind}"]
    validator = _compiled(fmt)
    try:
        found = list(islice(validator.iter_errors(value), MAX_ERRORS + 1))
    except RecursionError:
        return ["$: the value nests too deeply to validate against this schema"]
    except referencing.exceptions.Unresolvable as exc:
        raise _invalid(f"the schema has an unresolvable $ref: {exc.ref}") from None
    messages = [_clip(f"{error.json_path}: {error.message}") for error in found[:MAX_ERRORS]]
    if len(found) > MAX_ERRORS:
        messages.append("(more errors not shown)")
    return messages


def _whole_and_fenced(text: str) -> Iterator[str]:
    yield text
    fences = list(islice(_FENCE.finditer(text), 2 * MAX_CANDIDATES))
    for opening, closing in zip(fences[::2], fences[1::2], strict=False):
        yield text[opening.end() : closing.start()].partition("\n")[2]


def _first_bracketed(reply: str) -> Any:
    first_error = ""
    pos = 0
    for _ in range(MAX_CANDIDATES):
        opener = _OPENER.search(reply, pos)
        if opener is None:
            break
        start = opener.start()
        pos, outcome = _span_end(reply, start)
        if outcome == "unclosed":
            raise _no_json(
                f"the reply ends before the {reply[start]!r} at character {start} is closed", reply
            )
        if outcome == "too_deep":
            raise _no_json(f"the reply nests deeper than {MAX_VALUE_DEPTH} levels", reply)
        if outcome == "balanced":
            try:
                return orjson.loads(reply[start:pos])
            except orjson.JSONDecodeError as exc:
                first_error = first_error or f"the JSON at character {start} does not parse: {exc}"
    else:
        raise _no_json(f"no JSON in the first {MAX_CANDIDATES} bracketed spans of the reply", reply)
    raise _no_json(first_error or "the reply holds no JSON object or array", reply)


def _span_end(
    text: str, start: int
) -> tuple[int, Literal["balanced", "mismatched", "unclosed", "too_deep"]]:
    """Where the bracket at ``start`` closes (outside JSON strings), and how the span ended."""
    stack: list[str] = []
    pos = start
    while (token := _TOKEN.search(text, pos)) is not None:
        char, pos = token.group(), token.end()
        if char == '"':
            tail = _STRING_TAIL.match(text, pos)
            if tail is None:
                break
            pos = tail.end()
        elif char in "[{":
            stack.append(char)
            if len(stack) > MAX_VALUE_DEPTH:
                return pos, "too_deep"
        elif stack.pop() != _OPENER_OF[char]:
            return pos, "mismatched"
        elif not stack:
            return pos, "balanced"
    return len(text), "unclosed"


# -- schemas and their compiled validators ---------------------------------------------


class _ValidatorCache:
    """A thread-safe LRU of compiled validators keyed by schema text, capped in count and size."""

    def __init__(self, max_entries: int, max_chars: int) -> None:
        self.max_entries = max_entries
        self.max_chars = max_chars
        self._entries: OrderedDict[str, jsonschema.protocols.Validator] = OrderedDict()
        self._chars = 0
        self._lock = threading.Lock()

    def get(
        self, key: str, build: Callable[[str], jsonschema.protocols.Validator]
    ) -> jsonschema.protocols.Validator:
        with self._lock:
            if (hit := self._entries.get(key)) is not None:
                self._entries.move_to_end(key)
                return hit
        validator = build(key)  # outside the lock: two threads may build the same one, harmlessly
        with self._lock:
            if key not in self._entries:
                self._entries[key] = validator
                self._chars += len(key)
            while len(self._entries) > self.max_entries or self._chars > self.max_chars:
                self._chars -= len(self._entries.popitem(last=False)[0])
        return validator


_CACHE = _ValidatorCache(CACHE_MAX_ENTRIES, CACHE_MAX_CHARS)


def _compiled(fmt: ResponseFormat) -> jsonschema.protocols.Validator:
    return _CACHE.get(_schema_text(fmt), _compile)


def _schema_text(fmt: ResponseFormat) -> str:
    """The schema as compact JSON: the prompt text and the cache key (checked by _compile)."""
    schema = fmt.schema
    if not isinstance(schema, dict):
        raise _invalid("a json_schema response format needs a schema object")
    try:
        data = orjson.dumps(schema)  # orjson stops at 255 levels, so no RecursionError here
    except orjson.JSONEncodeError as exc:
        raise _invalid(f"the schema cannot be encoded as JSON: {exc}") from None
    if len(data) > MAX_SCHEMA_BYTES:
        raise _invalid(f"the schema is larger than {MAX_SCHEMA_BYTES} bytes of compact JSON")
    return data.decode()


def _compile(schema_text: str) -> jsonschema.protocols.Validator:
    """Check a schema against its meta-schema and every ``$ref`` in it, then build a validator."""
    schema = orjson.loads(schema_text)
    if _nests_deeper(schema, MAX_SCHEMA_DEPTH):
        raise _invalid(f"the schema nests deeper than {MAX_SCHEMA_DEPTH} levels")
    dialect = schema.get("$schema", _DEFAULT_DIALECT)
    # Given a default, validator_for returns it for an unknown $schema (and does not warn).
    cls = validator_for({"$schema": dialect}, default=None) if isinstance(dialect, str) else None
    if cls is None:
        raise _invalid(f"unsupported $schema: {_clip(repr(dialect))}")
    try:
        cls.check_schema(schema)
    except jsonschema.exceptions.SchemaError as exc:
        raise _invalid(_clip(f"invalid JSON Schema at {exc.json_path}: {exc.message}")) from None
    _check_refs(cls, schema)
    return cls(schema, registry=_NO_RETRIEVAL)


def _check_refs(cls: type[jsonschema.protocols.Validator], schema: dict[str, Any]) -> None:
    """Resolve every ``$ref``/``$dynamicRef`` now, each from its own base URI, without fetching."""
    specification = referencing.jsonschema.specification_with(cls.ID_OF(cls.META_SCHEMA))
    root = specification.create_resource(schema)
    pending = [(jsonschema_specifications.REGISTRY.resolver_with_root(root), root)]
    while pending:
        resolver, resource = pending.pop()
        contents = resource.contents
        for keyword in ("$ref", "$dynamicRef"):
            ref = contents.get(keyword) if isinstance(contents, dict) else None
            if isinstance(ref, str):
                try:
                    resolver.lookup(ref)
                except (referencing.exceptions.Unresolvable, ValueError):
                    # ValueError: an array indexed by no number (referencing's int())
                    raise _invalid(
                        f"the schema has an unresolvable {keyword}: {_clip(ref)}"
                    ) from None
        pending.extend((resolver.in_subresource(sub), sub) for sub in resource.subresources())


# -- small helpers ---------------------------------------------------------------------


def _nests_deeper(value: Any, limit: int) -> bool:
    """Whether objects/arrays nest more than ``limit`` deep (iterative: no recursion limit)."""
    pending = [(value, 1)]
    while pending:
        node, depth = pending.pop()
        children: Iterable[Any]
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return True
        pending.extend((child, depth + 1) for child in children)
    return False


def _clip(message: str) -> str:
    return message if len(message) <= MAX_ERROR_CHARS else message[: MAX_ERROR_CHARS - 3] + "..."


def _invalid(message: str) -> InvalidRequest:
    return InvalidRequest(f"response_format: {message}", param="response_format")


def _no_json(message: str, reply: str) -> StructuredOutputError:
    return StructuredOutputError([message], reply)
