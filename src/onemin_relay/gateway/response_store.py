"""Stored Responses-API responses, so ``previous_response_id`` can continue a conversation.

``ResponseStore`` is the interface a persistent backend (SQLite, PostgreSQL) implements;
``MemoryResponseStore`` is the default. Entries are opaque bytes to the store: the response
object as the client received it, and the conversation a follow-up continues, encoded by the
surface. Every entry belongs to one owner (:func:`owner_of`); another owner's id reads as
unknown, exactly like an id that never existed.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

import msgspec

SERVER_OWNER = "server"
DEFAULT_MAX_ENTRIES = 10_000
DEFAULT_MAX_BYTES = 256 * 1024 * 1024
DEFAULT_TTL = 24 * 3600.0


class StoredResponse(msgspec.Struct, frozen=True):
    """One stored response: who owns it, the response object (JSON) and its conversation."""

    id: str
    owner: str
    response: bytes
    conversation: bytes

    @property
    def size(self) -> int:
        """Bytes charged against a store's budget."""
        return len(self.response) + len(self.conversation)


class ResponseStore(Protocol):
    async def get(self, response_id: str, owner: str) -> StoredResponse | None:
        """The entry, or None if it is unknown, expired or owned by someone else."""
        ...

    async def put(self, entry: StoredResponse) -> None:
        """Store (or replace) an entry; a store may drop it again under its bounds."""
        ...

    async def delete(self, response_id: str, owner: str) -> bool:
        """Remove an entry; False if ``get`` would not have found it."""
        ...


def owner_of(api_key: str | None) -> str:
    """The owner of what a caller stores: the SHA-256 of the key the client presented (never
    the key itself), or ``server`` when the client sent none and the relay's key is used."""
    if not api_key:
        return SERVER_OWNER
    return hashlib.sha256(api_key.encode()).hexdigest()


class MemoryResponseStore:
    """An in-process LRU bounded by entry count and bytes, with entries expiring ``ttl``
    seconds after they were stored (``None``: never).

    An expired entry is dropped when it is read, or when it reaches the least-recently-used
    end; until then it counts against the bounds, so memory stays bounded either way. An
    entry larger than ``max_bytes`` on its own is not kept. No method awaits while it
    mutates, so concurrent requests on the event loop cannot interleave inside one.
    """

    def __init__(
        self,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        max_bytes: int = DEFAULT_MAX_BYTES,
        ttl: float | None = DEFAULT_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1 or max_bytes < 1 or (ttl is not None and ttl <= 0):
            raise ValueError("max_entries, max_bytes and ttl must be positive")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.ttl = ttl
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, StoredResponse]] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def bytes_used(self) -> int:
        return self._bytes

    async def get(self, response_id: str, owner: str) -> StoredResponse | None:
        found = self._entries.get(response_id)
        if found is None:
            return None
        stored_at, entry = found
        if self._expired(stored_at):
            self._remove(response_id)
            return None
        if entry.owner != owner:
            return None
        self._entries.move_to_end(response_id)
        return entry

    async def put(self, entry: StoredResponse) -> None:
        self._remove(entry.id)
        if entry.size > self.max_bytes:
            return
        self._entries[entry.id] = (self._clock(), entry)
        self._bytes += entry.size
        while self._entries and (
            len(self._entries) > self.max_entries
            or self._bytes > self.max_bytes
            or self._expired(next(iter(self._entries.values()))[0])
        ):
            self._remove(next(iter(self._entries)))

    async def delete(self, response_id: str, owner: str) -> bool:
        if await self.get(response_id, owner) is None:
            return False
        self._remove(response_id)
        return True

    def _expired(self, stored_at: float) -> bool:
        return self.ttl is not None and self._clock() - stored_at >= self.ttl

    def _remove(self, response_id: str) -> None:
        found = self._entries.pop(response_id, None)
        if found is not None:
            self._bytes -= found[1].size
