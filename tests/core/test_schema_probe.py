"""Schemas a hostile client may send: a ``$ref`` that indexes an array with something that is
no index (``x``, ``²``) is a schema error (400) for the relay, and the demo emulator answers
past it instead of failing."""

from __future__ import annotations

from typing import Any

import pytest

from onemin_relay.core.errors import InvalidRequest
from onemin_relay.core.structured import check_schema
from onemin_relay.core.types import ResponseFormat
from onemin_relay.emulator.schema_instance import instance


def _indexing(segment: str) -> dict[str, Any]:
    pair = {"type": "array", "prefixItems": [{"type": "string"}]}
    ref = {"$ref": f"#/properties/pair/prefixItems/{segment}"}
    return {"type": "object", "properties": {"pair": pair, "x": ref}, "required": ["x"]}


@pytest.mark.parametrize("segment", ["x", "²", "7"])
def test_a_ref_indexing_an_array_badly_is_invalid(segment: str) -> None:
    fmt = ResponseFormat("json_schema", "probe", _indexing(segment))
    with pytest.raises(InvalidRequest, match=r"unresolvable \$ref"):
        check_schema(fmt)


def test_a_ref_indexing_an_array_well_is_valid() -> None:
    check_schema(ResponseFormat("json_schema", "probe", _indexing("0")))


@pytest.mark.parametrize("segment", ["x", "²", "0"])
def test_the_emulator_fills_a_schema_whatever_its_refs_index(segment: str) -> None:
    assert "x" in instance(_indexing(segment))
