"""``make bench``: measure what the relay costs on the path, and write BENCHMARKS.md.

    python -m bench.run [--reps 3] [--duration 3]
                        [--only ns1,ns64,st1,st64,floor,managed,managed_pg,limits,scaling,
                                vision,hold]
                        [--out BENCHMARKS.md] [--profile] [--source DIR]

Starts the emulator (no artificial latency) and a relay on loopback, pinned to separate CPUs,
warms both up, runs every scenario direct and relayed interleaved, prints the table and
writes it. Exits non-zero only when it could not measure; missed targets are in the table.
Whatever follows the line ``KEEP_MARKER`` in the output file is kept when it is rewritten.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.metadata
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from shutil import which

from bench import capacity, drivers, floor, limits, managed, profile, report, scenarios, stack
from bench.procs import BenchError, Fleet, machine_cpu_seconds, own_cpu_seconds
from bench.report import Row
from bench.scenarios import Bench, Layout

SCENARIOS: dict[str, Callable[[Bench], list[Row]]] = {
    "ns1": lambda b: scenarios.non_stream(b, 1),
    "ns64": lambda b: scenarios.non_stream(b, 64),
    "st1": scenarios.stream_c1,
    "st64": scenarios.stream_c64,
    "floor": floor.floor,
    "managed": managed.sqlite,
    "managed_pg": managed.postgres,
    "limits": limits.limits,
    "vision": scenarios.vision,
    "hold": capacity.hold_streams,
}
# Scenarios that leave state behind run last: the emulator keeps every vision upload, and
# after 1,000 streams both servers hold a thousand idle connections for a while.
ORDER = (
    "ns1",
    "ns64",
    "st1",
    "st64",
    "floor",
    "managed",
    "managed_pg",
    "limits",
    "scaling",
    "vision",
    "hold",
)
# Hand-written sections of the output file go below this line; a rewrite keeps them.
KEEP_MARKER = "<!-- Everything below this line is kept when make bench rewrites this file. -->"


class Background:
    """CPU that other processes took while the run measured: noise the run cannot remove."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.wall = time.monotonic()
        self.machine = machine_cpu_seconds()
        self.own = own_cpu_seconds(fleet)

    def summary(self) -> str:
        wall = time.monotonic() - self.wall
        machine = machine_cpu_seconds()
        own = own_cpu_seconds(self.fleet) - self.own
        other = max(0.0, machine["tasks"] - self.machine["tasks"] - own)
        steal = machine["steal"] - self.machine["steal"]
        capacity = wall * (os.cpu_count() or 1)
        text = (
            f"other processes used {other:.0f} of the {capacity:.0f} CPU-seconds the run "
            f"lasted ({other / capacity:.0%}); hypervisor steal {steal:.0f} s"
        )
        if other / capacity > 0.05 or steal / capacity > 0.05:
            text += " — **the machine was not quiet: treat these figures as noisy**"
        return text


def layout() -> Layout:
    """Relay on the first CPU; emulator and load generator on the others, apart if possible."""
    cpus = [str(c) for c in stack.cpu_list()]
    if len(cpus) == 1:
        return Layout(cpus[0], cpus[0], cpus[0], cpus[0], pair_has_free_cores=False)
    pair = ",".join(cpus[:2])
    if len(cpus) == 2:
        return Layout(cpus[0], pair, cpus[1], cpus[1], pair_has_free_cores=False)
    if len(cpus) == 3:
        return Layout(cpus[0], pair, cpus[2], cpus[2], pair_has_free_cores=True)
    return Layout(cpus[0], pair, cpus[2], ",".join(cpus[3:]), pair_has_free_cores=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--reps", type=int, default=3, help="repetitions per measurement")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per run")
    parser.add_argument("--only", default="", help="comma-separated scenarios (default: all)")
    parser.add_argument("--out", default="BENCHMARKS.md", help="markdown file ('' = none)")
    parser.add_argument(
        "--source", default=None, help="run relay and emulator from another src directory"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also py-spy the relay under load (installs py-spy into the venv)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    chosen = [s for s in args.only.split(",") if s] or list(ORDER)
    unknown = set(chosen) - set(ORDER)
    if unknown or args.reps < 1 or args.duration <= 0:
        print(f"bad arguments: unknown scenarios {sorted(unknown)}", file=sys.stderr)
        return 2
    if which("wrk") is None or which("taskset") is None:
        print("wrk and taskset are needed (make bench installs wrk)", file=sys.stderr)
        return 1
    stack.raise_fd_limit()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = Path(tempfile.mkdtemp(prefix="onemin-bench-"))
    fleet = Fleet(work)
    started = time.monotonic()
    try:
        markdown = _run(fleet, work, args, chosen)
    except BenchError as exc:
        dead = fleet.casualties()
        print(f"benchmark could not measure: {exc}", file=sys.stderr)
        print(f"{dead + chr(10) if dead else ''}(logs in {work})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        fleet.stop_all()
    print(markdown)
    if not args.profile:  # the profile's raw stacks stay in the work directory
        shutil.rmtree(work, ignore_errors=True)
    if args.out:
        Path(args.out).write_text(markdown + kept_part(Path(args.out)))
        print(f"\nwritten to {args.out} in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return 0


def kept_part(path: Path) -> str:
    """The hand-written part of an existing output file (from ``KEEP_MARKER`` on), if any."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return ""
    at = text.find(KEEP_MARKER)
    return "" if at < 0 else "\n" + text[at:]


def _run(fleet: Fleet, work: Path, args: argparse.Namespace, chosen: list[str]) -> str:
    cpus = layout()
    background = Background(fleet)
    emulator, emulator_port = stack.start_emulator(fleet, cpus.emulator, args.source)
    relay, relay_port = stack.start_relay(
        fleet, "relay", cpus.relay, emulator_port, source=args.source
    )
    bench = Bench(
        fleet,
        cpus,
        work,
        emulator,
        emulator_port,
        relay,
        relay_port,
        args.reps,
        args.duration,
        args.source,
        args.profile,
    )
    _say(
        f"emulator :{emulator_port} on CPU {cpus.emulator}, relay :{relay_port} on CPU "
        f"{cpus.relay}, load on CPU {cpus.load}; warming up"
    )
    scenarios.warm_up(bench)
    rows: list[Row] = []
    scaling_table = ""
    for name in chosen:
        _say(f"scenario {name}")
        if name == "scaling":
            scaling_rows, scaling_table = capacity.scaling(bench)
            rows += scaling_rows
        else:
            rows += SCENARIOS[name](bench)
    profiles = profile.profile_relay(bench) if args.profile else ""
    return render(bench, rows, scaling_table, profiles, background.summary())


def _say(text: str) -> None:
    print(f"[bench] {text}", file=sys.stderr, flush=True)


def _machine() -> str:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions = ", ".join(
        f"{pkg} {importlib.metadata.version(pkg)}"
        for pkg in ("aiohttp", "uvloop", "orjson", "msgspec")
    )
    return (
        f"{os.cpu_count()} cores ({model or platform.machine()}), Linux {platform.release()}, "
        f"Python {platform.python_version()}, {versions}, {drivers.wrk_version()}"
    )


def render(b: Bench, rows: list[Row], scaling_table: str, profiles: str, background: str) -> str:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    cpus = b.layout
    parts = [
        "# Benchmarks",
        "",
        "What the relay costs on the path, measured by `make bench` (method: `bench/README.md`).",
        "Direct = the same client calling the 1min.ai emulator itself; relayed = calling the",
        "relay, which calls that emulator. Difference = relayed − direct (the relay's cost);",
        f"every figure is the median of {b.reps} interleaved runs of {b.duration:g} s.",
        "",
        f"- **Date:** {now}",
        f"- **Machine:** {_machine()}",
        f"- **Pinning:** relay on CPU {cpus.relay}; emulator on CPU {cpus.emulator}; "
        f"load generator on CPU {cpus.load}; the 2-worker relay on CPUs {cpus.relay_pair}",
        f"- **Other load during the run:** {background}",
        "",
        report.table(rows),
    ]
    if scaling_table:
        parts += ["", "## 1 vs 2 worker processes", "", scaling_table]
    if note_lines := report.notes(rows):
        parts += ["", "## Notes", "", note_lines]
    parts += ["", "## Every run", "", report.runs_table(rows)]
    if profiles:
        parts += ["", "## Profile", "", profiles]
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    sys.exit(main())
