"""The dashboard as an operator uses it, in headless Chromium: log in, issue a key, spend it
with the official OpenAI SDK, find the calls in usage, revoke the key; and what must never
work: pages without a login, forms without their CSRF token, scripts smuggled into a page."""

from __future__ import annotations

import openai
import pytest
from playwright.sync_api import BrowserContext, Page

from tests.admin.conftest import Relay
from tests.dashboard.conftest import TOKEN, log_in, screenshot

HOSTILE_NAME = "<img src=x onerror=\"document.title='pwned'\"><script>window.pwned=1</script>"


def client_for(relay: Relay, secret: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=relay.url + "/v1", api_key=secret, max_retries=0)


def chat(relay: Relay, secret: str, prompt: str, model: str = "gpt-4o-mini") -> str:
    reply = client_for(relay, secret).chat.completions.create(
        model=model, messages=[{"role": "user", "content": prompt}]
    )
    return reply.choices[0].message.content or ""


def create_key(page: Page, name: str, balance: str = "5") -> str:
    page.goto(page.url.split("/dashboard")[0] + "/dashboard/keys")
    page.fill("input[name=name]", name)
    page.fill("input[name=balance_usd]", balance)
    page.click("text=Create key")
    secret = page.inner_text("#new-key").strip()
    assert secret.startswith("sk-onemin-"), secret
    return secret


def assert_no_token(page: Page, seen: list[str]) -> None:
    assert TOKEN not in page.content()
    assert not [url for url in seen if TOKEN in url]


@pytest.mark.timeout(120)
def test_issue_spend_see_and_revoke_a_key(relay: Relay, page: Page) -> None:
    seen: list[str] = []
    page.on("request", lambda request: seen.append(request.url))
    page.goto(relay.url + "/dashboard")
    assert page.url.endswith("/dashboard/login")
    screenshot(page, "login")
    log_in(page, relay)
    assert page.url.endswith("/dashboard")

    secret = create_key(page, "alice laptop")
    assert page.is_visible("text=shown this once")
    screenshot(page, "keys-created")
    assert chat(relay, secret, "Say hello")
    assert chat(relay, secret, "And again, in French")
    relay.flush_ledger()

    page.goto(relay.url + "/dashboard/usage?group=key&days=1")
    row = page.locator("table.data tbody tr", has_text="alice laptop")
    assert row.locator("td").nth(1).inner_text() == "2"
    screenshot(page, "usage-by-key")
    page.click(".tabs a:text-is('model')")
    assert page.locator("table.data tbody tr", has_text="gpt-4o-mini").count() == 1
    screenshot(page, "usage-by-model")
    page.click(".tabs a:text-is('day')")
    screenshot(page, "usage-by-day")
    with page.expect_download() as download:
        page.click("text=Export CSV")
    assert download.value.suggested_filename == "onemin-usage-by-day-1d.csv"

    page.goto(relay.url + "/dashboard")
    assert page.locator("figure.chart svg").count() == 3
    assert page.locator("table.data tbody tr", has_text="alice laptop").count() == 2
    screenshot(page, "overview")

    page.goto(relay.url + "/dashboard/keys")
    page.click("text=alice laptop")
    page.fill("input[name=amount_usd]", "2.5")
    page.click("text=Add to balance")
    assert page.is_visible("text=Balance topped up.")
    screenshot(page, "key")
    page.click("text=Revoke key")
    assert page.is_visible("text=Key revoked")
    with pytest.raises(openai.AuthenticationError):
        chat(relay, secret, "Still there?")
    assert_no_token(page, seen)


def test_markup_in_a_key_name_is_shown_as_text(relay: Relay, page: Page) -> None:
    log_in(page, relay)
    create_key(page, HOSTILE_NAME, balance="0")
    page.goto(relay.url + "/dashboard/keys")
    assert page.locator("table.data td", has_text=HOSTILE_NAME).count() == 1
    assert page.locator("table.data img").count() == 0
    assert page.evaluate("window.pwned") is None
    assert "pwned" not in page.title()


def test_a_form_without_its_csrf_token_is_refused(relay: Relay, context: BrowserContext) -> None:
    page = context.new_page()
    log_in(page, relay)
    before = len(relay.run(relay.store.keys()))
    for form in ({"name": "forged"}, {"name": "forged", "csrf": "not-the-token"}):
        answer = context.request.post(relay.url + "/dashboard/keys", form=form)
        assert answer.status == 403, form
    assert len(relay.run(relay.store.keys())) == before
    assert context.request.post(relay.url + "/dashboard/logout", form={}).status == 403


@pytest.mark.parametrize(
    "path",
    ["/dashboard", "/dashboard/keys", "/dashboard/usage", "/dashboard/usage.csv",
     "/dashboard/keys/key_0123456789ab", "/dashboard/no-such-page"],
)  # fmt: skip
def test_no_page_answers_without_a_login(relay: Relay, context: BrowserContext, path: str) -> None:
    answer = context.request.get(relay.url + path, max_redirects=0)
    assert answer.status == 303
    assert answer.headers["location"] == "/dashboard/login"
    forged = context.request.get(
        relay.url + path, max_redirects=0, headers={"Cookie": "onemin_dashboard=1.x.y"}
    )
    assert forged.status == 303
    posted = context.request.post(relay.url + "/dashboard/keys", form={"name": "x"},
                                  max_redirects=0)  # fmt: skip
    assert posted.status == 303


def test_pages_carry_a_strict_policy_and_a_safe_cookie(
    relay: Relay, context: BrowserContext
) -> None:
    page = context.new_page()
    first = page.goto(relay.url + "/dashboard/login")
    assert first is not None
    policy = first.headers["content-security-policy"]
    for part in ("default-src 'self'", "frame-ancestors 'none'", "form-action 'self'"):
        assert part in policy
    assert "unsafe-inline" not in policy
    assert first.headers["x-content-type-options"] == "nosniff"
    assert first.headers["referrer-policy"] == "no-referrer"
    log_in(page, relay)
    (session,) = [c for c in context.cookies() if c["name"] == "onemin_dashboard"]
    assert session["httpOnly"] and session["sameSite"] == "Strict"
    assert session["path"] == "/dashboard"
    assert TOKEN not in session["value"]


def test_routing_shows_each_route_and_its_routed_calls(relay: Relay, page: Page) -> None:
    log_in(page, relay)
    secret = create_key(page, "routed key")
    assert chat(relay, secret, "Route me", model="onemin/balanced")
    relay.flush_ledger()
    page.goto(relay.url + "/dashboard/routing")
    routes = page.locator("table.data").first
    for name in ("onemin/auto", "onemin/balanced", "onemin/cost-saver"):
        assert routes.locator("td", has_text=name).count() >= 1, name
    saved = page.locator("table.data").nth(1).locator("tbody tr", has_text="onemin/balanced")
    assert saved.locator("td").nth(1).inner_text() == "1"
    screenshot(page, "routing")
