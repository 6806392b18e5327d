"""A second tier behind the in-memory model catalog, shared by every relay process.

One process fetches ``/models`` from 1min.ai and saves a snapshot; the others load it
instead of asking 1min.ai themselves. A snapshot is the usable models plus the wall-clock
time they were fetched (``time.time()``), msgpack-encoded; its reader decides whether it is
still fresh. The shared tier is an optimisation only: it never raises, and when it is
unavailable each process fetches the catalog itself.

The Redis client must bound every call: create it with ``socket_timeout`` and
``socket_connect_timeout``, a short ``retry`` policy and ``decode_responses=False``.
"""

from __future__ import annotations

import logging
from typing import Protocol

import msgspec
import redis.asyncio as redis
from redis.exceptions import RedisError

from onemin_relay.core.types import ModelInfo

log = logging.getLogger(__name__)


class SharedCatalog(Protocol):
    async def load(self) -> bytes | None:
        """The saved snapshot, or None if there is none or it cannot be read. Never raises."""
        ...

    async def save(self, data: bytes, ttl: float) -> None:
        """Keep ``data`` for ``ttl`` seconds; on failure nothing is kept. Never raises."""
        ...


class CatalogSnapshot(msgspec.Struct, frozen=True):
    models: list[ModelInfo]
    fetched_at: float  # time.time() when 1min.ai answered


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(CatalogSnapshot)


def encode_snapshot(models: list[ModelInfo], fetched_at: float) -> bytes:
    return _encoder.encode(CatalogSnapshot(models=models, fetched_at=fetched_at))


def decode_snapshot(data: bytes | None) -> CatalogSnapshot | None:
    """The snapshot in ``data``; None for no data or data this version cannot read."""
    if data is None:
        return None
    try:
        return _decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        log.warning("shared model catalog unreadable, ignoring it: %s", exc)
        return None


class RedisSharedCatalog:
    """The snapshot under ``{prefix}catalog``, expiring ``ttl`` seconds after it is saved."""

    def __init__(self, client: redis.Redis, *, prefix: str = "onemin:") -> None:
        self._client = client
        self.key = f"{prefix}catalog"
        self._healthy = True

    @property
    def healthy(self) -> bool:
        """Whether the last load or save reached Redis (True before the first one)."""
        return self._healthy

    async def load(self) -> bytes | None:
        try:
            data = await self._client.get(self.key)
        except (RedisError, OSError) as exc:
            self._failed("load", exc)
            return None
        self._healthy = True
        return data if isinstance(data, bytes) else None

    async def save(self, data: bytes, ttl: float) -> None:
        ttl_ms = round(ttl * 1000)
        if ttl_ms < 1:
            return
        try:
            await self._client.set(self.key, data, px=ttl_ms)
        except (RedisError, OSError) as exc:
            self._failed("save", exc)
            return
        self._healthy = True

    def _failed(self, operation: str, exc: Exception) -> None:
        self._healthy = False
        log.warning("shared model catalog unavailable, %s skipped: %s", operation, exc)
