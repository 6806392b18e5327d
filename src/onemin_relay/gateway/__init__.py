"""Gateway policy around the pipeline: who is calling, may they, which model, what it cost."""

from onemin_relay.gateway.auth import upstream_key

__all__ = ["upstream_key"]
