"""Shared fixtures: a live relay + emulator pair on loopback, run in a background thread.

SDK tests drive the relay exactly as a user would (sync or async clients, from the test's
own thread or loop); the servers keep their own event loop so neither blocks the other.
Each test gets its own 1min.ai key, so the emulator's fault knobs and request records for
one test never leak into another.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import shutil
import socket
import tempfile
import threading
import urllib.request
import uuid
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from onemin_relay.app import create_app
from onemin_relay.emulator import create_app as create_emulator
from onemin_relay.gateway.keys import KeyKind, KeyRecord, hash_key, issue, usd_to_nanos
from onemin_relay.gateway.storage import LedgerRow, Store
from onemin_relay.logs import AccessLogger
from onemin_relay.server import LISTEN_BACKLOG, RelayRunner
from onemin_relay.settings import Settings
from onemin_relay.surfaces.common import GATEWAY

T = TypeVar("T")
LIMITS_OFF: dict[str, Any] = {
    "ip_rpm": 0,
    "ip_tpm": 0,
    "ip_max_in_flight": 0,
    "key_max_in_flight": 0,
    "upstream_max_in_flight": 0,
}

HEADER_TIMEOUT = 0.5  # seconds a test connection gets to send its first request's headers

# A 1×1 PNG, served by the test image host.
PNG_1X1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


class FakeResolver(AbstractResolver):
    """DNS for tests: fixed names → addresses; nothing outside the table resolves."""

    def __init__(self, table: dict[str, str]) -> None:
        self._table = table

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host not in self._table:
            raise OSError(f"test resolver: unknown host {host}")
        address = self._table[host]
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
        ]

    async def close(self) -> None:
        return None


@dataclass
class Stack:
    relay_url: str
    emulator_url: str
    images_url: str  # a loopback image host the relay is told to trust (fetch_allow_hosts)
    settings: Settings
    loop: asyncio.AbstractEventLoop
    app: web.Application

    @property
    def operator_key(self) -> str:
        """The relay's own 1min.ai key, which managed keys spend."""
        assert self.settings.api_key is not None
        return self.settings.api_key

    def on_relay(self, work: Coroutine[Any, Any, T]) -> T:
        """Run ``work`` on the relay's event loop (its store lives there) and wait for it."""
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(timeout=30)

    @contextlib.contextmanager
    def another_relay(self, **overrides: Any) -> Iterator[tuple[str, web.Application]]:
        """A second relay on this stack's emulator, with ``overrides`` on its settings and
        a store of its own; stopped when the block ends."""
        runners: list[web.AppRunner] = []
        data_dir = tempfile.mkdtemp(prefix="relay-data-")
        settings = dataclasses.replace(self.settings, data_dir=data_dir, **overrides)
        app = create_app(settings)

        async def start() -> int:
            return await _start(app, runners, RelayRunner, handler_cancellation=True,
                                access_log_class=AccessLogger)  # fmt: skip

        async def stop() -> None:
            for runner in runners:
                await runner.cleanup()

        port = self.on_relay(start())
        try:
            yield f"http://127.0.0.1:{port}", app
        finally:
            self.on_relay(stop())
            shutil.rmtree(data_dir, ignore_errors=True)

    def issue_key(self, kind: KeyKind = "managed", balance_usd: float = 0.0, **fields: Any) -> str:
        """A new gateway key in the relay's store; its secret."""
        new = issue(kind, f"test {kind} key", balance=usd_to_nanos(balance_usd), **fields)
        self.on_relay(self.app[GATEWAY].store.add_key(new.record))
        return new.secret

    def app_store(self) -> Store:
        return self.app[GATEWAY].store

    def key_record(self, secret: str) -> KeyRecord:
        found = self.on_relay(self.app[GATEWAY].store.key_by_hash(hash_key(secret)))
        assert found is not None
        return found

    def ledger(self, secret: str, limit: int = 100) -> list[LedgerRow]:
        """The key's ledger rows, newest first, once every queued row is written."""
        gateway = self.app[GATEWAY]

        async def read() -> list[LedgerRow]:
            for _ in range(500):
                if gateway.ledger.pending == 0:
                    break
                await asyncio.sleep(0.01)
            record = await gateway.store.key_by_hash(hash_key(secret))
            assert record is not None
            return await gateway.store.ledger(record.id, limit)

        return self.on_relay(read())

    def set_faults(self, api_key: str, **knobs: Any) -> None:
        _http("PUT", f"{self.emulator_url}/_emulator/faults/{api_key}", knobs)

    def upstream_requests(self, api_key: str) -> list[dict[str, Any]]:
        result = _http("GET", f"{self.emulator_url}/_emulator/requests?api_key={api_key}")
        assert isinstance(result, list)
        return result

    def direct_chat(self, api_key: str, model: str, prompt: str) -> dict[str, Any]:
        """Ask the emulator directly, bypassing the relay (the oracle for usage figures)."""
        body = {"type": "UNIFY_CHAT_WITH_AI", "model": model, "promptObject": {"prompt": prompt}}
        return dict(_http("POST", f"{self.emulator_url}/api/chat-with-ai", body, api_key))

    def chat_requests(self, api_key: str) -> list[dict[str, Any]]:
        return [r for r in self.upstream_requests(api_key) if r["path"] == "/api/chat-with-ai"]


def _http(method: str, url: str, body: Any = None, api_key: str | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if api_key:
        request.add_header("API-KEY", api_key)
    with urllib.request.urlopen(request, timeout=5) as response:
        raw = response.read()
    return json.loads(raw) if raw else None


def _image_host() -> web.Application:
    async def image(request: web.Request) -> web.Response:
        return web.Response(body=PNG_1X1, content_type="image/png")

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=b"\x89PNG" + b"0" * 3_000_000, content_type="image/png")

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["to"])

    async def not_image(request: web.Request) -> web.Response:
        return web.Response(text="hello", content_type="text/html")

    app = web.Application()
    app.router.add_get("/cat.png", image)
    app.router.add_get("/big.png", big)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/page.html", not_image)
    return app


async def _start(
    app: web.Application,
    runners: list[web.AppRunner],
    runner_class: type = web.AppRunner,
    **kwargs: Any,
) -> int:
    runner = runner_class(app, **kwargs)
    await runner.setup()
    runners.append(runner)
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=LISTEN_BACKLOG)  # as `serve` listens
    await site.start()
    return int(runner.addresses[0][1])


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    loop = asyncio.new_event_loop()
    runners: list[web.AppRunner] = []
    ready: dict[str, Any] = {}

    async def start() -> None:
        emulator_port = await _start(create_emulator(), runners)
        images_port = await _start(_image_host(), runners)
        emulator_url = f"http://127.0.0.1:{emulator_port}"
        settings = Settings(
            upstream_url=emulator_url,
            asset_url=emulator_url,
            fetch_allow_hosts="localhost",
            image_fetch_max_bytes=2_000_000,
            max_body_bytes=1_000_000,
            read_timeout=3.0,
            first_byte_timeout=3.0,
            upstream_retries=2,
            data_dir=str(tmp_path_factory.mktemp("relay-data")),
            api_key=f"operator-{uuid.uuid4().hex[:12]}",
            **LIMITS_OFF,  # every test comes from 127.0.0.1; limits have tests of their own
        )
        resolver = FakeResolver(
            {"localhost": "127.0.0.1", "evil.test": "127.0.0.1", "intranet.test": "10.1.2.3"}
        )
        relay_app = create_app(settings, fetch_resolver=resolver)
        relay_port = await _start(
            relay_app,
            runners,
            RelayRunner,
            header_timeout=HEADER_TIMEOUT,
            handler_cancellation=True,
            access_log_class=AccessLogger,
        )
        ready["stack"] = Stack(
            relay_url=f"http://127.0.0.1:{relay_port}",
            emulator_url=emulator_url,
            images_url=f"http://localhost:{images_port}",
            settings=settings,
            loop=loop,
            app=relay_app,
        )

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=30)
    try:
        yield ready["stack"]
    finally:

        async def stop() -> None:
            for runner in reversed(runners):
                await runner.cleanup()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


@pytest.fixture
def api_key() -> str:
    """A fresh 1min.ai key per test, so emulator faults and records stay per test."""
    return f"test-key-{uuid.uuid4().hex[:12]}"
