"""Real relay processes for the tests that need more than one, or one to kill: each an
``onemin-relay serve`` child on a loopback port, sharing a store with its siblings."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import asyncpg

from onemin_relay.gateway import open_store
from onemin_relay.gateway.keys import issue
from onemin_relay.gateway.storage import Store
from onemin_relay.settings import Settings
from tests.conftest import LIMITS_OFF

POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_http(url: str, deadline: float, process: subprocess.Popen[bytes]) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: process exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer")


class Process:
    """A child process serving HTTP on a loopback port; its output goes to ``log``."""

    def __init__(self, args: list[str], env: dict[str, str], port: int, log: Path) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        full_env = {**os.environ, **env}
        with open(log, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "onemin_relay", *args],
                env=full_env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self, path: str = "/healthz", timeout: float = 30.0) -> None:
        _wait_http(self.url + path, time.monotonic() + timeout, self.process)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        return int(self.process.returncode)


@contextmanager
def emulator(tmp: Path) -> Iterator[Process]:
    port = free_port()
    proc = Process(["emulator", "--port", str(port)], {}, port, tmp / "emulator.log")
    try:
        proc.wait_ready("/models?feature=UNIFY_CHAT_WITH_AI")
        yield proc
    finally:
        proc.stop()


def relay_env(upstream: str, store_env: dict[str, str], **extra: str) -> dict[str, str]:
    return {
        "ONEMIN_UPSTREAM_URL": upstream,
        "ONEMIN_ASSET_URL": upstream,
        "ONEMIN_API_KEY": "operator-" + uuid.uuid4().hex[:8],
        "ONEMIN_LOG_LEVEL": "warning",
        **{f"ONEMIN_{name.upper()}": str(value) for name, value in LIMITS_OFF.items()},
        **store_env,
        **extra,
    }


@contextmanager
def relays(count: int, env: dict[str, str], tmp: Path) -> Iterator[list[Process]]:
    started: list[Process] = []
    try:
        for index in range(count):
            port = free_port()
            env_here = {**env, "ONEMIN_PORT": str(port)}
            started.append(Process(["serve"], env_here, port, tmp / f"relay-{index}.log"))
        for proc in started:
            proc.wait_ready()
        yield started
    finally:
        for proc in started:
            proc.stop()


@asynccontextmanager
async def postgres_database() -> AsyncIterator[str]:
    """A database of the test's own on the local PostgreSQL, dropped afterwards."""
    name = "onemin_test_" + uuid.uuid4().hex[:10]
    admin = await asyncpg.connect(POSTGRES_ADMIN_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@asynccontextmanager
async def store_for(env: dict[str, str]) -> AsyncIterator[Store]:
    settings = Settings.from_env(env)
    store = open_store(settings)
    await store.open()
    try:
        await store.migrate()
        yield store
    finally:
        await store.close()


async def managed_key(store: Store, balance_nanos: int) -> str:
    new = issue("managed", "burst", balance=balance_nanos)
    await store.add_key(new.record)
    return new.secret


def put_faults(emulator: str, key: str, **knobs: object) -> None:
    body = json.dumps(knobs).encode()
    request = urllib.request.Request(
        f"{emulator}/_emulator/faults/{key}", data=body, method="PUT",
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    urllib.request.urlopen(request, timeout=5).close()
