"""Settings: one frozen value read from ``ONEMIN_*`` environment variables at start-up.

Every knob has a safe default; a malformed value fails here, before the server binds.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from ipaddress import IPv4Network, IPv6Network, ip_network
from typing import Any, Literal

_PREFIX = "ONEMIN_"
LOG_LEVELS = ("debug", "info", "warning", "error")


class SettingsError(ValueError):
    """An ``ONEMIN_*`` variable holds a value the relay cannot use."""


@dataclass(frozen=True, slots=True)
class Settings:
    # where 1min.ai lives
    upstream_url: str = "https://api.1min.ai"
    asset_url: str = "https://asset.1min.ai"
    # server-held 1min.ai key, used when a client sends none; kept out of repr() and logs
    api_key: str | None = field(default=None, repr=False)

    # where the relay listens
    host: str = "127.0.0.1"
    port: int = 8080
    log_level: str = "info"

    # scaled-out backends (not needed for a single process)
    redis_url: str | None = field(default=None, repr=False)
    # the gateway store: SQLite in ``data_dir`` unless this is a postgresql:// URL
    database_url: str | None = field(default=None, repr=False)
    data_dir: str = "./data"

    # who may call: plain bring-your-own-key needs no relay key unless this is set;
    # ``allow_anonymous`` lets a caller with no key at all spend the server's ONEMIN_API_KEY
    require_relay_key: bool = False
    allow_anonymous: bool = False
    # the admin API (/admin/v1) is off without a token
    admin_token: str | None = field(default=None, repr=False)

    # rate limits (0 = off): per client IP, and requests in flight per IP, per gateway key
    # and per 1min.ai key; per-key rpm/tpm are stored with each key
    ip_rpm: int = 180
    ip_tpm: int = 100_000
    ip_max_in_flight: int = 256
    key_max_in_flight: int = 256
    upstream_max_in_flight: int = 512
    rate_window: float = 60.0  # seconds a "minute" of the rpm/tpm limits lasts
    expected_output_tokens: int = 1000  # admitted for a reply when max_tokens is not given
    trusted_proxies: str = ""  # addresses/networks whose X-Forwarded-For / Forwarded count
    cors_origins: str = "auto"  # origins browsers may call from; see cors.py for "auto"
    # when the limit store (Redis) fails: "closed" refuses with 503, "open" admits unchecked
    limits_on_store_error: Literal["closed", "open"] = "closed"
    # when Redis fails for stored Responses: "fail" answers 503, "degrade" forgets them
    responses_on_store_error: Literal["fail", "degrade"] = "fail"
    redis_prefix: str = "onemin:"

    # money: what one 1min.ai credit costs the operator, and how holds are kept
    credits_per_usd: float = 3_000_000.0
    hold_lease: float = 90.0  # a hold not renewed for this long is swept as unsettled
    sweep_interval: float = 30.0
    ledger_queue_size: int = 10_000
    ledger_batch_size: int = 500
    key_cache_seconds: float = 1.0  # a key changed elsewhere is seen within this; 0: off

    # upstream timeouts, seconds: connect, first byte, idle between stream reads, total cap
    connect_timeout: float = 5.0
    first_byte_timeout: float = 120.0
    read_timeout: float = 60.0
    total_timeout: float = 600.0
    upstream_retries: int = 2
    upstream_pool_size: int = 1024  # open upstream connections; each stream holds one

    # structured output: calls made to repair an answer that fails its JSON format
    structured_retries: int = 1
    # tool calling: repair calls for a malformed tool call, and the identical-call loop guard
    tool_repair_retries: int = 1
    max_identical_tool_calls: int = 3

    # load the o200k tokenizer at start-up (+75 MB resident) instead of on the first local
    # count (a one-off ~0.5 s in a worker thread); 1min.ai usually reports usage itself
    preload_tokenizer: bool = False

    # model catalog cache
    models_ttl: float = 300.0

    # routing: the routes file (TOML; default <data_dir>/routes.toml when present), and how
    # far a request falls back: attempts in all, and seconds after which none is started
    routes_file: str | None = None
    fallback_attempts: int = 3
    fallback_deadline: float = 30.0
    # learning: the share of routed requests replayed on the other side (0 = off; needs
    # ONEMIN_API_KEY, which pays), how many run at once, how many may wait, and the judge
    shadow_rate: float = 0.0
    shadow_concurrency: int = 2
    shadow_queue: int = 100
    judge_model: str = "gpt-4o"

    # client-facing limits
    max_connections: int = 4096  # open client connections per process (0 = no cap)
    # per peer address, above an SDK client's pool (1,000) and ip_max_in_flight, so a burst
    # meets the in-flight limit's 429 first; trusted proxies count only in the total
    max_connections_per_ip: int = 1024
    max_body_bytes: int = 32 * 1024 * 1024
    write_timeout: float = 60.0
    header_timeout: float = 10.0  # for a new connection's first request line and headers
    body_timeout: float = 60.0  # to receive a whole JSON request body
    image_fetch_max_bytes: int = 20 * 1024 * 1024
    image_fetch_timeout: float = 15.0
    fetch_allow_hosts: str = ""  # comma-separated hosts exempt from the SSRF guard
    max_images_per_request: int = 16

    # web search settings sent with the ``:online`` model suffix
    web_search_sites: int = 3
    web_search_max_words: int = 1000

    # request traces: off (none), metadata (no bodies) or full (bodies, capped and scrubbed);
    # kept for ``trace_retention`` (a duration such as 30d or 12h; 0 keeps them)
    trace_bodies: Literal["off", "metadata", "full"] = "metadata"
    trace_body_limit: int = 64 * 1024  # bytes of each captured body
    trace_retention: str = "30d"

    def __post_init__(self) -> None:
        _check_traces(self)
        for name in ("connect_timeout", "first_byte_timeout", "read_timeout", "total_timeout"):
            if getattr(self, name) <= 0:
                raise SettingsError(f"{_PREFIX}{name.upper()} must be greater than 0")
        if not 0 < self.port < 65536:
            raise SettingsError(f"{_PREFIX}PORT must be between 1 and 65535")
        if self.log_level.lower() not in LOG_LEVELS:
            raise SettingsError(
                f"{_PREFIX}LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {self.log_level!r}"
            )
        for name in ("credits_per_usd", "hold_lease", "sweep_interval"):
            if getattr(self, name) <= 0:
                raise SettingsError(f"{_PREFIX}{name.upper()} must be greater than 0")
        if self.key_cache_seconds < 0:
            raise SettingsError(f"{_PREFIX}KEY_CACHE_SECONDS must not be negative")
        if self.ledger_queue_size < 1 or self.ledger_batch_size < 1:
            raise SettingsError(f"{_PREFIX}LEDGER_QUEUE_SIZE and _BATCH_SIZE must be positive")
        if self.limits_on_store_error not in ("closed", "open"):
            raise SettingsError(f"{_PREFIX}LIMITS_ON_STORE_ERROR must be closed or open")
        if self.responses_on_store_error not in ("fail", "degrade"):
            raise SettingsError(f"{_PREFIX}RESPONSES_ON_STORE_ERROR must be fail or degrade")
        for name in ("ip_rpm", "ip_tpm", "ip_max_in_flight", "key_max_in_flight",
                     "max_connections", "max_connections_per_ip"):  # fmt: skip
            if getattr(self, name) < 0:
                raise SettingsError(f"{_PREFIX}{name.upper()} must not be negative")
        if self.rate_window <= 0 or self.expected_output_tokens < 0:
            raise SettingsError(f"{_PREFIX}RATE_WINDOW must be positive")
        self.trusted_proxy_networks  # noqa: B018  (a malformed address fails here)
        if self.hold_lease < 2 * self.sweep_interval:
            raise SettingsError(f"{_PREFIX}HOLD_LEASE must be at least twice SWEEP_INTERVAL")
        if not 0 <= self.shadow_rate <= 1:
            raise SettingsError(f"{_PREFIX}SHADOW_RATE must be between 0 and 1")
        if self.shadow_rate > 0 and not self.api_key:
            raise SettingsError(f"{_PREFIX}SHADOW_RATE needs ONEMIN_API_KEY, which pays for them")
        if self.shadow_concurrency < 1 or self.shadow_queue < 1:
            raise SettingsError(f"{_PREFIX}SHADOW_CONCURRENCY and _QUEUE must be positive")
        if self.fallback_attempts < 1 or self.fallback_deadline <= 0:
            raise SettingsError(f"{_PREFIX}FALLBACK_ATTEMPTS and _DEADLINE must be positive")
        for name in ("upstream_retries", "structured_retries", "tool_repair_retries"):
            if getattr(self, name) < 0:
                raise SettingsError(f"{_PREFIX}{name.upper()} must not be negative")
        if self.database_url and not self.database_url.startswith(
            ("postgresql://", "postgres://", "sqlite:///")
        ):
            raise SettingsError(f"{_PREFIX}DATABASE_URL must be a postgresql:// or sqlite:/// URL")
        for name in ("upstream_url", "asset_url"):
            if not getattr(self, name).startswith(("http://", "https://")):
                raise SettingsError(f"{_PREFIX}{name.upper()} must be an http(s) URL")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from the environment; explicit ``overrides`` win."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for spec in fields(cls):
            raw = env.get(_PREFIX + spec.name.upper())
            if raw is None or raw == "":
                continue
            values[spec.name] = _convert(spec.name, spec.type, raw)
        values.update(overrides)
        return cls(**values)

    @property
    def trusted_proxy_networks(self) -> tuple[IPv4Network | IPv6Network, ...]:
        return _networks(self.trusted_proxies)  # read on every request: parsed once

    @property
    def limits_are_shared(self) -> bool:
        """Whether every process counts in one place (Redis), as --workers needs."""
        return bool(self.redis_url)

    @property
    def limits_on(self) -> bool:
        return any(
            (self.ip_rpm, self.ip_tpm, self.ip_max_in_flight, self.key_max_in_flight,
             self.upstream_max_in_flight)
        )  # fmt: skip

    @property
    def uses_postgres(self) -> bool:
        url = self.database_url or ""
        return url.startswith(("postgresql://", "postgres://"))

    @property
    def upstream_base(self) -> str:
        return self.upstream_url.rstrip("/")

    @property
    def asset_base(self) -> str:
        return self.asset_url.rstrip("/")

    @property
    def trace_retention_seconds(self) -> float:
        """How long traces are kept; 0: for ever."""
        return parse_duration(self.trace_retention)

    @property
    def fetch_allow_set(self) -> frozenset[str]:
        return frozenset(h.strip().lower() for h in self.fetch_allow_hosts.split(",") if h.strip())


def _convert(name: str, annotation: object, raw: str) -> Any:
    kind = str(annotation)
    try:
        if kind.startswith("int"):
            return int(raw)
        if kind.startswith("float"):
            return float(raw)
        if kind.startswith("bool"):
            return raw.strip().lower() in {"1", "true", "yes", "on"}
    except ValueError:
        raise SettingsError(f"{_PREFIX}{name.upper()} must be a number, got {raw!r}") from None
    return raw.rstrip("/") if name.endswith("_url") else raw


def _check_traces(settings: Settings) -> None:
    if settings.trace_bodies not in ("off", "metadata", "full"):
        raise SettingsError(f"{_PREFIX}TRACE_BODIES must be off, metadata or full")
    if settings.trace_body_limit < 1:
        raise SettingsError(f"{_PREFIX}TRACE_BODY_LIMIT must be positive")
    try:
        parse_duration(settings.trace_retention)
    except ValueError as exc:
        raise SettingsError(f"{_PREFIX}TRACE_RETENTION: {exc}") from None


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0, "w": 604_800.0}


def parse_duration(text: str) -> float:
    """Seconds from ``90s``, ``15m``, ``12h``, ``30d`` or ``2w`` (a bare number is seconds)."""
    value = text.strip().lower()
    unit = _UNITS.get(value[-1:]) if value else None
    number = value[:-1] if unit is not None else value
    try:
        seconds = float(number) * (unit or 1.0)
    except ValueError:
        raise ValueError(f"{text!r} is not a duration such as 30d, 12h, 15m or 90s") from None
    if not 0 <= seconds < float("inf"):
        raise ValueError(f"{text!r} is not a duration of zero or more")
    return seconds


@functools.lru_cache(maxsize=8)
def _networks(text: str) -> tuple[IPv4Network | IPv6Network, ...]:
    try:
        return tuple(
            ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip()
        )
    except ValueError as exc:
        raise SettingsError(f"{_PREFIX}TRUSTED_PROXIES: {exc}") from None
