"""The operator's web dashboard at ``/dashboard``: overview, keys, usage and conversations,
server-rendered behind the admin token (see ``routes.py``)."""

from onemin_relay.dashboard.routes import add_routes

__all__ = ["add_routes"]
