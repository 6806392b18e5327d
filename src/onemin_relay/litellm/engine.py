"""The relay's pipeline with the gateway off, one per event loop and upstream URL.

The provider runs the relay's own ``Pipeline`` and ``Features`` (prompt flattening,
attachments, tool-call emulation, JSON formats with repairs, usage from 1min.ai's record,
``:online`` web search, image generation), so LiteLLM users get what relay clients get.
Only the gateway differs: :class:`Unmetered` admits every caller with their own 1min.ai
key and records nothing, because there is no operator, ledger or rate limit in-process.
Standing in for the gateway, rather than driving a second copy of the pipeline's steps, keeps
one place where a chat request is prepared, answered and repaired: the provider cannot drift
from the relay.

Sessions are per loop because an aiohttp session belongs to the loop that opened it:

- sync calls share one background thread running one loop (:class:`LoopThread`), started on
  the first sync call and stopped at interpreter exit; its engines (one aiohttp session per
  upstream URL) live there, and calls are handed over with ``run_coroutine_threadsafe``;
- async calls run on the caller's loop, with engines kept per loop (weakly, so a loop that is
  gone takes nothing with it); ``await aclose()`` closes the current loop's sessions.
"""

from __future__ import annotations

import asyncio
import atexit
import threading
import weakref
from collections.abc import AsyncIterator, Coroutine, Iterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import aiohttp

from onemin_relay import __version__
from onemin_relay.core.errors import AuthenticationFailed, InvalidRequest
from onemin_relay.core.types import Caller
from onemin_relay.features import Features
from onemin_relay.gateway.grants import Grant, Mode, Spent
from onemin_relay.gateway.keys import KeyRecord
from onemin_relay.gateway.ledger import LedgerWriter
from onemin_relay.gateway.limit_store import MemoryLimitStore
from onemin_relay.gateway.limits import RateLimits
from onemin_relay.gateway.policy import Gateway, HoldEstimate
from onemin_relay.gateway.sqlite_store import SqliteStore
from onemin_relay.media import GuardedResolver, ImageFetcher
from onemin_relay.pipeline import Pipeline
from onemin_relay.settings import Settings, SettingsError
from onemin_relay.upstream import ModelCatalog, OneMinClient
from onemin_relay.upstream.features import FeatureClient

T = TypeVar("T")


class Unmetered(Gateway):
    """The gateway off: the caller's own 1min.ai key goes upstream, nothing is held,
    limited or written to a ledger (1min.ai bills the key directly)."""

    def __init__(self, settings: Settings) -> None:
        # The gateway's parts exist for its constructor (and what the pipeline builds on it)
        # but are never opened: nothing admits into them or settles to them here.
        store = SqliteStore(":memory:")
        ledger = LedgerWriter(store, capacity=1, batch_size=1)
        limits = RateLimits(MemoryLimitStore(settings.rate_window), settings)
        super().__init__(store, ledger, limits, settings)

    async def identify(self, caller: Caller) -> tuple[Mode, KeyRecord | None, str]:
        if not caller.api_key:
            raise AuthenticationFailed(
                "no 1min.ai key: pass api_key= or set ONE_MIN_API_KEY or ONEMIN_API_KEY"
            )
        return "byok", None, caller.api_key

    async def admit(
        self,
        caller: Caller,
        requested_model: str,
        upstream_model: str = "",
        estimate: HoldEstimate | None = None,
        tokens: int = 0,
    ) -> Grant:
        _, key, api_key = await self.identify(caller)
        return Grant.begin(caller, "byok", key, requested_model, api_key)

    def settle(self, grant: Grant, spent: Spent) -> None:
        grant.settled = True

    @asynccontextmanager
    async def flat_call(
        self, caller: Caller, requested_model: str, upstream_model: str, credits: int | None
    ) -> AsyncIterator[Grant]:
        yield await self.admit(caller, requested_model)


class Engine:
    """One upstream URL's sessions, client, catalog, pipeline and features, on one loop."""

    def __init__(self, settings: Settings) -> None:
        headers = {"User-Agent": f"onemin-relay/{__version__} (litellm)"}
        # one session serves every key: a cookie set for one key must never reach another
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=settings.upstream_pool_size),
            headers=headers,
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        allow = settings.fetch_allow_set
        resolver = GuardedResolver(aiohttp.ThreadedResolver(), allow)
        self._fetch_session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(resolver=resolver, limit=64),
            headers=headers,
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        client = OneMinClient(self._session, settings)
        fetcher = ImageFetcher(
            self._fetch_session,
            max_bytes=settings.image_fetch_max_bytes,
            timeout=settings.image_fetch_timeout,
            allow_hosts=allow,
        )
        catalog = ModelCatalog(client, ttl=settings.models_ttl)
        gateway = Unmetered(settings)
        self.pipeline = Pipeline(client, catalog, fetcher, settings, gateway)
        self.features = Features(FeatureClient(client, settings), catalog, settings, gateway)

    async def close(self) -> None:
        await self._fetch_session.close()
        await self._session.close()


def settings_for(api_base: str | None) -> Settings:
    """``ONEMIN_*`` settings, with ``api_base`` (when given) as the upstream and asset URL;
    a value they refuse is the caller's bad request."""
    base = api_base.rstrip("/") if api_base else None
    try:
        if base is None:
            return Settings.from_env()
        return Settings.from_env(upstream_url=base, asset_url=base)
    except SettingsError as exc:
        raise InvalidRequest(f"cannot call 1min.ai: {exc}", param="api_base") from None


class Engines:
    """Engines by upstream URL for one loop, created on first use."""

    def __init__(self) -> None:
        self._by_base: dict[str | None, Engine] = {}

    def get(self, api_base: str | None) -> Engine:
        engine = self._by_base.get(api_base)
        if engine is None:
            engine = self._by_base[api_base] = Engine(settings_for(api_base))
        return engine

    async def close(self) -> None:
        engines, self._by_base = list(self._by_base.values()), {}
        for engine in engines:
            await engine.close()


_per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Engines] = (
    weakref.WeakKeyDictionary()
)


def engine_here(api_base: str | None) -> Engine:
    """The running loop's engine for ``api_base`` (async calls)."""
    loop = asyncio.get_running_loop()
    engines = _per_loop.get(loop)
    if engines is None:
        engines = _per_loop[loop] = Engines()
    return engines.get(api_base)


async def close_here() -> None:
    """Close the running loop's sessions (call before the loop ends, e.g. in ``asyncio.run``)."""
    engines = _per_loop.pop(asyncio.get_running_loop(), None)
    if engines is not None:
        await engines.close()


class LoopThread:
    """One daemon thread running one event loop for every sync call of the process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        """Run ``work`` on the shared loop and wait for its result."""
        future = asyncio.run_coroutine_threadsafe(work, self._started())
        try:
            return future.result()
        except BaseException:
            future.cancel()  # a caller interrupted stops the upstream call too
            raise

    def iterate(self, chunks: AsyncIterator[T]) -> Iterator[T]:
        """Iterate an async iterator on the shared loop, one step per ``next()``; closing the
        iterator early (the caller stopped reading) closes the upstream stream too."""

        async def step() -> T:
            return await anext(chunks)

        async def close() -> None:
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                await aclose()

        try:
            while True:
                try:
                    yield self.run(step())
                except StopAsyncIteration:
                    return
        finally:
            self.finish(close())

    def finish(self, work: Coroutine[Any, Any, None]) -> None:
        """Run clean-up ``work`` on the shared loop, waiting for it unless this is the loop's
        own thread (a sync stream collected there), where waiting would block it for good."""
        future = asyncio.run_coroutine_threadsafe(work, self._started())
        if threading.current_thread() is not self._thread:
            future.result()

    def _started(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="onemin-relay-litellm", daemon=True
                )
                thread.start()
                self._loop, self._thread = loop, thread
                atexit.register(self.stop)
            return self._loop

    def stop(self) -> None:
        """Close the loop's sessions and end the thread (at exit, or by hand)."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(close_here(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
        atexit.unregister(self.stop)


SYNC_LOOP = LoopThread()
