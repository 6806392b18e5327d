"""Model resolution against the emulator's catalog: pinned providers, undated names, 404s."""

from __future__ import annotations

import msgspec
import pytest

from onemin_relay.core.errors import ModelNotFound
from onemin_relay.emulator.catalog import CATALOG
from onemin_relay.upstream.client import CatalogEntry
from onemin_relay.upstream.models import Catalog, _to_model_info, not_found


def emulator_catalog() -> Catalog:
    """The emulator's active chat models, as the relay's catalog would hold them."""
    chat = [e for e in CATALOG if e.status == "ACTIVE" and "UNIFY_CHAT_WITH_AI" in e.features]
    entries = msgspec.json.decode(msgspec.json.encode(chat), type=list[CatalogEntry])
    return Catalog([_to_model_info(e, "chat") for e in entries], 0.0)


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return emulator_catalog()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("openai/gpt-4o", "gpt-4o"),
        ("anthropic/claude-sonnet-4-5", "claude-sonnet-4-5-20250929"),
        ("anthropic/claude-haiku-4-5", "us.anthropic.claude-haiku-4-5-20251001-v1:0"),
        ("google/gemini-2.5-flash", "gemini-2.5-flash"),
        ("gemini/gemini-2.5-pro", "gemini-2.5-pro"),
        ("mistral/open-mistral-nemo", "open-mistral-nemo"),
        ("deepseek/deepseek-chat", "deepseek-chat"),
        ("xai/grok-4", "grok-4"),
        ("claude-sonnet-4-5", "claude-sonnet-4-5-20250929"),
        ("command-r-plus", "command-r-plus-08-2024"),
        ("meta-llama/llama-4-maverick", "meta-llama/llama-4-maverick"),
    ],
)
def test_pinned_and_undated_names_resolve(catalog: Catalog, name: str, expected: str) -> None:
    found = catalog.resolve(name)
    assert found is not None and found.id == expected, f"{name} resolved to {found}"


@pytest.mark.parametrize(
    "name",
    [
        "openai/claude-sonnet-4-5",  # another provider's model is never chosen
        "anthropic/gpt-4o",
        "google/grok-4",
        "xai/gemini-2.5-flash",
        "deepseek/claude-sonnet-4-5-20250929",
        "openai/no-such-model",
    ],
)
def test_pinned_to_the_wrong_provider_resolves_to_nothing(catalog: Catalog, name: str) -> None:
    assert catalog.resolve(name) is None, f"{name} must not resolve across providers"


def test_newest_dated_model_wins_for_an_undated_name() -> None:
    old, new = (
        _to_model_info(CatalogEntry(modelId=i, provider="anthropic"), "chat")
        for i in ("claude-x-20240101", "claude-x-20250601")
    )
    found = Catalog([old, new], 0.0).resolve("anthropic/claude-x")
    assert found is not None and found.id == "claude-x-20250601"


def test_unknown_ids_get_the_closest_as_suggestions(catalog: Catalog) -> None:
    suggestions = catalog.closest("openai/gpt-4o-mni")
    assert suggestions[0] == "gpt-4o-mini", suggestions
    error = not_found("gpt-4o-mni", suggestions)
    assert isinstance(error, ModelNotFound) and error.status == 404
    assert "gpt-4o-mini" in error.message and error.details["suggestions"] == suggestions
