"""The gateway store for benchmarks: a managed key issued before a relay starts, a PostgreSQL
database of the run's own (created, then dropped), and what the ledger holds afterwards.

PostgreSQL is reached through ``ONEMIN_BENCH_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``): a role that may create databases. Each run
creates ``onemin_bench_<hex>`` and drops it when it is done, also when the run fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import Iterator, Mapping
from urllib.parse import urlsplit, urlunsplit

from bench.procs import BenchError

POSTGRES_ENV = "ONEMIN_BENCH_POSTGRES_URL"
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
MANAGED_BALANCE_USD = 1_000_000  # far more than a run can spend


class NoPostgres(BenchError):
    """PostgreSQL is not reachable (or may not create databases): its figures are skipped."""


def admin_url() -> str:
    return os.environ.get(POSTGRES_ENV) or DEFAULT_POSTGRES


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def _loopback_only(url: str) -> None:
    host = urlsplit(url).hostname or ""
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise BenchError(f"{POSTGRES_ENV} must point at a loopback address, not {host!r}")


@contextlib.contextmanager
def temp_database() -> Iterator[str]:
    """A new, empty PostgreSQL database for this run; its URL. Dropped on the way out."""
    import asyncpg

    admin = admin_url()
    _loopback_only(admin)
    name = f"onemin_bench_{secrets.token_hex(6)}"

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(admin, timeout=10)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    try:
        asyncio.run(run(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise NoPostgres(f"no PostgreSQL to create a database in at {admin}: {exc}") from exc
    try:
        yield _with_database(admin, name)
    finally:
        asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def backend_pids(database: str) -> list[int]:
    """The PostgreSQL server processes serving connections to ``database``."""
    import asyncpg

    conn = await asyncpg.connect(admin_url(), timeout=10)
    try:
        rows = await conn.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1", database)
    finally:
        await conn.close()
    return [int(r["pid"]) for r in rows]


async def backend_cpu(database: str) -> dict[int, float]:
    """CPU seconds used so far by each PostgreSQL backend serving ``database``."""
    from bench.procs import cpu_seconds

    return {pid: cpu_seconds([pid]) for pid in await backend_pids(database)}


def cpu_growth(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU the backends used between two ``backend_cpu`` readings. One that started meanwhile
    counts whole; one that ended (the pool recycles a connection after 50,000 queries) is
    lost: a slight undercount, never a negative figure."""
    return sum(max(0.0, cpu - before.get(pid, 0.0)) for pid, cpu in after.items())


async def _issue_managed(env: Mapping[str, str]) -> str:
    from onemin_relay.gateway import open_store
    from onemin_relay.gateway.keys import issue, usd_to_nanos
    from onemin_relay.settings import Settings

    store = open_store(Settings.from_env(env))
    await store.open()
    try:
        await store.migrate()
        new = issue("managed", "bench", balance=usd_to_nanos(MANAGED_BALANCE_USD))
        await store.add_key(new.record)
    finally:
        await store.close()
    return new.secret


def issue_managed_key(env: Mapping[str, str]) -> str:
    """Create the store that ``env`` names (ONEMIN_DATA_DIR / ONEMIN_DATABASE_URL) and a
    managed key in it with a large balance; the key's secret, to send as the bearer token."""
    try:
        return asyncio.run(_issue_managed(env))
    except ImportError as exc:
        raise BenchError(f"this checkout has no gateway store: {exc}") from exc


async def _ledger_summary(env: Mapping[str, str]) -> dict[str, int]:
    from onemin_relay.gateway import open_store
    from onemin_relay.settings import Settings

    store = open_store(Settings.from_env(env))
    await store.open()
    try:
        usage = await store.usage("key", 0.0)
        keys = await store.keys()
    finally:
        await store.close()
    managed = [k for k in keys if k.kind == "managed"]
    return {
        "byok_rows": sum(u.requests for u in usage if u.group == "-"),
        "managed_rows": sum(u.requests for u in usage if u.group != "-"),
        "reserved": sum(k.reserved for k in managed),
        "spent": sum(k.spent for k in managed),
    }


def ledger_summary(env: Mapping[str, str]) -> dict[str, int]:
    """Ledger rows written (bring-your-own-key and managed), and what the managed keys still
    hold and have spent (nano-USD), read from the store after its relay stopped."""
    return asyncio.run(_ledger_summary(env))
