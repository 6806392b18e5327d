"""Gateway policy around the pipeline: who is calling, may they, which model, what it cost.

The pipeline sees one interface, :class:`~onemin_relay.gateway.policy.Gateway`: ``admit``
before upstream, ``settle`` after. Behind it: keys (``keys``), prepaid balances and holds
(``balances``, priced by ``pricing``), the ledger (``ledger``) and the store (``storage``,
embedded SQLite or PostgreSQL).
"""

from __future__ import annotations

import os

from onemin_relay.gateway.storage import Store
from onemin_relay.settings import Settings

SQLITE_FILE = "onemin-relay.db"
SQLITE_SCHEME = "sqlite:///"


def open_store(settings: Settings) -> Store:
    """The store the settings name (not yet opened): PostgreSQL for a ``postgresql://``
    ``ONEMIN_DATABASE_URL``, else SQLite in ``ONEMIN_DATA_DIR``."""
    if settings.uses_postgres:
        from onemin_relay.gateway.postgres_store import PostgresStore

        assert settings.database_url is not None
        store: Store = PostgresStore(settings.database_url)
        return store
    from onemin_relay.gateway.sqlite_store import SqliteStore

    return SqliteStore(sqlite_path(settings))


def sqlite_path(settings: Settings) -> str:
    url = settings.database_url or ""
    if url.startswith(SQLITE_SCHEME):
        return url[len(SQLITE_SCHEME) :]
    return os.path.join(settings.data_dir, SQLITE_FILE)


def describe_store(settings: Settings) -> str:
    """Where the store lives, for start-up messages (never the database password)."""
    if settings.uses_postgres:
        from urllib.parse import urlsplit

        url = urlsplit(settings.database_url or "")
        return f"PostgreSQL at {url.hostname or 'localhost'}:{url.port or 5432}{url.path}"
    return f"SQLite at {sqlite_path(settings)}"


__all__ = ["Store", "describe_store", "open_store"]
