"""A second tier behind the in-memory model catalog, shared by every relay process.

One process fetches ``/models`` from 1min.ai and saves a snapshot; the others load it
instead of asking 1min.ai themselves. A snapshot is the usable models plus the wall-clock
time they were fetched (``time.time()``), msgpack-encoded; its reader decides whether it is
still fresh. The shared tier is an optimisation only: it never raises, and when it is
unavailable each process fetches the catalog itself.

The Redis tier is :mod:`.redis_catalog`, imported only when Redis is configured.
"""

from __future__ import annotations

import logging
from typing import Protocol

import msgspec

from onemin_relay.core.types import ModelInfo

log = logging.getLogger(__name__)


class SharedCatalog(Protocol):
    async def load(self) -> bytes | None:
        """The saved snapshot, or None if there is none or it cannot be read. Never raises."""
        ...

    async def save(self, data: bytes, ttl: float) -> None:
        """Keep ``data`` for ``ttl`` seconds; on failure nothing is kept. Never raises."""
        ...


class CatalogSnapshot(msgspec.Struct, frozen=True):
    models: list[ModelInfo]
    fetched_at: float  # time.time() when 1min.ai answered


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(CatalogSnapshot)


def encode_snapshot(models: list[ModelInfo], fetched_at: float) -> bytes:
    return _encoder.encode(CatalogSnapshot(models=models, fetched_at=fetched_at))


def decode_snapshot(data: bytes | None) -> CatalogSnapshot | None:
    """The snapshot in ``data``; None for no data or data this version cannot read."""
    if data is None:
        return None
    try:
        return _decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        log.warning("shared model catalog unreadable, ignoring it: %s", exc)
        return None
