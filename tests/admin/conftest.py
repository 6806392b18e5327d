"""A relay (with an emulator behind it) on loopback for the admin tests, run on its own event
loop in a background thread so tests can drive it with plain blocking HTTP."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp import web

from onemin_relay.app import create_app
from onemin_relay.emulator import create_app as create_emulator
from onemin_relay.gateway.storage import Store
from onemin_relay.settings import Settings
from onemin_relay.surfaces.common import GATEWAY
from tests.conftest import LIMITS_OFF

T = TypeVar("T")
TOKEN = "t0ken"
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello"}]}


@dataclass
class Relay:
    url: str
    app: web.Application
    loop: asyncio.AbstractEventLoop
    settings: Settings

    @property
    def data_dir(self) -> Path:
        return Path(self.settings.data_dir)

    @property
    def store(self) -> Store:
        return self.app[GATEWAY].store

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        """Run ``work`` on the relay's loop (its store lives there) and wait for it."""
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(timeout=30)

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = TOKEN,
        raw: bytes | None = None,
        authorization: str | None = None,
    ) -> tuple[int, Any]:
        """(status, decoded JSON body) for one request; error statuses are returned too.
        ``token`` goes as a bearer, unless ``authorization`` gives the whole header."""
        data = raw if raw is not None else None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if authorization is None and token is not None:
            authorization = f"Bearer {token}"
        if authorization is not None:
            request.add_header("Authorization", authorization)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, json.loads(exc.read() or b"null")

    def flush_ledger(self) -> None:
        """Wait until every queued settlement is written."""

        async def drained() -> None:
            ledger = self.app[GATEWAY].ledger
            for _ in range(500):
                if ledger.pending == 0:
                    return
                await asyncio.sleep(0.01)

        self.run(drained())


def create(admin: Relay, **fields: Any) -> dict[str, Any]:
    status, body = admin.call("POST", "/admin/v1/keys", {"name": "test key", **fields})
    assert status == 201, body
    return dict(body)


def is_iso_utc(value: str) -> bool:
    return value.endswith("Z") and datetime.fromisoformat(value).utcoffset() is not None


async def _start(app: web.Application, runners: list[web.AppRunner]) -> int:
    runner = web.AppRunner(app)
    await runner.setup()
    runners.append(runner)
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return int(runner.addresses[0][1])


def serve(data_dir: Path, **settings: Any) -> Iterator[Relay]:
    """A relay in front of a fresh emulator, storing in ``data_dir``, until the caller is done."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    runners: list[web.AppRunner] = []

    async def start() -> Relay:
        emulator_url = f"http://127.0.0.1:{await _start(create_emulator(), runners)}"
        config = Settings(
            upstream_url=emulator_url,
            asset_url=emulator_url,
            api_key=f"operator-{uuid.uuid4().hex[:12]}",
            data_dir=str(data_dir),
            **{**LIMITS_OFF, **settings},
        )
        app = create_app(config)
        port = await _start(app, runners)
        return Relay(f"http://127.0.0.1:{port}", app, loop, config)

    async def stop() -> None:
        for runner in reversed(runners):
            await runner.cleanup()

    try:
        yield asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=30)
    finally:
        asyncio.run_coroutine_threadsafe(stop(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


@pytest.fixture(scope="module")
def admin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Relay]:
    """A relay with the admin API on (token ``t0ken``)."""
    yield from serve(tmp_path_factory.mktemp("admin-data"), admin_token=TOKEN)


@pytest.fixture(scope="module")
def no_admin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Relay]:
    """A relay without an admin token: the admin API is off."""
    yield from serve(tmp_path_factory.mktemp("plain-data"))
