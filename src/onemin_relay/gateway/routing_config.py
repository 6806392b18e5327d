"""The routes behind ``onemin/auto``, ``onemin/balanced`` and ``onemin/cost-saver``.

A route is an incumbent model, cheaper candidates that may take its traffic once the
evidence shows they are good enough (``route_policy``), the quality floor they must clear,
and the fallbacks tried in order when a model fails before answering. Routes are set per
project in a TOML file the operator edits (``ONEMIN_ROUTES_FILE``; format in README.md);
anything the file leaves out comes from the ``default`` project, then from built-in
defaults chosen from the live catalog by provider and price. The file is read and checked
at start-up, without the network: model ids are only resolved when a request uses them.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeAlias

import msgspec

from onemin_relay.core.types import ModelInfo
from onemin_relay.gateway.route_policy import Floor

RouteName: TypeAlias = Literal["auto", "balanced", "cost-saver"]
Posture: TypeAlias = Literal["balanced", "cost-saver"]
ROUTE_NAMES: tuple[RouteName, ...] = ("auto", "balanced", "cost-saver")
DEFAULT_PROJECT = "default"
# the alias a client sends → the route; the ``onemin-…`` forms fit a URL path (Gemini)
ALIASES: dict[str, RouteName] = {
    f"{prefix}{name}": name for name in ROUTE_NAMES for prefix in ("onemin/", "onemin-")
}
POSTURES: dict[Posture, Floor] = {
    "balanced": Floor(floor=0.9, confidence=0.95, min_samples=30),
    "cost-saver": Floor(floor=0.8, confidence=0.8, min_samples=10),
}
# providers whose models the built-in routes pick, the incumbent's first
MAJOR_PROVIDERS = ("openai", "anthropic", "googleai", "mistralai", "deepseek", "xai")
DEFAULT_CANDIDATES = 3
DEFAULT_FALLBACKS = 2


class RoutesFileError(ValueError):
    """The routes file cannot be used; the message says where and why."""


class RouteSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One route as the file states it; what it leaves out is inherited."""

    incumbent: str | None = None
    candidates: list[str] | None = None
    fallbacks: list[str] | None = None
    floor: float | None = None
    confidence: float | None = None
    min_samples: int | None = None

    def __post_init__(self) -> None:
        for name in ("floor", "confidence"):
            value = getattr(self, name)
            if value is not None and not 0 < value < 1:
                raise ValueError(f"{name} must be between 0 and 1 (exclusive)")
        if self.min_samples is not None and self.min_samples < 1:
            raise ValueError("min_samples must be at least 1")
        for name in ("incumbent", "candidates", "fallbacks"):
            value = getattr(self, name)
            ids = [value] if isinstance(value, str) else value or []
            if any(not i.strip() or i in ALIASES for i in ids):
                raise ValueError(f"{name} must name 1min.ai models, not aliases or blanks")


class ProjectSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    posture: Posture | None = None  # what ``auto`` follows
    routes: dict[RouteName, RouteSpec] = {}


class RoutesFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    projects: dict[str, ProjectSpec] = {}


class Route(msgspec.Struct, frozen=True):
    """A route as requests use it: empty model lists mean "pick from the catalog"."""

    name: RouteName
    incumbent: str | None
    candidates: tuple[str, ...] | None
    fallbacks: tuple[str, ...] | None
    floor: Floor

    @property
    def label(self) -> str:
        return f"onemin/{self.name}"


class RouteBook:
    """Every project's routes, with inheritance settled once."""

    def __init__(self, spec: RoutesFile | None = None) -> None:
        self._spec = spec or RoutesFile()
        self._routes: dict[tuple[str, RouteName], Route] = {}
        for project in {DEFAULT_PROJECT, *self._spec.projects}:
            for name in ROUTE_NAMES:
                self._routes[project, name] = self._build(project, name)

    @property
    def projects(self) -> list[str]:
        return sorted({DEFAULT_PROJECT, *self._spec.projects})

    def route(self, project: str | None, name: RouteName) -> Route:
        known = project if project and (project, name) in self._routes else DEFAULT_PROJECT
        return self._routes[known, name]

    def _build(self, project: str, name: RouteName) -> Route:
        posture = self._posture(project) if name == "auto" else name
        layers = [
            self._spec.projects.get(p, ProjectSpec()).routes.get(name, RouteSpec())
            for p in (project, DEFAULT_PROJECT)
        ]

        def pick(field: str) -> Any:
            return next((getattr(s, field) for s in layers if getattr(s, field) is not None), None)

        base = POSTURES[posture]
        floor = Floor(
            floor=pick("floor") or base.floor,
            confidence=pick("confidence") or base.confidence,
            min_samples=pick("min_samples") or base.min_samples,
        )
        candidates, fallbacks = pick("candidates"), pick("fallbacks")
        return Route(
            name=name,
            incumbent=pick("incumbent"),
            candidates=None if candidates is None else tuple(candidates),
            fallbacks=None if fallbacks is None else tuple(fallbacks),
            floor=floor,
        )

    def _posture(self, project: str) -> Posture:
        for name in (project, DEFAULT_PROJECT):
            posture = self._spec.projects.get(name, ProjectSpec()).posture
            if posture is not None:
                return posture
        return "balanced"


def load_routes(path: str | None, data_dir: str) -> RouteBook:
    """The operator's routes: ``path`` (which must exist), else ``<data_dir>/routes.toml``
    when present, else the built-in defaults. Raises RoutesFileError with the reason."""
    chosen = Path(path) if path else Path(data_dir) / "routes.toml"
    if not path and not chosen.is_file():
        return RouteBook()
    try:
        raw = tomllib.loads(chosen.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RoutesFileError(f"cannot read the routes file {chosen}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise RoutesFileError(f"the routes file {chosen} is not valid TOML: {exc}") from None
    return RouteBook(parse_routes(raw, str(chosen)))


def parse_routes(raw: Mapping[str, Any], where: str = "routes file") -> RoutesFile:
    try:
        return msgspec.convert(raw, RoutesFile)
    except msgspec.ValidationError as exc:
        raise RoutesFileError(f"{where}: {exc}") from None


def price(model: ModelInfo) -> float:
    """Input plus output price per token unit, as the catalog lists it (inf if unlisted)."""
    credits = model.credit_metadata or {}
    values = [credits.get("INPUT"), credits.get("OUTPUT")]
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return float("inf")
    return float(sum(v for v in values if isinstance(v, int | float)))


def builtin_models(models: list[ModelInfo]) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """(incumbent, candidates cheapest first, fallbacks) chosen from a catalog: the dearest
    chat model of the first major provider listed, the cheapest major-provider models
    below it, and the dearest model of each other provider."""
    chat = [m for m in models if m.kind == "chat" and price(m) != float("inf")]
    by_provider = {p: [m for m in chat if m.provider == p] for p in MAJOR_PROVIDERS}
    present = [p for p in MAJOR_PROVIDERS if by_provider[p]]
    if not present:
        raise LookupError("the catalog lists no chat model of a known provider")
    incumbent = max(by_provider[present[0]], key=price)
    major = [m for p in present for m in by_provider[p]]
    cheaper = sorted((m for m in major if price(m) < price(incumbent)), key=price)
    fallbacks = [max(by_provider[p], key=price).id for p in present[1:]]
    return (
        incumbent.id,
        tuple(m.id for m in cheaper[:DEFAULT_CANDIDATES]),
        tuple(fallbacks[:DEFAULT_FALLBACKS]),
    )
