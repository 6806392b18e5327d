"""Caps on open client connections, in total and per peer address, checked at accept.

A connection past a cap is aborted the moment it is accepted, before aiohttp gives it a
parser, buffers or timers, as HAProxy's ``tcp-request connection reject`` does: a flood
costs one ``accept`` and one ``close`` per attempt. An HTTP answer (a 503) would first have
to read the request, which is what a flood wants the server to spend. The SDKs retry a
refused connection like any connection error.

The per-address cap counts the socket's peer. A trusted proxy (``ONEMIN_TRUSTED_PROXIES``)
carries many clients on its connections, so it is held only to the total; its own
per-client limits (nginx ``limit_conn``, HAProxy ``src_conn_cur``) are the place for theirs.
Each worker process counts its own connections.
"""

from __future__ import annotations

import logging
import time
from typing import Literal, TypeAlias

from prometheus_client import CollectorRegistry, Counter, Gauge

from onemin_relay.settings import Settings
from onemin_relay.surfaces.common import IPNetwork, within

log = logging.getLogger(__name__)

Refusal: TypeAlias = Literal["total", "per_ip"]
LOG_EVERY_SECONDS = 10.0  # refusals are logged at most this often, with their count


class ConnectionCaps:
    """Open connections per process and per peer address; 0 turns a cap off."""

    def __init__(self, total: int, per_ip: int, exempt: tuple[IPNetwork, ...] = ()) -> None:
        self.total = total
        self.per_ip = per_ip
        self.open = 0
        self._exempt = exempt
        self._by_ip: dict[str, int] = {}
        self._refused: Counter | None = None
        self._unlogged = 0
        self._logged_at = -LOG_EVERY_SECONDS

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectionCaps:
        return cls(
            settings.max_connections,
            settings.max_connections_per_ip,
            settings.trusted_proxy_networks,
        )

    def admit(self, peer: str | None) -> bool:
        """Count a new connection from ``peer`` (its address), or refuse it."""
        refusal = self._refusal(peer)
        if refusal is not None:
            self._note(refusal, peer)
            return False
        self.open += 1
        ip = self._counted(peer)
        if ip is not None:
            self._by_ip[ip] = self._by_ip.get(ip, 0) + 1
        return True

    def release(self, peer: str | None) -> None:
        """A connection that ``admit`` let in has closed."""
        self.open -= 1
        ip = self._counted(peer)
        if ip is not None:
            left = self._by_ip.pop(ip) - 1
            if left:
                self._by_ip[ip] = left

    def instrument(self, registry: CollectorRegistry) -> None:
        """Show the open connections and the refusals in ``registry`` (``/metrics``)."""
        Gauge(
            "onemin_relay_connections_open",
            "Client connections open in this process.",
            registry=registry,
        ).set_function(lambda: self.open)
        self._refused = Counter(
            "onemin_relay_connections_refused",
            "Client connections refused at accept, by the cap they were over.",
            ["cap"],
            registry=registry,
        )

    def _refusal(self, peer: str | None) -> Refusal | None:
        if self.total and self.open >= self.total:
            return "total"
        ip = self._counted(peer)
        if ip is not None and self._by_ip.get(ip, 0) >= self.per_ip:
            return "per_ip"
        return None

    def _counted(self, peer: str | None) -> str | None:
        """The address a connection counts against, if the per-address cap applies."""
        if not self.per_ip or peer is None or within(peer, self._exempt):
            return None
        return peer

    def _note(self, refusal: Refusal, peer: str | None) -> None:
        if self._refused is not None:
            self._refused.labels(refusal).inc()
        self._unlogged += 1
        now = time.monotonic()
        if now - self._logged_at < LOG_EVERY_SECONDS:
            return
        if refusal == "total":
            cap = f"ONEMIN_MAX_CONNECTIONS ({self.total} open)"
        else:
            cap = f"ONEMIN_MAX_CONNECTIONS_PER_IP ({self.per_ip} open from {peer})"
        log.warning("refused %d connection(s) at accept, the latest over %s", self._unlogged, cap)
        self._unlogged, self._logged_at = 0, now
