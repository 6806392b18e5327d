"""onemin-relay: standard LLM APIs in front of 1min.ai."""

__version__ = "0.1.0"
