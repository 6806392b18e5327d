"""The shared model catalog in Redis (see :mod:`.catalog_cache`).

The Redis client must bound every call: create it with ``socket_timeout`` and
``socket_connect_timeout``, a short ``retry`` policy and ``decode_responses=False``.
"""

from __future__ import annotations

import logging

import redis.asyncio as redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)


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
