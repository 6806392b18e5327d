"""Who may see the dashboard: the admin token, once, at a login form; a signed session
cookie after that; CSRF tokens bound to the session; failed logins counted per client IP.

The cookie never holds the token. It holds an expiry and a random session id, signed with a
key derived from the token (HMAC-SHA256), so every worker process accepts it without shared
state, and changing ``ONEMIN_ADMIN_TOKEN`` ends every session. A form's CSRF token is an HMAC
of the session id under the same key: it cannot be made without the session cookie, which a
cross-site page can neither read nor (``SameSite=Strict``) send.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import time
from collections import deque
from dataclasses import dataclass
from ipaddress import ip_address
from typing import Final

from aiohttp import web

from onemin_relay.settings import Settings
from onemin_relay.surfaces.common import IPNetwork, client_address, within

COOKIE: Final = "onemin_dashboard"
LOGIN_COOKIE: Final = "onemin_dashboard_login"  # double-submit CSRF token of the login form
PATH: Final = "/dashboard"
SESSION_SECONDS: Final = 8 * 3600
FAILED_LOGINS: Final = 5  # per client IP within FAILURE_WINDOW
FAILURE_WINDOW: Final = 60.0
TRACKED_CLIENTS: Final = 10_000  # past this many addresses, stale ones are forgotten
_KEY_LABEL: Final = b"onemin-relay dashboard session v1"


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    expires_at: float
    csrf: str


class LoginLimiter:
    """At most ``FAILED_LOGINS`` failed logins per address per ``FAILURE_WINDOW`` seconds
    (per process: with several workers an address gets that many at each)."""

    def __init__(self, limit: int = FAILED_LOGINS, window: float = FAILURE_WINDOW) -> None:
        self._limit, self._window = limit, window
        self._failures: dict[str, deque[float]] = {}

    def retry_after(self, address: str, now: float | None = None) -> int:
        """Seconds until ``address`` may try again; 0 when it may now."""
        moment = time.time() if now is None else now
        if address not in self._failures:  # asking keeps nothing
            return 0
        failures = self._recent(address, moment)
        if len(failures) < self._limit:
            return 0
        return max(1, math.ceil(failures[0] + self._window - moment))

    def failed(self, address: str, now: float | None = None) -> None:
        moment = time.time() if now is None else now
        if len(self._failures) >= TRACKED_CLIENTS:
            self._forget_stale(moment)
        while address not in self._failures and len(self._failures) >= TRACKED_CLIENTS:
            # a flood from many addresses: the longest-tracked make room
            del self._failures[next(iter(self._failures))]
        self._recent(address, moment).append(moment)

    def _recent(self, address: str, now: float) -> deque[float]:
        failures = self._failures.setdefault(address, deque())
        while failures and failures[0] <= now - self._window:
            failures.popleft()
        return failures

    def _forget_stale(self, now: float) -> None:
        for address in [a for a, f in self._failures.items() if not f or f[-1] <= now - 60]:
            del self._failures[address]


class Auth:
    """The dashboard's gatekeeper for one application."""

    def __init__(self, settings: Settings) -> None:
        token = settings.admin_token or ""
        self._token = token.encode()
        self._key = hmac.new(self._token, _KEY_LABEL, hashlib.sha256).digest()
        self._ended: dict[str, float] = {}  # session ids logged out here, until they expire
        self._trusted = settings.trusted_proxy_networks
        self.limiter = LoginLimiter()

    def token_matches(self, presented: str) -> bool:
        return bool(self._token) and hmac.compare_digest(presented.encode(), self._token)

    def new_session(self, now: float | None = None) -> tuple[Session, str]:
        """A fresh session and the cookie value that carries it."""
        expires = int((time.time() if now is None else now) + SESSION_SECONDS)
        session_id = secrets.token_urlsafe(18)
        body = f"{expires}.{session_id}"
        return self._session(session_id, expires), f"{body}.{self._sign('s', body)}"

    def session(self, cookie: str | None, now: float | None = None) -> Session | None:
        """The session a cookie carries, if its signature holds and it has not ended."""
        if not cookie or cookie.count(".") != 2:
            return None
        expires_text, session_id, signature = cookie.split(".")
        body = f"{expires_text}.{session_id}"
        if not hmac.compare_digest(signature, self._sign("s", body)):
            return None
        moment = time.time() if now is None else now
        expires = int(expires_text)
        if expires <= moment or session_id in self._ended:
            return None
        return self._session(session_id, expires)

    def end(self, session: Session) -> None:
        """Log ``session`` out in this process (the browser also drops its cookie)."""
        now = time.time()
        for ended in [s for s, until in self._ended.items() if until <= now]:
            del self._ended[ended]
        self._ended[session.id] = session.expires_at

    def csrf_matches(self, session: Session, presented: str) -> bool:
        return hmac.compare_digest(presented.encode(), session.csrf.encode())

    def client(self, request: web.Request) -> str:
        return client_address(request, self._trusted)

    def over_https(self, request: web.Request) -> bool:
        """Whether the browser reached us over https: directly, or through a trusted proxy
        that says so (``X-Forwarded-Proto`` or ``Forwarded: proto=``)."""
        return request.secure or forwarded_https(request, self._trusted)

    def cookie_allowed(self, request: web.Request) -> bool:
        """A session travels over https, or over plain http only to a loopback client (the
        operator on the same machine); anything else would expose it on the wire."""
        return self.over_https(request) or _is_loopback(self.client(request))

    def _session(self, session_id: str, expires: int) -> Session:
        return Session(session_id, float(expires), self._sign("c", session_id))

    def _sign(self, purpose: str, text: str) -> str:
        return hmac.new(self._key, f"{purpose}:{text}".encode(), hashlib.sha256).hexdigest()


def forwarded_https(request: web.Request, trusted: tuple[IPNetwork, ...]) -> bool:
    peer = request.remote or ""
    if not trusted or not within(peer, trusted):
        return False
    proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    if proto:
        return proto == "https"
    forwarded = request.headers.get("Forwarded", "").split(",")[0]
    pairs = (pair.strip().partition("=") for pair in forwarded.split(";"))
    return any(name.lower() == "proto" and value.strip('"').lower() == "https"
               for name, _, value in pairs)  # fmt: skip


def set_session_cookie(response: web.StreamResponse, value: str, secure: bool) -> None:
    response.set_cookie(
        COOKIE, value, path=PATH, max_age=SESSION_SECONDS, secure=secure, httponly=True,
        samesite="Strict",
    )  # fmt: skip


def set_login_cookie(response: web.StreamResponse, value: str, secure: bool) -> None:
    response.set_cookie(
        LOGIN_COOKIE, value, path=PATH, max_age=3600, secure=secure, httponly=True,
        samesite="Strict",
    )  # fmt: skip


def _is_loopback(address: str) -> bool:
    try:
        return ip_address(address).is_loopback
    except ValueError:
        return False
