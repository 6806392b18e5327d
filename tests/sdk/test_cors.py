"""Browser clients: CORS preflights and headers on the API routes, never on the admin API."""

from __future__ import annotations

import urllib.error
import urllib.request

from tests.conftest import Stack

CHAT = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}'


def _call(
    url: str, method: str, headers: dict[str, str], data: bytes | None = None
) -> tuple[int, dict[str, str]]:
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, dict(answer.headers)
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, dict(exc.headers)


def _preflight(url: str, origin: str) -> tuple[int, dict[str, str]]:
    return _call(url, "OPTIONS", {
        "Origin": origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    })  # fmt: skip


def test_any_origin_may_call_the_api_by_default(stack: Stack, api_key: str) -> None:
    status, headers = _preflight(f"{stack.relay_url}/v1/chat/completions", "https://app.test")
    assert status == 204 and headers["Access-Control-Allow-Origin"] == "*"
    assert "authorization" in headers["Access-Control-Allow-Headers"]
    status, headers = _call(
        f"{stack.relay_url}/v1/chat/completions", "POST",
        {"Origin": "https://app.test", "Authorization": f"Bearer {api_key}",
         "Content-Type": "application/json"},
        CHAT,
    )  # fmt: skip
    assert status == 200 and headers["Access-Control-Allow-Origin"] == "*"
    assert "x-request-id" in headers["Access-Control-Expose-Headers"]


def test_never_on_the_admin_api(stack: Stack) -> None:
    status, headers = _preflight(f"{stack.relay_url}/admin/v1/keys", "https://app.test")
    assert status == 403 and "Access-Control-Allow-Origin" not in headers


def test_anonymous_access_closes_cors_unless_origins_are_listed(stack: Stack) -> None:
    with stack.another_relay(allow_anonymous=True) as (url, _):
        status, headers = _preflight(f"{url}/v1/chat/completions", "https://evil.test")
        assert status == 403 and "Access-Control-Allow-Origin" not in headers
    listed = {"allow_anonymous": True, "cors_origins": "https://app.test"}
    with stack.another_relay(**listed) as (url, _):
        assert _preflight(f"{url}/v1/chat/completions", "https://app.test")[0] == 204
        status, _ = _preflight(f"{url}/v1/chat/completions", "https://evil.test")
        assert status == 403
