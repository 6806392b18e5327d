"""Relay keys in the URL path: ``/<relay-key>/v1/…`` serves what ``/v1/…`` serves.

A client that can only set a base URL (``https://host/<relay-key>/v1``) still carries the
operator's relay key. Rather than register every route twice, one resource at the root of
the router takes any path whose first segment is not a route of its own, resolves the rest
(``/v1/…``, ``/anthropic/…``, ``/gemini/…``) as usual and hands the segment to the handler
as ``match_info["relay_key"]``. The router tries it only after every ordinary route failed,
so ordinary paths cost nothing extra. Whether the segment is a valid relay key (or a 1min.ai
key put in the wrong place) is for the gateway to say, with a 401 that never repeats it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sized

from aiohttp import web
from aiohttp.abc import AbstractMatchInfo
from aiohttp.web_urldispatcher import (
    AbstractResource,
    AbstractRoute,
    MatchInfoError,
    UrlDispatcher,
    UrlMappingMatchInfo,
    _InfoDict,
)
from yarl import URL

RELAY_KEY = "relay_key"
CLIENT_PREFIXES = ("/v1/", "/anthropic/", "/gemini/")


class RelayKeyResource(AbstractResource, Sized):
    def __init__(self, router: UrlDispatcher) -> None:
        super().__init__(name=None)
        self._router = router

    @property
    def canonical(self) -> str:
        return "/"  # indexed at the root: consulted after every more specific route

    def url_for(self, **kwargs: str) -> URL:
        raise NotImplementedError("relay-key paths are not built by name")

    def add_prefix(self, prefix: str) -> None:
        raise NotImplementedError("relay-key paths do not nest")

    def get_info(self) -> _InfoDict:
        return {"path": "/{relay_key}/…"}

    def raw_match(self, path: str) -> bool:
        return False

    async def resolve(self, request: web.Request) -> tuple[UrlMappingMatchInfo | None, set[str]]:
        key, rest = split_relay_key(request.rel_url.path)
        if key is None:
            return None, set()
        inner = request.clone(rel_url=request.rel_url.with_path(rest, encoded=False))
        match: AbstractMatchInfo = await self._router.resolve(inner)
        if isinstance(match, MatchInfoError) or not isinstance(match, UrlMappingMatchInfo):
            return None, set()
        match[RELAY_KEY] = key
        return match, set()

    def __len__(self) -> int:
        return 0

    def __iter__(self) -> Iterator[AbstractRoute]:
        return iter(())


def split_relay_key(path: str) -> tuple[str | None, str]:
    """``/<key>/v1/chat`` → (``<key>``, ``/v1/chat``); (None, path) when it is not one.

    A first segment that is itself a client prefix (``/v1/v1/…``) is not a key: the rest
    is resolved once, never by this resource again."""
    first, slash, rest = path[1:].partition("/")
    rest = "/" + rest
    if not first or not slash or not rest.startswith(CLIENT_PREFIXES):
        return None, path
    if f"/{first}/" in CLIENT_PREFIXES:
        return None, path
    return first, rest


def add_relay_key_paths(app: web.Application) -> None:
    """Mount every client route under ``/{relay_key}`` (call once all routes are added)."""
    app.router.register_resource(RelayKeyResource(app.router))


def canonical_path(request: web.Request) -> str:
    """The request's path without a relay key, for choosing its protocol and for logs."""
    if RELAY_KEY in request.match_info:
        return split_relay_key(request.path)[1]
    return request.path
