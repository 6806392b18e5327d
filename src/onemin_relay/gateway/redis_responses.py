"""A :class:`~onemin_relay.gateway.response_store.ResponseStore` in Redis, shared by every
relay process, so a follow-up with ``previous_response_id`` may land on any of them.

Each entry is one msgpack value under ``{prefix}response:{id}``, written with an expiry of
``ttl`` seconds, so Redis memory is bounded by expiry (plus whatever ``maxmemory`` policy the
operator sets). An entry larger than ``max_bytes_per_entry`` is not stored. Reads and deletes
check the owner: another owner's id reads as unknown, and a delete never removes it (the
owner is compared and the key deleted inside one Lua script, one round trip).

The client must bound every call: create it with ``socket_timeout`` and
``socket_connect_timeout``, a short ``retry`` policy (redis-py's default retries a failed
connection three times with back-off of up to ten seconds) and ``decode_responses=False``.
:func:`connect_redis` builds such a client from a URL.

When Redis fails, ``on_error`` decides: ``"fail"`` raises ``UpstreamUnavailable`` (a 503),
``"degrade"`` carries on without the store (``put`` drops the entry, ``get`` finds nothing,
``delete`` deletes nothing). ``healthy`` tells whether the last operation reached Redis.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Literal, cast

import msgspec
import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from onemin_relay.core.errors import UpstreamUnavailable
from onemin_relay.gateway.response_store import DEFAULT_TTL, StoredResponse

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "onemin:"
DEFAULT_MAX_BYTES_PER_ENTRY = 32 * 1024 * 1024
DEFAULT_REDIS_TIMEOUT = 2.0
REDIS_POOL_SIZE = 64  # connections per process
UNAVAILABLE = "the shared response store is unavailable"

OnError = Literal["fail", "degrade"]

# KEYS[1]: the entry; ARGV[1]: the bytes every value owned by the caller starts with.
_DELETE_IF_OWNED = """
local value = redis.call('GET', KEYS[1])
if value and string.sub(value, 1, string.len(ARGV[1])) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


class _Record(msgspec.Struct, array_like=True, frozen=True):
    """The stored value: a msgpack array with the owner first, so a script can check it."""

    owner: str
    id: str
    response: bytes
    conversation: bytes


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(_Record)
_ARRAY_OF_FOUR = b"\x94"  # msgpack fixarray header for _Record's four fields


def owner_prefix(owner: str) -> bytes:
    """The first bytes of every value ``owner`` stores: the array header and the owner."""
    return _ARRAY_OF_FOUR + _ENCODER.encode(owner)


def connect_redis(
    url: str, *, timeout: float = DEFAULT_REDIS_TIMEOUT, pool_size: int = REDIS_POOL_SIZE
) -> redis.Redis:
    """A client whose every call is bounded: ``timeout`` seconds to connect, per reply and
    to wait for a free connection, and one immediate retry on a dropped connection (a
    restarted Redis, an idle socket the network closed).

    Its pool holds at most ``pool_size`` connections: a burst of a thousand requests shares
    them (a command holds one for about a round trip) instead of opening a thousand sockets
    at once, some of which then missed the connect timeout on a busy host."""
    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=pool_size,
        timeout=timeout,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 1),
        decode_responses=False,
    )
    return redis.Redis.from_pool(pool)


class RedisResponseStore:
    """Stored responses in Redis, readable from every relay process."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str = DEFAULT_PREFIX,
        ttl: float = DEFAULT_TTL,
        max_bytes_per_entry: int = DEFAULT_MAX_BYTES_PER_ENTRY,
        on_error: OnError = "fail",
    ) -> None:
        if ttl <= 0 or max_bytes_per_entry < 1:
            raise ValueError("ttl and max_bytes_per_entry must be positive")
        if on_error not in ("fail", "degrade"):
            raise ValueError(f"on_error must be 'fail' or 'degrade', not {on_error!r}")
        self._client = client
        self.prefix = prefix
        self.ttl = ttl
        self.max_bytes_per_entry = max_bytes_per_entry
        self.on_error: OnError = on_error
        self._ttl_ms = max(1, round(ttl * 1000))
        self._delete_if_owned = client.register_script(_DELETE_IF_OWNED)
        self._healthy = True

    @property
    def healthy(self) -> bool:
        """Whether the last operation reached Redis (True before the first one)."""
        return self._healthy

    def key(self, response_id: str) -> str:
        return f"{self.prefix}response:{response_id}"

    async def get(self, response_id: str, owner: str) -> StoredResponse | None:
        try:
            raw = await self._client.get(self.key(response_id))
        except (RedisError, OSError) as exc:
            self._failed(f"read of {response_id}", exc)
            return None
        self._succeeded()
        if raw is None:
            return None
        try:
            record = _DECODER.decode(raw)
        except msgspec.DecodeError as exc:
            log.warning("unreadable stored response %s ignored: %s", response_id, exc)
            return None
        if record.owner != owner or record.id != response_id:
            return None
        return StoredResponse(
            id=record.id,
            owner=record.owner,
            response=record.response,
            conversation=record.conversation,
        )

    async def put(self, entry: StoredResponse) -> None:
        key = self.key(entry.id)
        try:
            if entry.size > self.max_bytes_per_entry:
                await self._client.delete(key)  # a replacement too large leaves nothing behind
            else:
                record = _Record(entry.owner, entry.id, entry.response, entry.conversation)
                await self._client.set(key, _ENCODER.encode(record), px=self._ttl_ms)
        except (RedisError, OSError) as exc:
            self._failed(f"write of {entry.id}", exc)
            return
        self._succeeded()

    async def delete(self, response_id: str, owner: str) -> bool:
        try:
            deleted = await self._delete_if_owned(
                keys=[self.key(response_id)], args=[owner_prefix(owner)]
            )
        except (RedisError, OSError) as exc:
            self._failed(f"delete of {response_id}", exc)
            return False
        self._succeeded()
        return bool(deleted)

    async def ping(self) -> bool:
        """Ask Redis whether it answers (for a readiness probe); updates ``healthy``."""
        try:
            await cast(Awaitable[bool], self._client.ping())  # typed for sync and async
        except (RedisError, OSError) as exc:
            self._healthy = False
            log.warning("shared response store unavailable: %s", exc)
            return False
        self._succeeded()
        return True

    def _succeeded(self) -> None:
        if not self._healthy:
            log.info("shared response store reachable again")
        self._healthy = True

    def _failed(self, operation: str, exc: Exception) -> None:
        """Record a Redis failure; raises ``UpstreamUnavailable`` in ``fail`` mode."""
        self._healthy = False
        if self.on_error == "fail":
            log.warning("shared response store %s failed: %s", operation, exc)
            raise UpstreamUnavailable(UNAVAILABLE) from exc
        log.warning("shared response store unavailable, %s skipped: %s", operation, exc)
