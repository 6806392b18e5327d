"""``onemin-relay serve --demo`` as a user starts it: a child process on a free loopback port,
with its store in a directory of the test's own."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.gateway.procs import Process, free_port

ADMIN_TOKEN = "readme-admin-token"  # what a reader of the README sets as ONEMIN_ADMIN_TOKEN


def demo_env(tmp: Path) -> dict[str, str]:
    """The environment of the demo relay started in ``tmp``, and of the CLI commands that
    share its store."""
    return {
        "ONEMIN_DATA_DIR": str(tmp / "data"),
        "ONEMIN_ADMIN_TOKEN": ADMIN_TOKEN,
        "ONEMIN_LOG_LEVEL": "warning",
    }


@contextmanager
def demo_relay(tmp: Path) -> Iterator[Process]:
    """A relay in demo mode (its built-in emulator answering like a model), stopped at exit;
    its log is ``tmp/demo-relay.log``."""
    port = free_port()
    env = {**demo_env(tmp), "ONEMIN_PORT": str(port)}
    relay = Process(["serve", "--demo"], env, port, tmp / "demo-relay.log")
    try:
        relay.wait_ready()
        yield relay
    finally:
        relay.stop()
