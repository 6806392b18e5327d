"""The live 1min.ai model catalog, cached in memory.

Hard-coded model lists rot, so the relay reads ``GET /models?feature=…``. The catalog is
cached for a TTL, concurrent refreshes share one upstream fetch, and when a refresh fails
the last good copy keeps being served. DISABLED models are hidden: 1min.ai lists them but
rejects every call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from onemin_relay.core.errors import RelayError, UpstreamUnavailable
from onemin_relay.core.types import ModelInfo, ModelKind
from onemin_relay.upstream.client import CatalogEntry, OneMinClient

log = logging.getLogger(__name__)

# Feature enum → the kind of model it lists; the first kind listed wins for a shared id.
FEATURES: tuple[tuple[str, ModelKind], ...] = (
    ("UNIFY_CHAT_WITH_AI", "chat"),
    ("IMAGE_GENERATOR", "image"),
    ("SPEECH_TO_TEXT", "speech_to_text"),
    ("TEXT_TO_SPEECH", "text_to_speech"),
)


class Catalog:
    """An immutable snapshot: every usable model, indexed by id."""

    def __init__(self, models: list[ModelInfo], fetched_at: float) -> None:
        self.models = models
        self.fetched_at = fetched_at
        self._by_id = {m.id: m for m in reversed(models)}

    def get(self, model_id: str) -> ModelInfo | None:
        return self._by_id.get(model_id)


class ModelCatalog:
    def __init__(
        self,
        client: OneMinClient,
        ttl: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._ttl = ttl
        self._clock = clock
        self._current: Catalog | None = None
        self._expires = 0.0
        self._refresh: asyncio.Task[Catalog] | None = None

    async def get(self) -> Catalog:
        """The cached catalog, refreshed when stale; stale copy if the refresh fails."""
        if self._current is not None and self._clock() < self._expires:
            return self._current
        if self._refresh is None:
            self._refresh = asyncio.create_task(self._fetch())
            self._refresh.add_done_callback(self._refresh_done)
        try:
            return await asyncio.shield(self._refresh)
        except RelayError as exc:
            if self._current is not None:
                log.warning("model catalog refresh failed, serving stale copy: %s", exc)
                return self._current
            raise UpstreamUnavailable("the 1min.ai model catalog is unavailable") from exc

    def _refresh_done(self, task: asyncio.Task[Catalog]) -> None:
        self._refresh = None
        if task.cancelled() or task.exception() is not None:
            return
        self._current = task.result()
        self._expires = self._clock() + self._ttl

    async def _fetch(self) -> Catalog:
        lists = await asyncio.gather(*(self._client.list_models(f) for f, _ in FEATURES))
        models: list[ModelInfo] = []
        seen: set[str] = set()
        for (_, kind), entries in zip(FEATURES, lists, strict=True):
            for entry in entries:
                if entry.modelId in seen or (entry.status or "ACTIVE").upper() != "ACTIVE":
                    continue
                seen.add(entry.modelId)
                models.append(_to_model_info(entry, kind))
        return Catalog(models, time.time())


def _to_model_info(entry: CatalogEntry, kind: ModelKind) -> ModelInfo:
    inputs = (entry.modality or {}).get("INPUT") or []
    credits = entry.creditMetadata or {}
    return ModelInfo(
        id=entry.modelId,
        name=entry.name or entry.modelId,
        kind=kind,
        provider=entry.provider,
        vision=kind == "chat" and "image" in inputs,
        context_window=_int_or_none(credits.get("CONTEXT")),
        max_output_tokens=_int_or_none(credits.get("MAX_OUTPUT_TOKEN")),
    )


def _int_or_none(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)
