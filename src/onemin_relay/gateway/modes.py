"""Which ways in are open, said at start-up so that an open relay is never an accident."""

from __future__ import annotations

import ipaddress

from onemin_relay.settings import Settings


def open_modes(settings: Settings) -> list[str]:
    """One line per way in, open or closed, and why."""
    server_key = bool(settings.api_key)
    lines = [
        _line(
            not settings.require_relay_key,
            "bring-your-own-key",
            "any caller with a 1min.ai key",
            "ONEMIN_REQUIRE_RELAY_KEY is set",
        ),
        _line(True, "relay keys", "/<relay-key>/v1 with the caller's own 1min.ai key", ""),
        _line(
            server_key,
            "managed keys",
            "sk-onemin-… keys spend ONEMIN_API_KEY and their prepaid balance",
            "ONEMIN_API_KEY is not set",
        ),
        _line(
            server_key and settings.allow_anonymous,
            "anonymous",
            "callers with no key at all spend ONEMIN_API_KEY",
            "ONEMIN_ALLOW_ANONYMOUS is not set",
        ),
        _line(
            bool(settings.admin_token),
            "admin API",
            "/admin/v1 with ONEMIN_ADMIN_TOKEN",
            "ONEMIN_ADMIN_TOKEN is not set",
        ),
    ]
    return lines


def exposure_warning(settings: Settings) -> str | None:
    """A warning when anyone on a non-loopback address can spend the operator's key."""
    if is_loopback(settings.host) or not (settings.allow_anonymous and settings.api_key):
        return None
    return (
        f"WARNING: listening on {settings.host} with anonymous access to the operator's "
        "1min.ai key: anyone who can reach this address spends it"
    )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _line(is_open: bool, name: str, what: str, why_closed: str) -> str:
    return f"  {name}: open ({what})" if is_open else f"  {name}: closed ({why_closed})"
