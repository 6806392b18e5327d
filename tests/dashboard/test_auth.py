"""Sessions, CSRF tokens and the failed-login limit, without a server."""

from __future__ import annotations

from onemin_relay.dashboard.auth import FAILED_LOGINS, SESSION_SECONDS, Auth, LoginLimiter
from onemin_relay.settings import Settings


def test_a_session_cookie_is_signed_expires_and_ends_at_logout() -> None:
    auth = Auth(Settings(admin_token="secret-token"))
    session, cookie = auth.new_session(now=1000)
    assert "secret-token" not in cookie
    assert auth.session(cookie, now=1001) == session
    assert auth.session(cookie, now=1000 + SESSION_SECONDS) is None
    expiry, session_id, signature = cookie.split(".")
    assert auth.session(f"{int(expiry) + 9999}.{session_id}.{signature}", now=1001) is None
    assert auth.session(cookie, now=1001) is not None
    assert Auth(Settings(admin_token="another-token")).session(cookie, now=1001) is None
    auth.end(session)
    assert auth.session(cookie, now=1001) is None


def test_csrf_tokens_belong_to_one_session() -> None:
    auth = Auth(Settings(admin_token="secret-token"))
    one, _ = auth.new_session()
    other, _ = auth.new_session()
    assert auth.csrf_matches(one, one.csrf)
    assert not auth.csrf_matches(one, other.csrf)
    assert not auth.csrf_matches(one, "")


def test_failed_logins_are_limited_per_address_and_window() -> None:
    limiter = LoginLimiter()
    for _ in range(FAILED_LOGINS):
        assert limiter.retry_after("10.0.0.1", now=100) == 0
        limiter.failed("10.0.0.1", now=100)
    assert limiter.retry_after("10.0.0.1", now=110) == 50
    assert limiter.retry_after("10.0.0.2", now=110) == 0
    assert limiter.retry_after("10.0.0.1", now=160) == 0
