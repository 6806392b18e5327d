"""Starting, watching and stopping the processes a benchmark run owns.

Every process is started in its own session (so its group id is its pid) and pinned with
``taskset``; :class:`Fleet` stops each one it started, by that id, even when the run fails.
Memory and CPU figures come straight from ``/proc``.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class BenchError(RuntimeError):
    """Something the run needs could not be done: it cannot measure."""


class Proc:
    def __init__(self, name: str, popen: subprocess.Popen[bytes], log: Path) -> None:
        self.name = name
        self.popen = popen
        self.log = log

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def family(self) -> list[int]:
        """This process and all its descendants."""
        found, todo = [], [self.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo += children_of(pid)
        return found

    def workers(self) -> list[int]:
        """The serving processes: spawned workers if any, else this process itself."""
        spawned = [p for p in self.family() if b"spawn_main" in _cmdline(p)]
        return spawned or [self.pid]

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM this process's group, then SIGKILL what is left after ``grace`` seconds."""
        if self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGTERM)
        try:
            self.popen.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            self.popen.wait(grace)


class Fleet:
    """The processes of one run; ``stop_all`` ends each of them (also on errors and Ctrl-C)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: list[Proc] = []

    def start(
        self, name: str, argv: Sequence[str], cpus: str, env: Mapping[str, str] | None = None
    ) -> Proc:
        log = self.log_dir / f"{name}.log"
        with open(log, "wb") as out:
            popen = subprocess.Popen(
                ["taskset", "-c", cpus, *argv],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})},
                start_new_session=True,
            )
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def stop(self, proc: Proc) -> None:
        proc.stop()
        self.procs.remove(proc)

    def casualties(self) -> str:
        """Which started processes have already exited, and how (empty when all are up)."""
        dead = [p for p in self.procs if not p.alive()]
        return "; ".join(f"{p.name} exited with {_exit_text(p.popen.returncode)}" for p in dead)

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
        self.procs.clear()


def _exit_text(code: int | None) -> str:
    if code is not None and code < 0:
        return f"signal {signal.Signals(-code).name} (stopped from outside the harness?)"
    return f"code {code}"


def children_of(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return kids
    for tid in tasks:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            kids += [int(c) for c in Path(f"/proc/{pid}/task/{tid}/children").read_text().split()]
    return kids


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return b""


def rss_mib(pids: Sequence[int]) -> float:
    """Resident memory of ``pids`` together (VmRSS), MiB."""
    total_kib = 0
    for pid in pids:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kib += int(line.split()[1])
                    break
    return total_kib / 1024


def own_cpu_seconds(fleet: Fleet) -> float:
    """CPU used by this run: this process, its finished children (wrk, load runs, stopped
    servers) and the servers still running."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    running = [pid for proc in fleet.procs for pid in proc.family()]
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime + cpu_seconds(running)


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU time consumed so far by ``pids`` together."""
    ticks = 0
    for pid in pids:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / CLOCK_TICKS


def wait_ready(proc: Proc, url: str, marker: str, count: int = 1, timeout: float = 60.0) -> None:
    """Wait until ``proc`` has logged ``marker`` ``count`` times and ``url`` answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise BenchError(f"{proc.name} exited early:\n{proc.log_text()[-2000:]}")
        if proc.log_text().count(marker) >= count and http_status("GET", url) == 200:
            return
        time.sleep(0.1)
    raise BenchError(f"{proc.name} not ready after {timeout:.0f}s:\n{proc.log_text()[-2000:]}")


def http_status(method: str, url: str, body: bytes | None = None, timeout: float = 5.0) -> int:
    request = urllib.request.Request(url, data=body, method=method)
    if body is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


def machine_cpu_seconds() -> dict[str, float]:
    """CPU time spent by the whole machine since boot, by kind (``/proc/stat``, all CPUs)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return {
        "tasks": (user + nice + system) / CLOCK_TICKS,
        "irq": (irq + softirq) / CLOCK_TICKS,
        "steal": steal / CLOCK_TICKS,
    }
