"""``onemin-relay routes show``: each route's models, its candidates' evidence, the saving.

Reads the routes file and the store the environment names, and the live model catalog (to
resolve routes the catalog decides and to price the saving; without it the routes are shown
as configured and the saving as unknown).
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import msgspec
import typer
from rich.table import Table

from onemin_relay.admin import tables
from onemin_relay.admin.commands import JsonOption, fail, on_store, show
from onemin_relay.admin.views import format_usd
from onemin_relay.core.errors import RelayError
from onemin_relay.gateway.pricing import credits_to_nanos
from onemin_relay.gateway.route_report import ModelLine, Saving, model_lines, savings
from onemin_relay.gateway.routing import Catalog
from onemin_relay.gateway.routing_config import RoutesFileError, load_routes
from onemin_relay.gateway.storage import Store
from onemin_relay.settings import Settings, SettingsError, parse_duration

routes = typer.Typer(no_args_is_help=True, help="Model routes behind the onemin/* aliases.")
NANOS_PER_USD = 1_000_000_000


def register(cli: typer.Typer) -> None:
    cli.add_typer(routes, name="routes")


@routes.command("show")
def show_routes(
    since: Annotated[str, typer.Option(help="Saving over this period, e.g. 30d or 12h")] = "30d",
    as_json: JsonOption = False,
) -> None:
    """Each route's incumbent, candidates (win-or-tie rate, lower bound, samples, whether it
    takes the traffic) and fallbacks, and what routing saved against the incumbents."""
    try:
        settings = Settings.from_env()
        book = load_routes(settings.routes_file, settings.data_dir)
        start = time.time() - parse_duration(since)
    except (SettingsError, RoutesFileError, ValueError) as exc:
        fail(str(exc), 2)

    async def read(store: Store) -> dict[str, Any]:
        catalog = await _catalog(settings)
        lines = model_lines(book, catalog, await store.evidence())
        saved = savings(await store.routed_usage(start), catalog)
        return _payload(lines, saved, settings, catalog is not None)

    payload = on_store(read)
    show(payload, as_json, *_tables(payload))


async def _catalog(settings: Settings) -> Catalog | None:
    # imported here: the other commands should not pay for loading the upstream client
    import aiohttp

    from onemin_relay.upstream import ModelCatalog, OneMinClient

    async with aiohttp.ClientSession() as session:
        try:
            return await ModelCatalog(OneMinClient(session, settings), ttl=60).get()
        except RelayError:
            return None


def _payload(
    lines: list[ModelLine], saved: list[Saving], settings: Settings, priced: bool
) -> dict[str, Any]:
    rate = settings.credits_per_usd
    return {
        "models": msgspec.to_builtins(lines),
        "savings": [
            {
                **msgspec.to_builtins(s),
                "saved_usd": credits_to_nanos(s.saved_credits, rate) / NANOS_PER_USD
                if priced
                else None,
                "shadow_usd": credits_to_nanos(s.shadow_credits, rate) / NANOS_PER_USD,
            }
            for s in saved
        ],
    }


def _tables(payload: dict[str, Any]) -> list[Table | str]:
    headers = ("project", "route", "model", "role", "kind", "win-or-tie", "lower bound")
    right = ("win-or-tie", "lower bound", "samples")
    models = tables._table(*headers, "samples", "takes traffic", right=right)
    for line in payload["models"]:
        models.add_row(
            line["project"],
            line["route"],
            line["model"],
            line["role"],
            line["kind"] or "-",
            _share(line["win_rate"]),
            _share(line["lower_bound"]),
            str(line["samples"]) if line["kind"] else "-",
            "yes" if line["takes_traffic"] else "",
        )
    if not payload["savings"]:
        return [models, "No routed requests in this period."]
    figures = ("requests", "by candidates", "saved", "shadow spend")
    saved = tables._table("route", *figures, right=figures)
    for row in payload["savings"]:
        usd = row["saved_usd"]
        saved.add_row(
            row["route"],
            str(row["requests"]),
            str(row["by_candidates"]),
            "unknown (no catalog)" if usd is None else format_usd(usd),
            format_usd(row["shadow_usd"]),
        )
    return [models, saved]


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"
