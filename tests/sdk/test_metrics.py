"""GET /metrics: Prometheus counters a real request moves, with bounded, key-free labels."""

from __future__ import annotations

import re
import urllib.request

import openai
import pytest
from google import genai

from tests.conftest import Stack

HELLO = [{"role": "user", "content": "hello"}]


def scrape(stack: Stack) -> str:
    with urllib.request.urlopen(f"{stack.relay_url}/metrics", timeout=5) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        return response.read().decode()


def value(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = re.compile(rf"^{name}\{{{re.escape(wanted)}\}} (\S+)$", re.MULTILINE)
    found = pattern.search(text)
    return float(found.group(1)) if found else 0.0


def test_requests_latency_and_errors_are_counted(
    client: openai.OpenAI, stack: Stack, api_key: str
) -> None:
    route = "/v1/chat/completions"
    before = scrape(stack)
    client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-model", messages=HELLO)
    stack.set_faults(api_key, error_after_chunks=1)
    with pytest.raises(openai.APIError):
        list(client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, stream=True))
    after = scrape(stack)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("onemin_relay_requests_total", route=route, status="200") == 2
    assert delta("onemin_relay_requests_total", route=route, status="404") == 1
    assert delta("onemin_relay_errors_total", code="model_not_found") == 1
    assert delta("onemin_relay_errors_total", code="upstream_stream_error") == 1
    assert delta("onemin_relay_request_seconds_count", route=route) == 3


def test_labels_carry_route_patterns_not_paths_or_keys(
    gemini: genai.Client, stack: Stack, api_key: str
) -> None:
    gemini.models.generate_content(model="gemini-2.5-flash", contents="hi")
    text = scrape(stack)
    assert api_key not in text
    assert re.search(r'route="/gemini/v1(beta)?/models/\{target\}"', text), "the route pattern"
    assert "gemini-2.5-flash" not in text, "model names in paths must not become label values"
