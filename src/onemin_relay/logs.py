"""Logs on stderr (JSON, or readable lines on a terminal), and an access log that never
prints a credential."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from yarl import URL

# query parameters whose values are logged; every other value is masked, since a client may
# put a key in any parameter
_SHOWN_PARAMS = frozenset(
    {"alt", "feature", "stream", "limit", "group_by", "since", "key_id", "pagesize", "pagetoken"}
)


def configure_logging(
    level: str = "info", *, stream: TextIO | None = None, json: bool | None = None
) -> None:
    """Send every log record to ``stream`` (stderr): one JSON object a line, or readable
    lines when ``json`` is false. By default JSON unless the stream is a terminal.
    A record's exception is rendered as its traceback text."""
    stream = sys.stderr if stream is None else stream
    if json is None:
        json = not _is_terminal(stream)
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if json
        # a plain traceback: a rich one would print local variables, credentials included
        else structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )
    )
    pre_chain: list[structlog.typing.Processor] = [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if json:  # the console renderer prints the exception itself
        pre_chain.append(structlog.processors.format_exc_info)
    formatter = structlog.stdlib.ProcessorFormatter(processor=renderer, foreign_pre_chain=pre_chain)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or already closed
        return False


def redact_url(url: URL, known: frozenset[str] = frozenset()) -> str:
    """The path and query of ``url`` with every query value masked but a known harmless few,
    and a first path segment that is not one of the ``known`` route segments (a relay key,
    or a 1min.ai key put in the wrong place) replaced by ``***``."""
    first, slash, rest = url.path[1:].partition("/")
    if first in known or not first:
        path = url.raw_path
    else:
        path = "/***" + (URL.build(path="/" + rest).raw_path if slash else "")
    if not url.query_string:
        return path
    query = [(k, v if k.lower() in _SHOWN_PARAMS else "***") for k, v in url.query.items()]
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
