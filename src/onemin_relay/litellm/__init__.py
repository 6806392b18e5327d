"""A LiteLLM provider for 1min.ai built on the relay's own pipeline: ``one_min/<model>``.

    import litellm
    import onemin_relay.litellm

    onemin_relay.litellm.register()
    litellm.completion(model="one_min/gpt-4o-mini", messages=[...], api_key="<1min.ai key>")

The key comes from ``api_key=``, else ``ONE_MIN_API_KEY``, else ``ONEMIN_API_KEY``; the
1min.ai URL from ``api_base=``, else ``ONEMIN_UPSTREAM_URL``. LiteLLM's proxy loads the
provider from its ``config.yaml``::

    litellm_settings:
      custom_provider_map:
        - provider: one_min
          custom_handler: onemin_relay.litellm.one_min_llm

Sync calls share one background event loop and its aiohttp session (no loop or session per
call); async calls use the caller's loop with one session per loop, which
``await onemin_relay.litellm.aclose()`` closes before that loop ends. Needs the ``litellm``
extra (``pip install 'onemin-relay[litellm]'``); the relay itself never imports LiteLLM.
"""

from __future__ import annotations

import litellm

from onemin_relay.litellm.engine import SYNC_LOOP, close_here
from onemin_relay.litellm.errors import PROVIDER
from onemin_relay.litellm.provider import OneMinLLM

one_min_llm = OneMinLLM()


def register() -> None:
    """Add the ``one_min`` provider to ``litellm.custom_provider_map`` (once)."""
    entries = [e for e in litellm.custom_provider_map if e.get("provider") != PROVIDER]
    litellm.custom_provider_map = [*entries, {"provider": PROVIDER, "custom_handler": one_min_llm}]
    litellm.utils.custom_llm_setup()  # type: ignore[no-untyped-call]


async def aclose() -> None:
    """Close the running loop's 1min.ai sessions (async use; call before the loop ends)."""
    await close_here()


def close() -> None:
    """Stop the sync calls' background loop and close its sessions (done at exit anyway)."""
    SYNC_LOOP.stop()


__all__ = ["PROVIDER", "OneMinLLM", "aclose", "close", "one_min_llm", "register"]
