"""The emulator's configuration and in-memory state, kept in typed ``AppKey`` slots."""

from __future__ import annotations

import time
import uuid
from collections import deque
from typing import Any, Literal, TypeAlias

import msgspec
from aiohttp import web

from onemin_relay.emulator.billing import AccountBook
from onemin_relay.emulator.faults import Envelope, FaultBook, Faults

ReplyStyle: TypeAlias = Literal["echo", "model"]

MB = 1024 * 1024


class EmulatorConfig(msgspec.Struct, frozen=True, kw_only=True):
    """How one emulator instance behaves.

    ``asset_base_url`` is the public base of the asset host used in the URLs it hands out
    (``<base>/images/…``); ``None`` means this app's own origin, which serves those paths.
    ``api_keys`` ``None`` accepts any non-empty ``API-KEY``. ``error_envelope`` picks the
    401/422/429 body shape (§8): live-style ``flat`` or the ``documented`` one. ``replies``
    picks how chat answers: ``echo`` (the default, exact text tests assert on; see
    ``replies``) or ``model``, answers that read like a model's, for demo mode (see
    ``demo_replies``). The ``reply`` / ``replies`` knobs win over both.
    """

    asset_base_url: str | None = None
    api_keys: frozenset[str] | None = None
    error_envelope: Envelope = "flat"
    legacy_features_chat: bool = False
    max_asset_bytes: int = 50 * MB
    max_recorded_requests: int = 1000
    replies: ReplyStyle = "echo"


class RecordedRequest(msgspec.Struct):
    """One request as seen by the emulator, filled in while it is served."""

    method: str
    path: str
    query: dict[str, str]
    api_key: str | None
    started_at: float
    body: Any = None
    status: int | None = None
    stream: bool = False
    completed: bool = False
    client_disconnected: bool = False
    writes: list[int] = msgspec.field(default_factory=list)  # sizes of streamed body writes
    finished_at: float | None = None


class Asset(msgspec.Struct, frozen=True):
    uuid: str
    key: str
    mimetype: str
    data: bytes


class Conversation(msgspec.Struct):
    uuid: str
    title: str
    type: str
    model: str
    created_at: str
    turns: list[tuple[str, str]] = msgspec.field(default_factory=list)  # (prompt, reply)


class EmulatorState:
    """Everything the emulator remembers between requests; lives for the app's lifetime."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.faults = FaultBook()
        self.accounts = AccountBook()
        self.requests: deque[RecordedRequest] = deque(maxlen=config.max_recorded_requests)
        self.assets: dict[str, Asset] = {}  # by key (= fileContent.path)
        self.asset_keys_by_uuid: dict[str, str] = {}
        self.conversations: dict[str, Conversation] = {}

    def record(self, request: web.Request) -> RecordedRequest:
        entry = RecordedRequest(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            api_key=request.headers.get("API-KEY") or None,
            started_at=time.time(),
        )
        self.requests.append(entry)
        return entry

    def store_asset(self, key: str, mimetype: str, data: bytes) -> Asset:
        asset = Asset(uuid=str(uuid.uuid4()), key=key, mimetype=mimetype, data=data)
        self.assets[key] = asset
        self.asset_keys_by_uuid[asset.uuid] = key
        return asset

    def is_image(self, ref: str) -> bool:
        """An image attachment the model would see: a stored asset path or any http(s) URL."""
        return ref in self.assets or ref.startswith(("http://", "https://"))

    def is_file(self, ref: str) -> bool:
        """A file attachment the model would see: only a stored asset's uuid counts."""
        return ref in self.asset_keys_by_uuid


CONFIG = web.AppKey("emulator_config", EmulatorConfig)
STATE = web.AppKey("emulator_state", EmulatorState)
RECORD = web.RequestKey("emulator_record", RecordedRequest)
FAULTS = web.RequestKey("emulator_faults", Faults)
