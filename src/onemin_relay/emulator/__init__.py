"""A local stand-in for the 1min.ai API, with fault knobs and per-key credit accounts for
tests and benchmarks."""

from onemin_relay.emulator.app import create_app, run
from onemin_relay.emulator.faults import Faults
from onemin_relay.emulator.state import EmulatorConfig

__all__ = ["EmulatorConfig", "Faults", "create_app", "run"]
