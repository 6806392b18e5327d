"""The live 1min.ai model catalog, cached in memory.

Hard-coded model lists rot, so the relay reads ``GET /models?feature=…``. The catalog is
cached for a TTL, concurrent refreshes share one upstream fetch, and when a refresh fails
the last good copy keeps being served. DISABLED models are hidden: 1min.ai lists them but
rejects every call. With a ``shared`` tier (:mod:`onemin_relay.upstream.catalog_cache`),
relay processes reuse a snapshot one of them fetched while it is younger than the TTL.
"""

from __future__ import annotations

import asyncio
import difflib
import logging
import re
import time
from collections.abc import Callable

from onemin_relay.core.errors import (
    ModelNotFound,
    RelayError,
    UnsupportedModel,
    UpstreamUnavailable,
)
from onemin_relay.core.types import ModelInfo, ModelKind
from onemin_relay.upstream.catalog_cache import SharedCatalog, decode_snapshot, encode_snapshot
from onemin_relay.upstream.client import CatalogEntry, OneMinClient

log = logging.getLogger(__name__)

# Feature enum → the kind of model it lists; the first kind listed wins for a shared id.
# Variator-only and translator-only models are listed under the kind that serves them.
FEATURES: tuple[tuple[str, ModelKind], ...] = (
    ("UNIFY_CHAT_WITH_AI", "chat"),
    ("IMAGE_GENERATOR", "image"),
    ("IMAGE_VARIATOR", "image"),
    ("SPEECH_TO_TEXT", "speech_to_text"),
    ("AUDIO_TRANSLATOR", "speech_to_text"),
    ("TEXT_TO_SPEECH", "text_to_speech"),
)


class Catalog:
    """An immutable snapshot: every usable model, indexed by id."""

    def __init__(self, models: list[ModelInfo], fetched_at: float) -> None:
        self.models = models
        self.fetched_at = fetched_at
        self._by_id = {m.id: m for m in reversed(models)}
        self._by_folded = {m.id.lower(): m for m in reversed(models)}
        by_base: dict[str, list[ModelInfo]] = {}
        by_undated: dict[str, list[ModelInfo]] = {}
        for model in models:
            base = base_name(model.id)
            by_base.setdefault(base, []).append(model)
            undated, date = split_date(base)
            if date:
                by_undated.setdefault(undated, []).append(model)
        self._by_base = by_base
        self._by_undated = {  # newest first
            name: sorted(found, key=lambda m: split_date(base_name(m.id))[1], reverse=True)
            for name, found in by_undated.items()
        }

    def get(self, model_id: str) -> ModelInfo | None:
        return self._by_id.get(model_id)

    def resolve(self, name: str) -> ModelInfo | None:
        """The model a client means by ``name``: the exact id first, then the same id in
        another case, then the one model whose id differs only by a vendor or region prefix
        or a version suffix (``claude-sonnet-4-5-20250929`` finds
        ``us.anthropic.claude-sonnet-4-5-20250929-v1:0``), then for an undated name the
        newest dated model of that name. A provider-pinned id (``openai/gpt-4.1``) resolves
        only to that provider's models. Ambiguous names resolve to None.
        """
        found = self._by_id.get(name) or self._by_folded.get(name.lower())
        if found is not None:
            return found
        providers, bare = pinned_provider(name)
        if providers is not None:
            found = self._by_id.get(bare) or self._by_folded.get(bare.lower())
            if found is not None:
                return found if _by(providers, found) else None
        base = base_name(bare)
        candidates = self._of(providers, self._by_base.get(base, []))
        if not candidates:  # undated: the newest of that name
            candidates = self._of(providers, self._by_undated.get(base, []))[:1]
        return candidates[0] if len(candidates) == 1 else None

    @staticmethod
    def _of(providers: frozenset[str] | None, models: list[ModelInfo]) -> list[ModelInfo]:
        return models if providers is None else [m for m in models if _by(providers, m)]

    def closest(self, name: str, kind: ModelKind = "chat", limit: int = 5) -> list[str]:
        """The ids most like ``name`` (for a 404's suggestions), closest first."""
        ids = [m.id for m in self.models if m.kind == kind]
        _, bare = pinned_provider(name)
        return difflib.get_close_matches(bare.lower(), ids, n=limit, cutoff=0.4)


# Provider prefixes a client may pin a model with → the catalog's provider slugs.
PROVIDER_PREFIXES: dict[str, frozenset[str]] = {
    "openai": frozenset({"openai"}),
    "anthropic": frozenset({"anthropic"}),
    "google": frozenset({"googleai", "google"}),
    "gemini": frozenset({"googleai", "google"}),
    "mistral": frozenset({"mistralai", "mistral"}),
    "mistralai": frozenset({"mistralai", "mistral"}),
    "deepseek": frozenset({"deepseek"}),
    "xai": frozenset({"xai"}),
    "x-ai": frozenset({"xai"}),
}
_REGION_PREFIXES = ("us.", "eu.", "apac.", "global.")
_VENDOR_PREFIXES = ("anthropic.", "models/")
_DATE = re.compile(r"-(\d{8}|\d{4}-\d{2}-\d{2}|\d{2}-\d{4})$")


def pinned_provider(name: str) -> tuple[frozenset[str] | None, str]:
    """``openai/gpt-4.1`` → (OpenAI's provider slugs, ``gpt-4.1``); unpinned → (None, name)."""
    prefix, sep, rest = name.partition("/")
    providers = PROVIDER_PREFIXES.get(prefix.lower()) if sep else None
    return (providers, rest) if providers is not None else (None, name)


def _by(providers: frozenset[str], model: ModelInfo) -> bool:
    """Whether one of ``providers`` serves ``model``; a model listed without a provider
    counts when its id names one (``us.anthropic.claude-…``)."""
    if model.provider is not None:
        return model.provider.lower() in providers
    return any(f"{p}." in model.id.lower() for p in providers)


def base_name(model_id: str) -> str:
    """``us.anthropic.claude-x-v1:0`` → ``claude-x``: the id without vendor or version dress."""
    name = model_id.lower()
    name = next((name[len(p) :] for p in _REGION_PREFIXES if name.startswith(p)), name)
    name = next((name[len(p) :] for p in _VENDOR_PREFIXES if name.startswith(p)), name)
    head, sep, version = name.rpartition("-v")
    if sep and version.replace(":", "").isdigit():
        name = head
    return name


def split_date(name: str) -> tuple[str, str]:
    """``claude-x-20250929`` → (``claude-x``, ``20250929``); a date sorts as it reads
    (``08-2024`` becomes ``20240800``). Undated → (name, "")."""
    match = _DATE.search(name)
    if match is None:
        return name, ""
    date = match.group(1)
    if len(date) == 7:  # MM-YYYY
        date = date[3:] + date[:2] + "00"
    return name[: match.start()], date.replace("-", "")


class ModelCatalog:
    def __init__(
        self,
        client: OneMinClient,
        ttl: float,
        clock: Callable[[], float] = time.monotonic,
        shared: SharedCatalog | None = None,
    ) -> None:
        self._client = client
        self._ttl = ttl
        self._clock = clock
        self._shared = shared  # a catalog other processes fetched, tried before 1min.ai
        self._current: Catalog | None = None
        self._expires = 0.0
        self._refresh: asyncio.Task[tuple[Catalog, float]] | None = None

    async def get(self) -> Catalog:
        """The cached catalog, refreshed when stale; stale copy if the refresh fails."""
        if self._current is not None and self._clock() < self._expires:
            return self._current
        if self._refresh is None:
            self._refresh = asyncio.create_task(self._fetch())
            self._refresh.add_done_callback(self._refresh_done)
        try:
            return (await asyncio.shield(self._refresh))[0]
        except RelayError as exc:
            if self._current is not None:
                log.warning("model catalog refresh failed, serving stale copy: %s", exc)
                return self._current
            raise UpstreamUnavailable("the 1min.ai model catalog is unavailable") from exc

    async def checked(self, name: str, kind: ModelKind) -> ModelInfo | None:
        """The model a client means by ``name``, which must be a ``kind`` model.

        Unknown → ModelNotFound (404), another kind → UnsupportedModel (400). An unreadable
        catalog returns None instead of failing: 1min.ai still rejects an unknown model, and
        that answer maps to the same 404, so a catalog outage does not take calls down.
        """
        try:
            catalog = await self.get()
        except RelayError as exc:
            log.warning("model catalog unavailable, not validating %r: %s", name, exc)
            return None
        info = catalog.resolve(name)
        if info is None:
            raise not_found(name, catalog.closest(name, kind))
        if info.kind != kind:
            raise UnsupportedModel(
                f"{name!r} is a {_label(info.kind)} model, not a {_label(kind)} model",
                param="model",
            )
        return info

    def _refresh_done(self, task: asyncio.Task[tuple[Catalog, float]]) -> None:
        self._refresh = None
        if task.cancelled() or task.exception() is not None:
            return
        self._current, lifetime = task.result()
        self._expires = self._clock() + lifetime

    async def _fetch(self) -> tuple[Catalog, float]:
        """A fresh catalog and how many more seconds it stays fresh: the shared snapshot
        while it is younger than the TTL, else 1min.ai's answer (then shared)."""
        if self._shared is None:
            return await self._fetch_upstream(), self._ttl
        snapshot = decode_snapshot(await self._shared.load())
        if snapshot is not None:
            left = snapshot.fetched_at + self._ttl - time.time()
            if left > 0:
                return Catalog(snapshot.models, snapshot.fetched_at), min(left, self._ttl)
        catalog = await self._fetch_upstream()
        await self._shared.save(encode_snapshot(catalog.models, catalog.fetched_at), self._ttl)
        return catalog, self._ttl

    async def _fetch_upstream(self) -> Catalog:
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
        credit_metadata=credits or None,
    )


def not_found(name: str, suggestions: list[str]) -> ModelNotFound:
    """The 404 for an unknown model, naming the closest ids the catalog has."""
    hint = f"; the closest are: {', '.join(suggestions)}" if suggestions else ""
    error = ModelNotFound(f"the model {name!r} does not exist{hint}", param="model")
    if suggestions:
        error.details["suggestions"] = suggestions
    return error


def _label(kind: ModelKind) -> str:
    return kind.replace("_", "-")


def _int_or_none(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)
