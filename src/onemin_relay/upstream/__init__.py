"""Everything that knows 1min.ai: the HTTP client, its stream parser, errors and catalog."""

from onemin_relay.upstream.client import Asset, ChatCall, OneMinClient, extension_for
from onemin_relay.upstream.models import Catalog, ModelCatalog
from onemin_relay.upstream.records import RECORDS, ChatRecord

__all__ = [
    "RECORDS",
    "Asset",
    "Catalog",
    "ChatCall",
    "ChatRecord",
    "ModelCatalog",
    "OneMinClient",
    "extension_for",
]
