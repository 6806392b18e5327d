"""Conversations in the dashboard: calls made with the official SDKs under one conversation id
show as one timeline, each request opens onto its trace, and a prompt full of markup is
shown as the text it is."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import openai
import pytest
from playwright.sync_api import Page

from tests.admin.conftest import Relay, serve
from tests.dashboard.conftest import TOKEN, log_in, screenshot
from tests.dashboard.test_dashboard_browser import create_key

HOSTILE_PROMPT = "<script>window.pwned = 1</script><b>bold?</b> & 'quotes'"
CONVERSATION = "conv-dashboard-1"


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Relay]:
    yield from serve(
        tmp_path_factory.mktemp("conversation-data"), admin_token=TOKEN, trace_bodies="full"
    )


def talk(relay: Relay, secret: str) -> str:
    """Two OpenAI calls and one Anthropic call in one conversation; the last request's id."""
    headers = {"x-onemin-conversation-id": CONVERSATION}
    chat = openai.OpenAI(base_url=relay.url + "/v1", api_key=secret, max_retries=0)
    chat.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello"}], extra_headers=headers
    )
    chat.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": HOSTILE_PROMPT}],
        extra_headers=headers,
    )
    claude = anthropic.Anthropic(base_url=relay.url, api_key=secret, max_retries=0)
    reply = claude.messages.with_raw_response.create(
        model="claude-haiku-4-5-20251001",
        max_tokens=64,
        messages=[{"role": "user", "content": "And you?"}],
        extra_headers=headers,
    )
    request_id = reply.headers["x-request-id"]
    relay.flush_ledger()
    return request_id


@pytest.mark.timeout(120)
def test_a_conversation_across_protocols_opens_onto_each_trace(relay: Relay, page: Page) -> None:
    log_in(page, relay)
    secret = create_key(page, "conversation key")
    last_request = talk(relay, secret)

    page.goto(relay.url + "/dashboard/conversations")
    row = page.locator("table.data tbody tr", has_text=CONVERSATION)
    assert row.locator("td").nth(2).inner_text() == "3"
    screenshot(page, "conversations")
    row.locator("a").click()
    items = page.locator("ol.timeline > li")
    assert items.count() == 3
    surfaces = items.locator("summary").all_inner_texts()
    assert "/v1/chat/completions" in surfaces[0] and "messages" in surfaces[2]

    items.nth(1).locator("summary").click()
    prompt = items.nth(1).locator("pre.text").first
    assert HOSTILE_PROMPT in prompt.inner_text()
    assert items.nth(1).locator("pre.text b").count() == 0
    assert page.evaluate("window.pwned") is None
    screenshot(page, "conversation")

    items.nth(2).locator("summary").click()
    items.nth(2).locator(f"a:text-is('{last_request}')").click()
    assert page.url.endswith(f"/dashboard/requests/{last_request}")
    assert page.locator("svg.waterfall rect").count() >= 2
    screenshot(page, "request-trace")


def test_unknown_conversations_and_requests_are_404_pages(relay: Relay, page: Page) -> None:
    log_in(page, relay)
    for path in ("/dashboard/conversations/nope", "/dashboard/requests/nope"):
        answer = page.goto(relay.url + path)
        assert answer is not None and answer.status == 404
        assert page.is_visible("text=Not found")
    answer = page.goto(relay.url + "/dashboard/conversations?status=bogus")
    assert answer is not None and answer.status == 400
    assert page.is_visible("[role=alert]")
