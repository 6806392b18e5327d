"""Routing's evidence as the store keeps it, and the ledger reads routing needs.

Evidence is kept per project × route × kind of request × candidate: the weighted wins-or-ties
of the candidate against the route's incumbent, out of a weighted total, and how many
comparisons stand behind them (``route_policy.Tally``). Judge verdicts and application labels
add to it as they arrive; the policy reads it back. Each ledger row of a routed call keeps
the route's account (``x-onemin-route``), which the feedback endpoint and ``routes show``
read. The queries are written once with ``{p}`` placeholders for both engines.
"""

from __future__ import annotations

import time

import msgspec

from onemin_relay.gateway.route_policy import Tally
from onemin_relay.gateway.trace_store import Query, TraceQueries, _numbered

ROUTING_MIGRATION = """
    ALTER TABLE ledger ADD COLUMN route TEXT;
    CREATE INDEX ledger_request ON ledger (request_id);
    CREATE TABLE route_evidence (
        project TEXT NOT NULL,
        route TEXT NOT NULL,
        kind TEXT NOT NULL,
        candidate TEXT NOT NULL,
        good {real} NOT NULL,
        total {real} NOT NULL,
        samples BIGINT NOT NULL,
        updated_at {real} NOT NULL,
        PRIMARY KEY (project, route, kind, candidate)
    )
"""
# An answer counts once as a label, however often feedback names it.
LABELS_MIGRATION = """
    CREATE TABLE route_labels (
        request_id TEXT PRIMARY KEY,
        project TEXT NOT NULL,
        at {real} NOT NULL
    )
"""
_LABEL = (
    "INSERT INTO route_labels (request_id, project, at) VALUES ({p}, {p}, {p}) "
    "ON CONFLICT (request_id) DO NOTHING"
)
_EVIDENCE_COLUMNS = "project, route, kind, candidate, good, total, samples"
_ADD = (
    "INSERT INTO route_evidence (project, route, kind, candidate, good, total, samples, "
    "updated_at) VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}) "
    "ON CONFLICT (project, route, kind, candidate) DO UPDATE SET "
    "good = route_evidence.good + excluded.good, "
    "total = route_evidence.total + excluded.total, "
    "samples = route_evidence.samples + excluded.samples, updated_at = excluded.updated_at"
)


class EvidenceRow(msgspec.Struct, frozen=True):
    project: str
    route: str
    kind: str
    candidate: str
    tally: Tally


class EvidenceReads:
    """A store's evidence methods, over its engine's ``_rows`` and ``_changed`` (as
    ``TraceReads``); the placeholders follow the engine of ``_traces``."""

    _traces: TraceQueries

    async def add_evidence(
        self, project: str, route: str, kind: str, candidate: str, tally: Tally
    ) -> None:
        """Add ``tally`` to what is known of ``candidate`` (created on first use)."""
        values: list[object] = [project, route, kind, candidate]
        values += [tally.good, tally.total, tally.samples, time.time()]
        await self._changed((self._sql(_ADD), values))

    async def add_label(self, project: str, request_id: str) -> bool:
        """Note that the answer to ``request_id`` has its label; False if it had one."""
        values: list[object] = [request_id, project, time.time()]
        return await self._changed((self._sql(_LABEL), values)) == 1

    async def evidence(self, project: str | None = None) -> list[EvidenceRow]:
        """Every tally, or one project's, in a stable order."""
        where = "" if project is None else " WHERE project = {p}"
        sql = f"SELECT {_EVIDENCE_COLUMNS} FROM route_evidence{where} ORDER BY 1, 2, 3, 4"
        rows = await self._rows((self._sql(sql), [] if project is None else [project]))
        typed = msgspec.convert(rows, list[tuple[str, str, str, str, float, float, int]])
        return [EvidenceRow(p, r, k, c, Tally(g, t, n)) for p, r, k, c, g, t, n in typed]

    async def routed_rows(self, request_id: str) -> list[tuple[str | None, str | None, int]]:
        """(project, route account, status) of each routed ledger row of a request (its
        attempts; not the shadow runs it caused)."""
        sql = (
            "SELECT project, route, status FROM ledger WHERE request_id = {p} "
            "AND mode <> 'shadow' ORDER BY at"
        )
        rows = await self._rows((self._sql(sql), [request_id]))
        typed = msgspec.convert(rows, list[tuple[str | None, str | None, int]])
        return [row for row in typed if row[1] is not None]

    async def routed_usage(self, since: float) -> list[tuple[str, str, int, int, int, int, str]]:
        """(route account, upstream model, input tokens, output tokens, credits, status,
        mode) of every routed call and shadow run since ``since``."""
        sql = (
            "SELECT route, upstream_model, input_tokens, output_tokens, credits, status, mode "
            "FROM ledger WHERE route IS NOT NULL AND at >= {p} ORDER BY at"
        )
        rows = await self._rows((self._sql(sql), [since]))
        return msgspec.convert(rows, list[tuple[str, str, int, int, int, int, str]])

    def _sql(self, sql: str) -> str:
        return _numbered(self._traces.dialect, sql)

    async def _rows(self, query: Query) -> list[tuple[object, ...]]:
        raise NotImplementedError

    async def _changed(self, query: Query) -> int:
        raise NotImplementedError
