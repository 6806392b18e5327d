"""What ``onemin-relay routes show`` prints: each route's models, the evidence behind its
candidates, and what routing saved so far according to the ledger.

The saving of a routed call is what its incumbent would have cost for the same tokens, at
the catalog's prices, less what the call did cost (1min.ai's own figure). Calls the
incumbent answered itself save nothing; failed attempts are left out.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from onemin_relay.core.errors import RelayError
from onemin_relay.gateway.evidence import EvidenceRow
from onemin_relay.gateway.pricing import chat_credits
from onemin_relay.gateway.route_policy import Floor, qualifies, wilson_lower
from onemin_relay.gateway.routing import Catalog, parse_account, resolve_route
from onemin_relay.gateway.routing_config import ROUTE_NAMES, RouteBook

UsageRow = tuple[str, str, int, int, int, int, str]  # route, model, in, out, credits, status, mode


class ModelLine(msgspec.Struct, frozen=True):
    """One model of a route, and (for a candidate) its evidence for one kind of request."""

    project: str
    route: str
    model: str
    role: str  # incumbent, candidate or fallback
    kind: str | None = None
    win_rate: float | None = None  # win-or-tie share, weighted
    lower_bound: float | None = None
    samples: int = 0
    takes_traffic: bool = False


class Saving(msgspec.Struct, frozen=True):
    route: str
    requests: int  # routed calls that answered
    by_candidates: int  # of which a cheaper candidate answered
    saved_credits: int  # against the incumbents, before shadow spend
    shadow_credits: int  # what shadow runs and the judge cost the operator


def model_lines(
    book: RouteBook, catalog: Catalog | None, evidence: Iterable[EvidenceRow]
) -> list[ModelLine]:
    """Every route of every project with its models and the candidates' evidence."""
    found: dict[tuple[str, str], list[EvidenceRow]] = {}
    for row in evidence:
        found.setdefault((row.project, row.route), []).append(row)
    lines: list[ModelLine] = []
    for project in book.projects:
        for name in ROUTE_NAMES:
            route = book.route(project, name)
            if catalog is not None:
                models = resolve_route(route, catalog)
                incumbent, candidates = models.incumbent, models.candidates
                fallbacks = models.fallbacks
            else:  # no catalog: the route as configured ("-" where the catalog decides)
                incumbent = route.incumbent or "-"
                candidates, fallbacks = route.candidates or (), route.fallbacks or ()
            label = route.label
            lines.append(ModelLine(project, label, incumbent, "incumbent"))
            rows = found.get((project, name), [])
            for candidate in candidates:
                mine = [r for r in rows if r.candidate == candidate]
                lines += [_evidence_line(project, label, r, route.floor) for r in mine]
                if not mine:
                    lines.append(ModelLine(project, label, candidate, "candidate"))
            lines += [ModelLine(project, label, f, "fallback") for f in fallbacks]
    return lines


def _evidence_line(project: str, label: str, row: EvidenceRow, floor: Floor) -> ModelLine:
    tally = row.tally
    rate = tally.good / tally.total if tally.total else None
    return ModelLine(
        project,
        label,
        row.candidate,
        "candidate",
        kind=row.kind,
        win_rate=rate,
        lower_bound=wilson_lower(tally.good, tally.total, floor.confidence),
        samples=tally.samples,
        takes_traffic=qualifies(tally, floor),
    )


def savings(usage: Iterable[UsageRow], catalog: Catalog | None) -> list[Saving]:
    """Per route: routed calls that answered, how many a candidate answered, the credits
    saved against each call's incumbent (0 where the catalog is unknown), and the credits
    shadow runs cost."""
    totals: dict[str, list[int]] = {}
    for account, model, tokens_in, tokens_out, credits, status, mode in usage:
        fields = parse_account(account)
        if not fields.get("route", "").startswith("onemin/"):
            continue
        entry = totals.setdefault(fields["route"], [0, 0, 0, 0])
        if mode == "shadow":
            entry[3] += credits
            continue
        if status >= 400:
            continue
        entry[0] += 1
        incumbent = fields.get("incumbent")
        if incumbent is None or model == incumbent:
            continue
        entry[1] += 1
        info = catalog.get(incumbent) if catalog is not None else None
        if info is None:
            continue
        try:
            entry[2] += chat_credits(info, tokens_in, tokens_out) - credits
        except RelayError:  # the catalog lists no token price for it
            continue
    return [Saving(route, *values) for route, values in sorted(totals.items())]
