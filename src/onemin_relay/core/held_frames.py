"""A stream's frames leave together once its upstream has nothing more ready.

Under load several deltas arrive in one network read. The surface writing a stream holds the
frames it renders and registers a sender here for the request's task; the upstream reader
calls :func:`send_held` after the events of each read, before it waits for the next. The
frames of one read then leave in one write (one system call instead of one per delta), and
none of them waits for more upstream data.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar, Token

Sender = Callable[[], Awaitable[None]]

_SENDER: ContextVar[Sender | None] = ContextVar("held_frames_sender", default=None)


def hold_frames(sender: Sender) -> Token[Sender | None]:
    """From now on in this context, :func:`send_held` calls ``sender``."""
    return _SENDER.set(sender)


def stop_holding(token: Token[Sender | None]) -> None:
    _SENDER.reset(token)


async def send_held() -> None:
    """Send whatever the stream's writer holds (nothing when no writer holds frames)."""
    sender = _SENDER.get()
    if sender is not None:
        await sender()
