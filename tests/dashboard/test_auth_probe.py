"""The failed-login limiter under a flood from many addresses: asking whether an address
may try keeps nothing, and the addresses it tracks stay within TRACKED_CLIENTS even when
every one failed within the last minute."""

from __future__ import annotations

import pytest

from onemin_relay.dashboard import auth
from onemin_relay.dashboard.auth import LoginLimiter


def test_asking_keeps_nothing() -> None:
    limiter = LoginLimiter()
    for n in range(1000):
        assert limiter.retry_after(f"2001:db8::{n:x}", now=100.0) == 0
    assert len(limiter._failures) == 0


def test_recent_failures_from_many_addresses_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth, "TRACKED_CLIENTS", 50)
    limiter = LoginLimiter()
    for n in range(500):
        limiter.failed(f"2001:db8::{n:x}", now=100.0 + n / 1000)
    assert len(limiter._failures) <= 50
    newest = "2001:db8::1f3"
    for _ in range(4):
        limiter.failed(newest, now=101.0)
    assert limiter.retry_after(newest, now=101.0) > 0, "the newest addresses are still held"
