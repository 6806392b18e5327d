"""Who is calling, and with which 1min.ai key the call goes upstream.

Bring-your-own-key: the client's key is forwarded as 1min.ai's ``API-KEY``; when the
client sends none, the operator's ``ONEMIN_API_KEY`` (if set) is used instead.
"""

from __future__ import annotations

from onemin_relay.core.errors import AuthenticationFailed
from onemin_relay.core.types import Caller


def upstream_key(caller: Caller, server_key: str | None) -> str:
    key = caller.api_key or server_key
    if not key:
        raise AuthenticationFailed(
            "no API key: send your 1min.ai key as 'Authorization: Bearer <key>' or 'x-api-key'"
        )
    return key
