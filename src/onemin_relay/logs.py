"""JSON logs on stderr, and an access log that never prints a credential."""

from __future__ import annotations

import logging

import structlog
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from yarl import URL

_SECRET_PARAMS = frozenset({"key", "api_key", "apikey", "token", "access_token"})


def configure_logging(level: str = "info") -> None:
    formatter = structlog.stdlib.ProcessorFormatter(
        processor=structlog.processors.JSONRenderer(),
        foreign_pre_chain=[
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
        ],
    )
    handler = logging.StreamHandler()
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def redact_url(url: URL, known: frozenset[str] = frozenset()) -> str:
    """The path and query of ``url`` with credential-bearing query values masked, and a
    first path segment that is not one of the ``known`` route segments (a relay key, or a
    1min.ai key put in the wrong place) replaced by ``***``."""
    first, slash, rest = url.path[1:].partition("/")
    if first in known or not first:
        path = url.raw_path
    else:
        path = "/***" + (URL.build(path="/" + rest).raw_path if slash else "")
    if not url.query_string:
        return path
    query = [(k, "***" if k.lower() in _SECRET_PARAMS else v) for k, v in url.query.items()]
    return str(URL.build(path=path, encoded=True).with_query(query))


def route_segments(app: web.Application) -> frozenset[str]:
    """The first path segments of the app's own routes (``v1``, ``gemini``, ``healthz`` …)."""
    segments = set()
    for resource in app.router.resources():
        first = resource.canonical[1:].partition("/")[0]
        if first and not first.startswith("{"):
            segments.add(first)
    return frozenset(segments)


def _segments_of(request: web.BaseRequest) -> frozenset[str] | None:
    """The app's route segments; None for a request that never reached the app (malformed:
    its path is then masked whole)."""
    try:
        app = request.app if isinstance(request, web.Request) else None
    except AssertionError:  # no match info: the request line or headers were rejected
        return None
    return None if app is None else route_segments(app)


class AccessLogger(AbstractAccessLogger):
    """One line per request: method, redacted path, status, duration. No headers."""

    _known: frozenset[str] | None = None

    @property
    def enabled(self) -> bool:
        """aiohttp skips timing and calling :meth:`log` when this is false (below INFO)."""
        return self.logger.isEnabledFor(logging.INFO)

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        if self._known is None:
            self._known = _segments_of(request)
        self.logger.info(
            "%s %s %s %.1fms",
            request.method,
            redact_url(request.rel_url, self._known or frozenset()),
            response.status,
            time * 1000,
        )
