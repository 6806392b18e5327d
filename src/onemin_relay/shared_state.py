"""The state several relay processes must share, built from the settings at start-up.

Without ``ONEMIN_REDIS_URL`` every piece lives in this process's memory (one process only:
``serve --workers`` is refused while limits are on). With it, the rate-limit counts, the stored
Responses and a second tier of the model catalog live in Redis, so any process on any host
can serve any request. No connection is made here: the Redis client connects on first use.
Nothing of Redis is imported unless it is configured.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import msgspec

from onemin_relay.gateway.limit_store import LimitStore, MemoryLimitStore
from onemin_relay.gateway.response_store import MemoryResponseStore, ResponseStore
from onemin_relay.settings import Settings
from onemin_relay.upstream.catalog_cache import SharedCatalog

if TYPE_CHECKING:
    import redis.asyncio as redis

REDIS_TIMEOUT = 2.0  # seconds for any one Redis call: a hung Redis must not hang requests


class SharedState(msgspec.Struct):
    limit_store: LimitStore
    responses: ResponseStore
    catalog: SharedCatalog | None = None
    client: redis.Redis | None = None


@asynccontextmanager
async def shared_state(settings: Settings) -> AsyncIterator[SharedState]:
    if not settings.redis_url:
        yield SharedState(MemoryLimitStore(settings.rate_window), MemoryResponseStore())
        return
    # imported only when configured: redis-py is ~6 MB of a relay that never uses it
    from onemin_relay.gateway.redis_limits import RedisLimitStore
    from onemin_relay.gateway.redis_responses import RedisResponseStore, connect_redis
    from onemin_relay.upstream.redis_catalog import RedisSharedCatalog

    client = connect_redis(settings.redis_url, timeout=REDIS_TIMEOUT)
    prefix = settings.redis_prefix
    try:
        yield SharedState(
            limit_store=RedisLimitStore(client, window=settings.rate_window, prefix=prefix),
            responses=RedisResponseStore(
                client, prefix=prefix, on_error=settings.responses_on_store_error
            ),
            catalog=RedisSharedCatalog(client, prefix=prefix),
            client=client,
        )
    finally:
        await client.aclose()
