"""A small valid instance of a JSON Schema, as a model would write for a tool call or a
JSON answer in demo mode.

Covers what tool and response schemas use: ``type`` (one or a list), ``const``, ``enum``,
``$ref`` into the same document, ``allOf`` / ``anyOf`` / ``oneOf`` (the first usable branch),
required properties of objects (nested), arrays with ``items`` / ``prefixItems`` and
``minItems``, string lengths, ``format`` and a best-effort ``pattern``, and number bounds
with ``multipleOf``. Anything it cannot satisfy comes back as a plausible value anyway: the
relay's validator, not this module, is the judge.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, NamedTuple

MAX_DEPTH = 16
OPTIONAL_ITEM_DEPTH = 2  # below this, arrays get only the items they need
_FORMATS = {
    "date-time": "2026-01-01T12:00:00Z",
    "date": "2026-01-01",
    "time": "12:00:00Z",
    "email": "ada@example.com",
    "uri": "https://example.com",
    "url": "https://example.com",
    "hostname": "example.com",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
    "uuid": "123e4567-e89b-12d3-a456-426614174000",
}
# Words a model would put in a field of that name; any other string field gets "example".
_BY_NAME = {
    "city": "Paris",
    "location": "Paris",
    "place": "Paris",
    "country": "France",
    "title": "An example",
    "language": "en",
    "unit": "celsius",
    "query": "example search",
}
_PATTERN_TRIES = ("example", "a", "A", "1", "0", "abc", "ABC", "A1", "a-1", "2026-01-01")
_TYPE_ORDER = ("object", "array", "string", "integer", "number", "boolean", "null")


def instance(schema: Any, words: Mapping[str, str] | None = None) -> Any:
    """A value valid for ``schema`` (its ``$ref`` resolve inside it). ``words`` are what to
    write in string fields of those names (say the city the user asked about), else a
    fitting word for the name, else "example"."""
    return _value(schema, _Context(schema, {**_BY_NAME, **(words or {})}), "", 0, 0)


class _Context(NamedTuple):
    root: Any  # where $ref resolve
    words: Mapping[str, str]  # by property name, lower case


def _value(schema: Any, ctx: _Context, name: str, depth: int, index: int) -> Any:
    """``schema``'s value for property ``name``; ``index`` is the position in an array,
    which makes items differ (for ``uniqueItems``)."""
    if not isinstance(schema, dict) or depth > MAX_DEPTH:
        return _text(name, ctx) if schema is not False else None
    schema = _flatten(schema, ctx.root, depth)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][index % len(schema["enum"])]
    branches = schema.get("anyOf") or schema.get("oneOf")
    if isinstance(branches, list) and branches:
        return _value(_preferred(branches, ctx.root, depth), ctx, name, depth + 1, index)
    kind = _kind(schema)
    if kind == "object":
        return _object(schema, ctx, depth, index)
    if kind == "array":
        return _array(schema, ctx, name, depth)
    if kind in ("integer", "number"):
        return _number(schema, index, integer=kind == "integer")
    if kind == "boolean":
        return index % 2 == 0
    if kind == "null":
        return None
    return _string(schema, _text(name, ctx), index)


def _flatten(schema: dict[str, Any], root: Any, depth: int) -> dict[str, Any]:
    """The schema with its ``$ref`` followed and its ``allOf`` merged in."""
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#") and depth <= MAX_DEPTH:
        target = _pointer(root, ref[1:])
        if isinstance(target, dict):
            rest = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**_flatten(target, root, depth + 1), **rest}
    parts = schema.get("allOf")
    if not isinstance(parts, list):
        return schema
    merged = {k: v for k, v in schema.items() if k != "allOf"}
    for part in parts:
        if isinstance(part, dict):
            part = _flatten(part, root, depth + 1)
            properties = {**part.get("properties", {}), **merged.get("properties", {})}
            required = [*merged.get("required", []), *part.get("required", [])]
            merged = {**part, **merged, "properties": properties, "required": required}
    return merged


def _pointer(root: Any, pointer: str) -> Any:
    node = root
    for raw in pointer.split("/")[1:]:
        key = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict):
            node = node.get(key)
        elif isinstance(node, list) and key.isascii() and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            return None
    return node


def _preferred(branches: list[Any], root: Any, depth: int) -> Any:
    """The first branch that is not just ``null`` (models fill in optional values)."""
    for branch in branches:
        if not (isinstance(branch, dict) and _kind(_flatten(branch, root, depth)) == "null"):
            return branch
    return branches[0]


def _kind(schema: dict[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [k for k in _TYPE_ORDER if k in kind and k != "null"] or ["null"]
        return kinds[0]
    if isinstance(kind, str):
        return kind
    if "properties" in schema or "required" in schema:
        return "object"
    if "items" in schema or "prefixItems" in schema:
        return "array"
    if any(k in schema for k in ("minimum", "maximum", "exclusiveMinimum", "multipleOf")):
        return "number"
    return "string"


def _object(schema: dict[str, Any], ctx: _Context, depth: int, index: int) -> dict[str, Any]:
    properties = schema.get("properties")
    properties = properties if isinstance(properties, dict) else {}
    extra = schema.get("additionalProperties")
    names = [n for n in schema.get("required", []) if isinstance(n, str)]
    wanted = schema.get("minProperties", 0)
    names += [n for n in properties if n not in names][: max(0, wanted - len(names))]
    value: dict[str, Any] = {}
    for key in names:
        spec = properties.get(key, extra if isinstance(extra, dict) else {})
        value[key] = _value(spec, ctx, key, depth + 1, index)
    return value


def _array(schema: dict[str, Any], ctx: _Context, name: str, depth: int) -> list[Any]:
    prefix = schema.get("prefixItems")
    prefix = prefix if isinstance(prefix, list) else []
    items = schema.get("items", {})
    count = max(len(prefix), schema.get("minItems", 0))
    if count == 0 and depth <= OPTIONAL_ITEM_DEPTH and schema.get("maxItems", 1) > 0:
        count = 1 if items is not False else 0  # a model lists something; not in deep trees
    values = [_value(p, ctx, name, depth + 1, 0) for p in prefix]
    values += [_value(items, ctx, name, depth + 1, i) for i in range(len(values), count)]
    return values


def _number(schema: dict[str, Any], index: int, *, integer: bool) -> int | float:
    step = 1 if integer else 0.5
    low, high = schema.get("minimum"), schema.get("maximum")
    if isinstance(schema.get("exclusiveMinimum"), int | float):
        low = schema["exclusiveMinimum"] + step
    if isinstance(schema.get("exclusiveMaximum"), int | float):
        high = schema["exclusiveMaximum"] - step
    multiple = schema.get("multipleOf")
    value: float = 1 + index * (multiple if isinstance(multiple, int | float) else 1)
    if low is not None and value < low:
        value = low
    if high is not None and value > high:
        value = high
    if isinstance(multiple, int | float) and multiple > 0:
        value = math.ceil(value / multiple) * multiple
        if high is not None and value > high:
            value -= multiple
    if integer:
        return math.ceil(value)
    return int(value) if float(value).is_integer() else value


def _string(schema: dict[str, Any], word: str, index: int) -> str:
    text = _FORMATS.get(schema.get("format", ""), word)
    if index and "format" not in schema:
        text = f"{text} {index + 1}"
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        text = _matching(pattern, text)
    low, high = schema.get("minLength", 0), schema.get("maxLength")
    if len(text) < low:
        text += "x" * (low - len(text))
    return text[:high] if isinstance(high, int) else text


def _matching(pattern: str, preferred: str) -> str:
    try:
        compiled = re.compile(pattern)
    except re.error:
        return preferred
    for candidate in (preferred, *_PATTERN_TRIES):
        if compiled.search(candidate):
            return candidate
    return preferred


def _text(name: str, ctx: _Context) -> str:
    return ctx.words.get(name.lower(), "example")
