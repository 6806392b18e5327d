"""``--profile``: sample the relay with py-spy while wrk loads it; list where its CPU goes.

py-spy is installed into the running venv on first use. The raw collapsed stacks are kept
in the run's work directory (feed them to ``flamegraph.pl`` or speedscope).
"""

from __future__ import annotations

import collections
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from bench.procs import BenchError
from bench.scenarios import Bench

SECONDS = 8
RATE = 500  # samples per second
TOP = 25


def ensure_py_spy() -> str:
    exe = Path(sys.executable).parent / "py-spy"
    if not exe.exists():
        done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "py-spy"])
        if done.returncode != 0 or not exe.exists():
            raise BenchError("could not install py-spy into the venv")
    return str(exe)


def self_time(raw: Path, top: int = TOP) -> list[tuple[float, str]]:
    """Share of samples in which each frame was the innermost one (where the CPU was)."""
    counts: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        counts[stack.split(";")[-1]] += int(n)
        total += int(n)
    return [(n / total, frame) for frame, n in counts.most_common(top)] if total else []


def inclusive_share(raw: Path, marks: dict[str, tuple[str, ...]]) -> dict[str, float]:
    """Share of samples in which some frame contains one of a mark's texts (the CPU spent in
    that code and below it), by the mark's name."""
    counts: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        total += int(n)
        for name, texts in marks.items():
            if any(text in stack for text in texts):
                counts[name] += int(n)
    return {name: counts[name] / total if total else 0.0 for name in marks}


def record_under_load(py_spy: str, pid: int, out: Path, load: Callable[[float], object]) -> None:
    """py-spy ``pid`` for ``SECONDS`` while ``load(seconds)`` runs a little longer."""
    thread = threading.Thread(target=load, args=(SECONDS + 2,))
    thread.start()
    _record(py_spy, pid, out)
    thread.join()
    if not out.exists():
        raise BenchError("py-spy produced no profile (is ptrace allowed here?)")


def _record(py_spy: str, pid: int, out: Path) -> None:
    argv = [
        py_spy,
        "record",
        "-p",
        str(pid),
        "-d",
        str(SECONDS),
        "-r",
        str(RATE),
        "-f",
        "raw",
        "-o",
        str(out),
        "--nonblocking",
    ]
    subprocess.run(argv, capture_output=True, timeout=SECONDS + 30, check=False)


def profile_relay(b: Bench) -> str:
    py_spy = ensure_py_spy()
    sections = []
    for streaming in (False, True):
        label = "stream (20 deltas)" if streaming else "non-stream"
        out = b.work / f"profile-{'stream' if streaming else 'chat'}-c64.txt"
        load = threading.Thread(
            target=b.wrk,
            args=("relayed",),
            kwargs={"streaming": streaming, "connections": 64, "seconds": SECONDS + 2},
        )
        load.start()
        _record(py_spy, b.relay.pid, out)
        load.join()
        if not out.exists():
            raise BenchError("py-spy produced no profile (is ptrace allowed here?)")
        rows = [f"| {share:.1%} | `{frame}` |" for share, frame in self_time(out)]
        sections.append(
            f"Relay under wrk c=64, {label}; raw stacks: `{out}`\n\n"
            + "| self time | frame |\n|---:|---|\n"
            + "\n".join(rows)
        )
    return "\n\n".join(sections)
