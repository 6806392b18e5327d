"""Anthropic's Messages protocol (``/anthropic/v1/…`` and ``/v1/messages``)."""
