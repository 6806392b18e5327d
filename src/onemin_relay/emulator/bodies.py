"""Reading JSON request bodies: recorded first, then converted to a typed Struct."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

import msgspec
from aiohttp import web

from onemin_relay.emulator.respond import error_response
from onemin_relay.emulator.state import RECORD

T = TypeVar("T")
Invalid = Callable[[str, str], web.Response]  # (field, message) -> error response
_MISSING = re.compile(r"missing required field `([^`]+)`")
_PATH = re.compile(r" - at `\$((?:\.[^`.\[]+|\[\d+\])*)`$")


class Rejected(Exception):
    """Raised by a handler to answer with ``response``; recorded like any other answer."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


async def read_json(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object (400 ``INVALID_REQUEST`` otherwise)."""
    try:
        data = msgspec.json.decode(await request.read())
    except msgspec.DecodeError:
        raise Rejected(error_response(400, "INVALID_REQUEST", "Body must be JSON")) from None
    request[RECORD].body = data
    if not isinstance(data, dict):
        raise Rejected(error_response(400, "INVALID_REQUEST", "Body must be a JSON object"))
    return data


def field_path(message: str) -> str:
    """The dotted path a msgspec validation message points at, e.g. ``promptObject.prompt``."""
    match = _PATH.search(message)
    path = match.group(1).lstrip(".") if match else ""
    missing = _MISSING.search(message)
    if missing:
        path = f"{path}.{missing.group(1)}" if path else missing.group(1)
    return path


def convert(data: dict[str, Any], into: type[T], invalid: Invalid) -> T:
    """``data`` as an ``into``; a mismatch raises ``Rejected`` with ``invalid``'s response."""
    try:
        return msgspec.convert(data, into)
    except msgspec.ValidationError as exc:
        message = str(exc)
        raise Rejected(invalid(field_path(message), message)) from None
