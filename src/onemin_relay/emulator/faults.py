"""Fault knobs: what can go wrong on the emulated 1min.ai, set per API key by tests.

Knobs are replaced as a whole with ``PUT /_emulator/faults/{api_key}``; the knobs stored
for key ``*`` apply to every key (and to unauthenticated routes) without knobs of its own.
Every default is the healthy behaviour.

Stream knobs count ``content`` events, the empty first delta included: with
``error_after_chunks=1`` the client sees ``{"content":""}`` and then the error.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Literal, TypeAlias

import msgspec

Envelope: TypeAlias = Literal["flat", "documented"]
WILDCARD = "*"
_ERROR_STATUSES = frozenset(s.value for s in HTTPStatus if s >= 400)


class Faults(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One set of knobs; unknown names are rejected so a typo cannot silently do nothing."""

    latency_ms: float = 0
    chunk_delay_ms: float = 0
    chunk_bytes: int = 0
    split_utf8: bool = False
    duplicate_final: bool = False
    crawl_lines: int = 0
    error_after_chunks: int | None = None
    error_message: str = "The model is overloaded, please try again"
    status: int | None = None
    status_body_text: bool = False
    retry_after: float | None = None
    status_times: int | None = None
    stall_after_chunks: int | None = None
    reset_after_chunks: int | None = None
    no_done: bool = False
    no_result: bool = False
    zero_usage: bool = False
    no_metadata: bool = False
    finish_reason: str | None = None
    omit_finish_reason: bool = False
    record_failed: bool = False
    reply: str | None = None
    replies: tuple[str, ...] = ()  # scripted: the n-th chat reply for the key; the last repeats
    error_envelope: Envelope | None = None
    models: tuple[str, ...] = ()  # when set, the knobs bend only calls for these models

    def covers(self, model: str | None) -> bool:
        """Whether these knobs apply to a call for ``model`` (None: not a model call)."""
        return not self.models or model in self.models

    def __post_init__(self) -> None:
        if self.status is not None and self.status not in _ERROR_STATUSES:
            raise ValueError("status must be a known HTTP error status (4xx or 5xx)")
        counts = (self.chunk_bytes, self.crawl_lines, self.status_times or 0)
        if min(counts) < 0 or self.latency_ms < 0 or self.chunk_delay_ms < 0:
            raise ValueError("counts and delays must not be negative")


HEALTHY = Faults()
_decoder = msgspec.json.Decoder(Faults)


def parse_faults(body: bytes) -> Faults:
    """Decode a knob set; raises ``msgspec.ValidationError`` / ``DecodeError`` with the reason."""
    return _decoder.decode(body or b"{}")


class _Entry(msgspec.Struct):
    faults: Faults
    status_used: int = 0
    replies_used: int = 0


class FaultBook:
    """Knobs per API key, plus how many forced statuses each key has used up."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    def put(self, api_key: str, faults: Faults) -> None:
        self._entries[api_key] = _Entry(faults)

    def delete(self, api_key: str) -> None:
        self._entries.pop(api_key, None)

    def _entry(self, api_key: str | None) -> _Entry | None:
        own = self._entries.get(api_key) if api_key else None
        return own or self._entries.get(WILDCARD)

    def for_key(self, api_key: str | None) -> Faults:
        entry = self._entry(api_key)
        return entry.faults if entry else HEALTHY

    def take_reply(self, api_key: str | None, model: str | None = None) -> str | None:
        """The scripted reply for this chat call (advancing the script), else ``reply``."""
        entry = self._entry(api_key)
        if entry is None or not entry.faults.covers(model):
            return None
        script = entry.faults.replies
        if not script:
            return entry.faults.reply
        entry.replies_used += 1
        return script[min(entry.replies_used, len(script)) - 1]

    def take_status(self, api_key: str | None) -> int | None:
        """The status to force on this request, counting it against ``status_times``."""
        entry = self._entry(api_key)
        if entry is None or entry.faults.status is None:
            return None
        limit = entry.faults.status_times
        if limit is not None and entry.status_used >= limit:
            return None
        entry.status_used += 1
        return entry.faults.status
