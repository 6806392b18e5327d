"""Models from the live catalog, and the service endpoints."""

from __future__ import annotations

import json
import urllib.request

import openai
import pytest

from tests.conftest import Stack


def test_models_list_covers_chat_image_and_speech(client: openai.OpenAI) -> None:
    models = {m.id: m for m in client.models.list()}
    assert "gpt-4o-mini" in models
    assert "dall-e-3" in models, "image models are listed"
    assert "whisper-1" in models, "speech-to-text models are listed"
    assert "tts-1" in models, "text-to-speech models are listed"
    assert "claude-3-5-sonnet-20240620" not in models, "DISABLED models are hidden"
    assert "black-forest-labs/flux-schnell" not in models
    assert models["gpt-4o"].model_extra["capabilities"]["vision"] is True
    assert models["dall-e-3"].model_extra["type"] == "image"


def test_routing_aliases_are_listed_and_retrievable(client: openai.OpenAI) -> None:
    listed = {m.id: m for m in client.models.list()}
    for alias in ("onemin/auto", "onemin/balanced", "onemin/cost-saver"):
        assert listed[alias].owned_by == "onemin-relay"
        assert client.models.retrieve(alias).id == alias
    assert "onemin-auto" not in listed, "the URL form is for Gemini's paths, not for lists"


def test_model_with_slash_in_id_is_retrievable(client: openai.OpenAI) -> None:
    model = client.models.retrieve("meta-llama/llama-4-maverick")
    assert model.id == "meta-llama/llama-4-maverick"


def test_unknown_model_retrieve_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("does-not-exist")


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def test_index_lists_endpoints(stack: Stack) -> None:
    info = get_json(stack.relay_url + "/")
    assert info["name"] == "onemin-relay"
    assert "POST /v1/chat/completions" in info["endpoints"]
    assert "GET /v1/models" in info["endpoints"]


def test_health(stack: Stack) -> None:
    assert get_json(stack.relay_url + "/healthz") == {"status": "ok"}
    assert get_json(stack.relay_url + "/readyz")["status"] == "ok"
