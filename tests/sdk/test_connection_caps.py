"""Open connections are capped in total and per peer address: the one past a cap is
refused at accept (raw sockets from several loopback addresses), and closing one frees
its slot."""

from __future__ import annotations

import socket
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import pytest

from onemin_relay.connections import ConnectionCaps
from onemin_relay.settings import Settings, SettingsError
from tests.conftest import Stack

FREE_SLOT_WAIT = 10.0  # seconds a closed connection may take to be noticed by the server


def connect(url: str, stack: ExitStack, source: str = "127.0.0.1") -> socket.socket:
    port = int(url.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
    return stack.enter_context(sock)


def served(sock: socket.socket) -> bool:
    """Whether the relay answers on this connection (False: it was refused at accept)."""
    try:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: relay\r\n\r\n")
        answer = sock.recv(65536)
    except ConnectionError:
        return False
    return answer.startswith(b"HTTP/1.1 200")


def served_once_freed(url: str, stack: ExitStack, source: str) -> bool:
    """Whether a new connection from ``source`` is served once the server has seen a close
    (new attempts until then are refused; bounded in time and count)."""
    deadline = time.monotonic() + FREE_SLOT_WAIT
    for _ in range(200):
        if served(connect(url, stack, source)):
            return True
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    return False


@contextmanager
def capped_relay(stack: Stack, **caps: object) -> Iterator[str]:
    with stack.another_relay(**caps) as (url, _app):
        yield url


def test_a_connection_past_either_cap_is_refused_until_one_closes(stack: Stack) -> None:
    with capped_relay(stack, max_connections=3, max_connections_per_ip=2) as url:
        with ExitStack() as s:
            first, second = connect(url, s), connect(url, s)
            assert served(first) and served(second), "two connections from one address fit"
            assert not served(connect(url, s)), "a third from the same address is refused"
            assert served(connect(url, s, "127.0.0.2")), "another address still gets in"
            assert not served(connect(url, s, "127.0.0.3")), "past the total, all are refused"
            first.close()
            assert served_once_freed(url, s, "127.0.0.1"), "a closed connection frees its slot"
            assert served(second), "the connections let in are untouched"
        metrics = metrics_once_all_closed(url)
    assert 'onemin_relay_connections_refused_total{cap="per_ip"}' in metrics
    assert 'onemin_relay_connections_refused_total{cap="total"}' in metrics


def metrics_once_all_closed(url: str) -> str:
    """``/metrics`` once the server has seen every test connection close (its own is the
    only one open); bounded in time and count."""
    deadline = time.monotonic() + FREE_SLOT_WAIT
    metrics = ""
    for _ in range(200):
        try:
            with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
                metrics = response.read().decode()
        except OSError:  # refused while the server has not yet seen the closes
            metrics = ""
        if "onemin_relay_connections_open 1.0" in metrics or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert "onemin_relay_connections_open 1.0" in metrics, "closed connections are released"
    return metrics


def test_a_trusted_proxy_counts_only_towards_the_total(stack: Stack) -> None:
    caps = {"max_connections": 10, "max_connections_per_ip": 1, "trusted_proxies": "127.0.0.5"}
    with capped_relay(stack, **caps) as url, ExitStack() as s:
        proxied = [connect(url, s, "127.0.0.5") for _ in range(3)]
        assert all(map(served, proxied)), "a proxy carries many clients"
        assert served(connect(url, s, "127.0.0.6"))
        assert not served(connect(url, s, "127.0.0.6")), "a direct client is held to its cap"


def test_caps_count_and_release() -> None:
    caps = ConnectionCaps(total=3, per_ip=2)
    assert [caps.admit("192.0.2.1") for _ in range(3)] == [True, True, False]
    assert caps.admit("192.0.2.2") and not caps.admit("192.0.2.3"), "the total is 3"
    caps.release("192.0.2.1")
    assert caps.admit("192.0.2.1") and caps.open == 3
    unlimited = ConnectionCaps(total=0, per_ip=0)
    assert all(unlimited.admit("192.0.2.1") for _ in range(1000)), "0 turns the caps off"
    assert ConnectionCaps(total=0, per_ip=1).admit(None), "a peer with no address counts in total"


@pytest.mark.parametrize("name", ["ONEMIN_MAX_CONNECTIONS", "ONEMIN_MAX_CONNECTIONS_PER_IP"])
def test_negative_caps_are_refused_at_start(name: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: "-1"})
    assert Settings.from_env({name: "0"}) is not None
