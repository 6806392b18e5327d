"""Gemini's body conventions: field names in either case, and its OpenAPI-style schemas."""

from __future__ import annotations

from typing import Any

# Values under these keys are the caller's own data (function arguments, results, schemas):
# their keys are never renamed.
_OPAQUE_KEYS = frozenset(
    {
        "args",
        "response",
        "responseSchema",
        "responseJsonSchema",
        "parameters",
        "parametersJsonSchema",
    }
)


def camelize(value: Any) -> Any:
    """Gemini accepts snake_case and camelCase field names alike (the SDKs send both kinds,
    even in one body); fold them to camelCase before typing the body."""
    if isinstance(value, list):
        return [camelize(item) for item in value]
    if not isinstance(value, dict):
        return value
    folded: dict[str, Any] = {}
    for key, item in value.items():
        name = _to_camel(key) if "_" in key else key
        folded[name] = item if name in _OPAQUE_KEYS else camelize(item)
    return folded


def _to_camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


_SCHEMA_LISTS = frozenset({"anyOf", "oneOf", "allOf", "prefixItems"})
_SCHEMA_NODES = frozenset({"items", "additionalProperties", "not"})
_SCHEMA_INTS = frozenset(
    {"minItems", "maxItems", "minLength", "maxLength", "minProperties", "maxProperties"}
)


def openapi_to_json_schema(node: Any) -> Any:
    """Gemini's Schema (upper-case ``type``, ``nullable``, int64 counts as strings, snake or
    camel keys) as the JSON Schema it means. Property names are left as the client wrote them."""
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for raw_key, value in node.items():
        key = _to_camel(raw_key) if "_" in raw_key else raw_key
        if key == "type" and isinstance(value, str):
            out["type"] = value.lower()
        elif key == "properties" and isinstance(value, dict):
            out[key] = {name: openapi_to_json_schema(v) for name, v in value.items()}
        elif key in _SCHEMA_NODES:
            out[key] = openapi_to_json_schema(value)
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            out[key] = [openapi_to_json_schema(v) for v in value]
        elif key in _SCHEMA_INTS and isinstance(value, str) and value.isascii() and value.isdigit():
            out[key] = int(value)
        elif key not in ("nullable", "propertyOrdering"):
            out[key] = value
    if node.get("nullable") is True and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out
