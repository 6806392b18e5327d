"""What the client and server comparisons share: the emulator, pinning, socket counts, figures."""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import importlib.util
import os
import statistics
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from bench import bodies, stack
from bench.procs import BenchError, Fleet, http_status
from bench.run import Background

FAST_KEY = "bench-key"  # the 20-word reply at once, or as 20 deltas
DRIP_KEY = "bench-drip"  # the same reply, each SSE event 200 ms after the last (~4 s a stream)
SLOW_KEY = "bench-slow"  # 3 s before the reply starts
DRIP_MS = 200
SLOW_MS = 3000
KNOBS: dict[str, dict[str, object]] = {
    FAST_KEY: {"reply": bodies.REPLY},
    DRIP_KEY: {"reply": bodies.REPLY, "chunk_delay_ms": DRIP_MS},
    SLOW_KEY: {"reply": bodies.REPLY, "latency_ms": SLOW_MS},
}
ESTABLISHED = "01"


def cpu_layout() -> tuple[str, str]:
    """The CPU of the process under test, and the CPUs of everything else (emulator, wrk)."""
    cpus = [str(c) for c in stack.cpu_list()]
    return cpus[0], ",".join(cpus[1:]) or cpus[0]


@contextlib.contextmanager
def emulator_fleet(cpus: str) -> Iterator[tuple[Fleet, int, Background]]:
    """A fleet with the emulator started (knobs set); every process is stopped on the way out."""
    stack.raise_fd_limit()
    with tempfile.TemporaryDirectory(prefix="onemin-alt-") as work:
        fleet = Fleet(Path(work))
        try:
            _proc, port = stack.start_emulator(fleet, cpus)
            for key, knobs in KNOBS.items():
                url = f"http://127.0.0.1:{port}/_emulator/faults/{key}"
                if http_status("PUT", url, orjson.dumps(knobs)) != 200:
                    raise BenchError(f"could not set emulator knobs for {key}")
            yield fleet, port, Background(fleet)
        finally:
            fleet.stop_all()


def connections_to(port: int, pids: Sequence[int] | None = None) -> int:
    """Established TCP connections whose far end is ``port`` (loopback), of ``pids`` only
    when given."""
    inodes = None if pids is None else _socket_inodes(pids)
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] != ESTABLISHED or int(fields[2].rsplit(":", 1)[1], 16) != port:
                    continue
                count += inodes is None or fields[9] in inodes
    return count


def _socket_inodes(pids: Sequence[int]) -> set[str]:
    found = set()
    for pid in pids:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError, PermissionError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if target.startswith("socket:["):
                        found.add(target[8:-1])
    return found


def settle_connections(
    port: int, expected: int, seconds: float, pids: Sequence[int] | None = None
) -> tuple[int, float]:
    """Poll until at most ``expected`` connections to ``port`` remain or ``seconds`` pass;
    the count then and how long it took."""
    start = time.monotonic()
    while (count := connections_to(port, pids)) > expected and time.monotonic() - start < seconds:
        time.sleep(0.02)
    return count, time.monotonic() - start


def client_args(
    argv: list[str] | None,
    prog: str,
    doc: str | None,
    names: Sequence[str],
    counts: tuple[int, int],
) -> argparse.Namespace:
    """The arguments the client comparisons share; ``clients`` comes back as a list."""
    parser = argparse.ArgumentParser(prog=prog, description=doc)
    requests, streams = counts
    parser.add_argument("--requests", type=int, default=requests, help="JSON calls per run")
    parser.add_argument("--streams", type=int, default=streams, help="SSE calls per run")
    parser.add_argument("--reps", type=int, default=3, help="repetitions per measurement")
    parser.add_argument("--clients", default=",".join(names), help="of " + ",".join(names))
    args = parser.parse_args(argv)
    args.clients = args.clients.split(",")
    return args


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


def medians(runs: Sequence[dict[str, float]]) -> dict[str, float]:
    """Each figure's median over the repetitions."""
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]} if runs else {}


def rotation(names: Sequence[str], reps: int) -> Iterator[str]:
    """``names`` ``reps`` times over, the order rotated each repetition so drift on the
    machine hits every candidate alike."""
    for rep in range(reps):
        shift = rep % len(names)
        yield from [*names[shift:], *names[:shift]]


def require(*packages: str) -> None:
    """Stop with the install line when a candidate is missing (they are not dependencies)."""
    missing = [name for name in packages if importlib.util.find_spec(name) is None]
    if missing:
        raise SystemExit(
            f"not installed: {', '.join(missing)}; run: pip install {' '.join(missing)}"
        )


def table_rows(
    kind: str, concurrency: int, runs: dict[str, list[dict[str, float]]], *extra: str
) -> list[list[str]]:
    """One row per candidate: CPU per call (median, then every run), rate, p50, p99, and the
    sum over the runs of each ``extra`` figure."""
    out = []
    for name, results in runs.items():
        m = medians(results)
        every = " / ".join(f"{r['cpu_us']:.0f}" for r in results)
        cells = [kind, str(concurrency), name, f"{m['cpu_us']:.0f} ({every})", f"{m['rate']:,.0f}"]
        cells += [f"{m['p50']:.2f}", f"{m['p99']:.2f}"]
        out.append(cells + [f"{sum(r[k] for r in results):.0f}" for k in extra])
    return out


def versions(*packages: str) -> str:
    found = []
    for name in packages:
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return ", ".join(found)


def markdown(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def machine_line(background: Background) -> str:
    return f"{os.cpu_count()} cores; during the run {background.summary()}"
