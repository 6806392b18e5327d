"""Gemini's generateContent protocol (``/gemini/v1beta/…``)."""
