"""Logging in: failed attempts are rate-limited per client, a session cookie is Secure behind
an https proxy and refused on plain http from afar, the token reaches no log line, and
without an admin token there is no dashboard at all."""

from __future__ import annotations

import logging
import re
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from playwright.sync_api import APIRequestContext, APIResponse, BrowserContext, Page

from tests.admin.conftest import Relay, serve
from tests.dashboard.conftest import TOKEN, log_in

PROXY = {"X-Forwarded-Proto": "https"}


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Relay]:
    """A relay that believes 127.0.0.1 is its TLS-terminating proxy."""
    yield from serve(
        tmp_path_factory.mktemp("proxied-data"), admin_token=TOKEN, trusted_proxies="127.0.0.1"
    )


def login_post(request: APIRequestContext, relay: Relay, token: str, client: str) -> APIResponse:
    """One login through the proxy for ``client``: fetch the form, post it."""
    headers = {**PROXY, "X-Forwarded-For": client}
    form = request.get(relay.url + "/dashboard/login", headers=headers).text()
    nonce = re.search(r'name="csrf" value="([^"]+)"', form)
    assert nonce is not None
    answer = request.post(relay.url + "/dashboard/login", headers=headers, max_redirects=0,
                          form={"csrf": nonce.group(1), "token": token})  # fmt: skip
    return answer


def test_failed_logins_are_rate_limited_per_client(proxied: Relay, context: BrowserContext) -> None:
    attacker, operator = "198.51.100.7", "198.51.100.8"
    statuses = [login_post(context.request, proxied, "guess", attacker).status for _ in range(5)]
    assert statuses == [401] * 5
    headers = {**PROXY, "X-Forwarded-For": attacker}
    refused = context.request.post(proxied.url + "/dashboard/login", headers=headers,
                                   form={"token": TOKEN}, max_redirects=0)  # fmt: skip
    assert refused.status == 429
    assert 0 < int(refused.headers["retry-after"]) <= 60
    assert login_post(context.request, proxied, TOKEN, operator).status == 303


def test_behind_an_https_proxy_the_cookie_is_secure(proxied: Relay, page: Page) -> None:
    answer = login_post(page.request, proxied, TOKEN, "203.0.113.20")
    assert answer.status == 303
    cookies = [h["value"] for h in answer.headers_array if h["name"].lower() == "set-cookie"]
    (cookie,) = [value for value in cookies if value.startswith("onemin_dashboard=")]
    assert "secure" in [part.strip().lower() for part in cookie.split(";")], cookie


def test_plain_http_from_another_machine_gets_no_session(proxied: Relay, page: Page) -> None:
    page.set_extra_http_headers({"X-Forwarded-For": "203.0.113.21"})
    page.goto(proxied.url + "/dashboard")
    assert page.is_visible("text=served over https only")
    assert page.locator("input[name=token]").count() == 0


def test_the_token_reaches_no_log_line(
    relay: Relay, page: Page, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    log_in(page, relay, token=TOKEN + "-wrong")
    log_in(page, relay)
    page.goto(relay.url + "/dashboard/usage")
    assert page.url.endswith("/dashboard/usage")
    assert caplog.records, "the relay logged nothing at all: the check would prove nothing"
    assert not [r for r in caplog.records if TOKEN in r.getMessage()]


def test_without_an_admin_token_there_is_no_dashboard(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    paths = ["/dashboard", "/dashboard/login", "/dashboard/static/dashboard.css", "/dashboard/x"]
    for relay in serve(tmp_path_factory.mktemp("no-token-data")):
        for method, path in [*(("GET", p) for p in paths), ("POST", "/dashboard/login")]:
            body = b"token=x" if method == "POST" else None
            request = urllib.request.Request(relay.url + path, data=body, method=method)
            with pytest.raises(urllib.error.HTTPError) as caught:
                urllib.request.urlopen(request, timeout=10)
            assert caught.value.code == 404, path
            caught.value.close()
