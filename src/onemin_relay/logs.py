"""JSON logs on stderr, and an access log that never prints a credential."""

from __future__ import annotations

import logging

import structlog
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from yarl import URL

from onemin_relay.relay_path import split_relay_key

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


def redact_url(url: URL) -> str:
    """The path and query of ``url`` with credential-bearing query values masked, and a
    key in the path's first segment (``/<relay-key>/v1/…``) replaced by ``***``."""
    key, rest = split_relay_key(url.path)
    path = url.raw_path if key is None else "/***" + URL.build(path=rest).raw_path
    if not url.query_string:
        return path
    query = [(k, "***" if k.lower() in _SECRET_PARAMS else v) for k, v in url.query.items()]
    return str(URL.build(path=path, encoded=True).with_query(query))


class AccessLogger(AbstractAccessLogger):
    """One line per request: method, redacted path, status, duration. No headers."""

    @property
    def enabled(self) -> bool:
        """aiohttp skips timing and calling :meth:`log` when this is false (below INFO)."""
        return self.logger.isEnabledFor(logging.INFO)

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            "%s %s %s %.1fms",
            request.method,
            redact_url(request.rel_url),
            response.status,
            time * 1000,
        )
