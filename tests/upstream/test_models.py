"""The model catalog cache: TTL, one fetch for concurrent callers, stale copy on failure."""

from __future__ import annotations

import asyncio

import pytest

from onemin_relay.core.errors import UpstreamError, UpstreamUnavailable
from onemin_relay.core.types import ModelInfo
from onemin_relay.upstream.client import CatalogEntry
from onemin_relay.upstream.models import FEATURES, Catalog, ModelCatalog


class FakeUpstream:
    """Stands in for OneMinClient.list_models: counts calls, can fail or be slow."""

    def __init__(self) -> None:
        self.calls = 0
        self.fail = False
        self.delay = 0.0

    async def list_models(self, feature: str) -> list[CatalogEntry]:
        self.calls += 1
        await asyncio.sleep(self.delay)
        if self.fail:
            raise UpstreamError("down")
        if feature == "UNIFY_CHAT_WITH_AI":
            return [
                CatalogEntry(
                    modelId="gpt-4o", status="ACTIVE", modality={"INPUT": ["text", "image"]}
                ),
                CatalogEntry(modelId="old", status="DISABLED"),
                CatalogEntry(modelId="shared", creditMetadata={"CONTEXT": 8000}),
            ]
        if feature == "IMAGE_GENERATOR":
            return [CatalogEntry(modelId="dall-e-3", modality=None), CatalogEntry(modelId="shared")]
        return []


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def upstream() -> FakeUpstream:
    return FakeUpstream()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def catalog(upstream: FakeUpstream, clock: Clock) -> ModelCatalog:
    return ModelCatalog(upstream, ttl=60, clock=clock)  # type: ignore[arg-type]


async def test_disabled_hidden_and_chat_wins_shared_ids(catalog: ModelCatalog) -> None:
    current = await catalog.get()
    ids = [m.id for m in current.models]
    assert ids == ["gpt-4o", "shared", "dall-e-3"]
    assert current.get("shared").kind == "chat"  # type: ignore[union-attr]
    assert current.get("shared").context_window == 8000  # type: ignore[union-attr]
    assert current.get("gpt-4o").vision  # type: ignore[union-attr]
    assert current.get("old") is None


async def test_cached_within_ttl(
    catalog: ModelCatalog, upstream: FakeUpstream, clock: Clock
) -> None:
    await catalog.get()
    calls = upstream.calls
    clock.now = 59
    await catalog.get()
    assert upstream.calls == calls
    clock.now = 61
    await catalog.get()
    assert upstream.calls == 2 * calls


async def test_concurrent_callers_share_one_fetch(
    catalog: ModelCatalog, upstream: FakeUpstream
) -> None:
    upstream.delay = 0.05
    results = await asyncio.gather(*(catalog.get() for _ in range(20)))
    assert upstream.calls == len(FEATURES), "one request per feature, however many callers"
    assert all(r is results[0] for r in results)


async def test_stale_copy_served_when_refresh_fails(
    catalog: ModelCatalog, upstream: FakeUpstream, clock: Clock
) -> None:
    first = await catalog.get()
    clock.now = 1000
    upstream.fail = True
    assert await catalog.get() is first


async def test_no_copy_and_upstream_down_is_unavailable(
    catalog: ModelCatalog, upstream: FakeUpstream
) -> None:
    upstream.fail = True
    with pytest.raises(UpstreamUnavailable):
        await catalog.get()


async def test_cancelled_caller_does_not_cancel_the_shared_fetch(
    catalog: ModelCatalog, upstream: FakeUpstream
) -> None:
    upstream.delay = 0.05
    impatient = asyncio.create_task(catalog.get())
    await asyncio.sleep(0.01)
    impatient.cancel()
    current = await catalog.get()
    assert current.get("gpt-4o") is not None
    assert upstream.calls == len(FEATURES)


def test_resolve_exact_then_case_then_unique_base() -> None:
    models = [
        ModelInfo(id="gpt-4o", name="", kind="chat"),
        ModelInfo(id="us.anthropic.claude-sonnet-4-5-20250929-v1:0", name="", kind="chat"),
        ModelInfo(id="claude-haiku-4-5", name="", kind="chat"),
        ModelInfo(id="eu.anthropic.claude-haiku-4-5-v1:0", name="", kind="chat"),
    ]
    catalog = Catalog(models, 0)
    assert catalog.resolve("gpt-4o") is models[0]
    assert catalog.resolve("GPT-4o") is models[0]
    assert catalog.resolve("claude-sonnet-4-5-20250929") is models[1], "Bedrock-style id"
    assert catalog.resolve("anthropic/claude-sonnet-4-5-20250929") is models[1]
    assert catalog.resolve("claude-haiku-4-5") is models[2], "the exact id wins over a match"
    assert catalog.resolve("claude-opus-4") is None
